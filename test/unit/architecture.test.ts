// The house rules on imports, as a test: plugins see only the plugin contract; protocol front ends
// (imap, smtp, hooks) reach the rest through the gate, the admission types and the decision, never
// into stores or policy internals; the ground (src/core) imports nothing above it; stores only store;
// connectors only fetch and map. Type-only imports count: a type is an arrow too.
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import type { DeviceRecord } from '../../src/core/device-record';
import type { DeviceFacts } from '../../src/policy/contract';

const ROOT = path.resolve(__dirname, '../..');

/** Every .ts file under src/ and plugins/, relative to the repository, with '/' separators. */
function sourceFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
      const rel = `${dir}/${entry.name}`;
      if (entry.isDirectory()) walk(rel);
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) out.push(rel);
    }
  };
  walk('src');
  walk('plugins');
  return out.sort();
}

/** An import of `file`: a repository path without extension for relative ones, else the bare name. */
function importsOf(file: string, text: string): string[] {
  const info = ts.preProcessFile(text, true, true);
  return info.importedFiles.map(({ fileName: spec }) =>
    spec.startsWith('.') ? path.posix.normalize(path.posix.join(path.posix.dirname(file), spec)).replace(/\.(ts|js)$/, '') : spec,
  );
}

const under = (target: string, ...prefixes: string[]) => prefixes.some((p) => target === p || target.startsWith(`${p}/`));
const ours = (target: string) => under(target, 'src', 'plugins');

/** One rule: the files it governs and, for one import of such a file, why it is wrong (or null). */
interface Rule {
  readonly name: string;
  readonly applies: (file: string) => boolean;
  readonly refuse: (target: string) => string | null;
}

const PLUGIN_CONTRACT = ['src/policy/contract', 'src/policy/options'];

const RULES: readonly Rule[] = [
  {
    name: 'a plugin imports only the plugin contract (src/policy/contract.ts, src/policy/options.ts)',
    applies: (f) => f.startsWith('plugins/'),
    refuse: (t) => (PLUGIN_CONTRACT.includes(t) ? null : 'not the plugin contract'),
  },
  {
    name: 'the plugin contract is self-contained',
    applies: (f) => f === 'src/policy/contract.ts',
    refuse: (t) => (ours(t) ? 'the contract imports nothing of ours' : null),
  },
  {
    name: 'the option readers import only the ground and the contract',
    applies: (f) => f === 'src/policy/options.ts',
    refuse: (t) => (ours(t) && !under(t, 'src/core', 'src/policy/contract') ? 'above the ground' : null),
  },
  {
    name: 'a protocol front end (imap, smtp, hooks) reaches no store and no policy or admission internals',
    applies: (f) => under(f, 'src/imap', 'src/smtp', 'src/hooks'),
    refuse: (t) => {
      if (under(t, 'src/store')) return 'a store';
      if (under(t, 'src/policy') && !under(t, 'src/policy/decision', 'src/policy/contract')) return 'policy internals';
      if (under(t, 'src/admission') && t !== 'src/admission/types') return 'admission internals (call gate.admit)';
      if (under(t, 'src/app') && t !== 'src/app/gate') return 'the composition root (only its Gate)';
      if (under(t, 'src/admin', 'src/console', 'src/cli', 'src/connectors')) return 'another room';
      return null;
    },
  },
  {
    name: 'the ground (src/core) imports nothing of ours above it',
    applies: (f) => under(f, 'src/core'),
    refuse: (t) => (ours(t) && !under(t, 'src/core') ? 'above the ground' : null),
  },
  {
    name: 'a store imports only the ground and other store files',
    applies: (f) => under(f, 'src/store'),
    refuse: (t) => (ours(t) && !under(t, 'src/core', 'src/store') ? 'not the ground' : null),
  },
  {
    name: 'a connector imports only the ground and the connector contract (src/connectors)',
    applies: (f) => under(f, 'src/connectors'),
    refuse: (t) => (ours(t) && !under(t, 'src/core', 'src/connectors') ? 'not the ground' : null),
  },
];

/** Every import that breaks a rule, as "file → target: rule (why)". */
function violations(files: ReadonlyMap<string, string>): string[] {
  const out: string[] = [];
  for (const [file, text] of files) {
    const imports = importsOf(file, text);
    for (const rule of RULES) {
      if (!rule.applies(file)) continue;
      for (const target of imports) {
        const why = rule.refuse(target);
        if (why) out.push(`${file} → ${target}: ${rule.name} (${why})`);
      }
    }
  }
  return out;
}

describe('architecture: who may import whom', () => {
  it('no import in src/ or plugins/ breaks a rule', () => {
    const files = new Map(sourceFiles().map((f) => [f, fs.readFileSync(path.join(ROOT, f), 'utf8')]));
    // The rules must see the rooms they govern, or an empty scan would pass.
    for (const room of ['plugins/', 'src/core/', 'src/store/', 'src/imap/', 'src/smtp/', 'src/policy/contract.ts']) {
      expect([...files.keys()].some((f) => f.startsWith(room))).toBe(true);
    }
    expect(violations(files)).toEqual([]);
  });

  it('each rule refuses the arrow it is about (type-only imports too)', () => {
    const bad = new Map([
      ['plugins/x.ts', "import { readFileSync } from 'node:fs';\nimport { defineCheck } from '../src/policy/contract';"],
      ['src/policy/contract.ts', "import type { DeviceRecord } from '../store/device-store';"],
      ['src/imap/x.ts', "import type { DeviceStore } from '../store/device-store';\nimport { Engine } from '../policy/engine';\nimport type { Decision } from '../policy/decision';"],
      ['src/hooks/x.ts', "import { admit } from '../admission/admit';\nimport type { Admission } from '../admission/types';"],
      ['src/core/x.ts', "export { Gate } from '../app/gate';\nimport { formatKeyPath } from './errors';"],
      ['src/store/x.ts', "const m = require('../policy/decider');"],
      ['src/connectors/x.ts', "import type { DeviceStore } from '../store/device-store';\nimport type { DeviceRecord } from '../core/device-record';"],
    ]);
    expect(violations(bad).map((v) => v.split(': ')[0])).toEqual([
      'plugins/x.ts → node:fs',
      'src/policy/contract.ts → src/store/device-store',
      'src/imap/x.ts → src/store/device-store',
      'src/imap/x.ts → src/policy/engine',
      'src/hooks/x.ts → src/admission/admit',
      'src/core/x.ts → src/app/gate',
      'src/store/x.ts → src/policy/decider',
      'src/connectors/x.ts → src/store/device-store',
    ]);
  });
});

// The contract writes out its own copy of the record's shape (it imports nothing); these two
// assignments stop the copy and the store's record drifting apart (ts-jest type-checks this file).
const recordAsFacts = (r: DeviceRecord): DeviceFacts => r;
const factsAsRecord = (f: DeviceFacts): DeviceRecord => f;
it('the contract\'s DeviceFacts and the store\'s DeviceRecord are one shape', () => {
  expect([recordAsFacts, factsAsRecord]).toHaveLength(2);
});

