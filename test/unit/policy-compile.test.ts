// Compiling a policy: plugins found by name (configured folders first, then the built-in ones),
// a plain .js plugin loads without touching src/, and every problem is reported with file and line.
import fs from 'node:fs';
import path from 'node:path';
import { loadPolicyFile } from '../../src/core/config';
import { ConfigError } from '../../src/core/errors';
import { compilePolicy } from '../../src/policy/compile';
import { evaluatePolicy } from '../../src/policy/engine';
import { builtinPluginDirs, listPlugins, loadPlugin, pluginSearchPath } from '../../src/policy/registry';
import { tempDir } from '../harness/ports';
import { NOW, checkConfig, compile, policyConfig, request, stored, tiktokCheck } from '../fixtures/plugins/policy-fixtures';

const FIXTURES = path.join(__dirname, '../fixtures/plugins');
const CUSTOM = path.join(FIXTURES, 'custom');
const BROKEN = path.join(FIXTURES, 'broken');
const BUILT_IN = ['banned-apps', 'managed-only', 'min-os-version', 'platforms', 'require-device'];

const ctx = { now: NOW, maxReportAgeHours: 24, groups: [], brakeReportOnly: new Set<string>(), refId: 'MW-TEST0001' };

it('finds the five built-in plugins next to this module', () => {
  expect(builtinPluginDirs()[0]).toBe(path.resolve(__dirname, '../../plugins'));
  expect(listPlugins(builtinPluginDirs())).toEqual(BUILT_IN);
});

it('compiles the example policy (config/policy.yaml)', async () => {
  const { policy, source } = await loadPolicyFile(path.resolve(__dirname, '../../config/policy.yaml'));
  const compiled = await compilePolicy(policy, source, { pluginDirs: [] });
  expect(compiled.checks.map((c) => [c.id, c.plugin.name])).toEqual([
    ['require-device', 'require-device'],
    ['no-tiktok-on-mobiles', 'banned-apps'],
  ]);
  expect(compiled.version).toBe(policy.version);
});

describe('custom plugins', () => {
  it('loads a plain CommonJS .js plugin from a configured folder and runs it', async () => {
    const check = checkConfig({ id: 'no-old-clients', plugin: 'banned-clients', options: { names: ['OldMail'] }, message: 'Use another mail app. Ref {refId}.' });
    const compiled = await compile(policyConfig([check]), [CUSTOM]);
    expect(compiled.checks[0]!.pluginFile).toBe(path.join(CUSTOM, 'banned-clients.js'));
    const denied = await evaluatePolicy(compiled, request({ hints: { name: 'oldmail' } }), stored(), ctx);
    expect(denied.decision).toMatchObject({ action: 'deny', reasonCode: 'BANNED_CLIENT', message: 'Use another mail app. Ref MW-TEST0001.' });
    const allowed = await evaluatePolicy(compiled, request({ hints: { name: 'Thunderbird' } }), stored(), ctx);
    expect(allowed.decision.action).toBe('allow');
  });

  it('accepts `exports.default` as well as `module.exports`', () => {
    const lookup = loadPlugin('always-pass', [CUSTOM]);
    expect(lookup.ok && lookup.plugin.name).toBe('always-pass');
  });

  it('searches configured folders before the built-in one (a custom plugin may shadow a built-in)', async () => {
    const compiled = await compile(policyConfig([tiktokCheck]), [path.join(FIXTURES, 'shadow')]);
    expect(compiled.checks[0]!.options).toEqual({ shadowed: true });
    expect(pluginSearchPath([path.join(FIXTURES, 'shadow')])).toEqual([path.join(FIXTURES, 'shadow'), ...builtinPluginDirs()]);
  });

  it.each<[string, RegExp]>([
    ['no-evaluate', /no-evaluate\.js: the module exports no `evaluate` function/],
    ['wrong-name', /wrong-name\.js: the plugin calls itself "right-name"; name and file name must match/],
    ['throws-on-load', /cannot load .*throws-on-load\.js: cannot find my config/],
    ['../custom/banned-clients', /is not a plugin name/],
  ])('refuses %s', (name, problem) => {
    const lookup = loadPlugin(name, [BROKEN]);
    expect(lookup.ok).toBe(false);
    expect(!lookup.ok && lookup.problem).toMatch(problem);
  });
});

describe('compile errors name file, line and key', () => {
  const yaml = `# a policy with mistakes
checks:
  - id: require-device
    plugin: require-device

  - id: no-tiktok
    plugin: banned-app
    options:
      apps: { ios: [com.zhiliaoapp.musically] }

  - id: os
    plugin: min-os-version
    options:
      minimum:
        ios: 17.10

  - id: apps
    plugin: banned-apps
    options:
      apps:
        ios:
          - com.zhiliaoapp.musically
          - 42
      names:
        com.zhiliaoapp.musically: [TikTok]

  - id: clients
    plugin: banned-clients
    options:
      names: [ok, 7]
`;

  it('collects every problem into one ConfigError', async () => {
    const dir = tempDir('policy-compile');
    const file = path.join(dir, 'policy.yaml');
    fs.writeFileSync(file, yaml);
    try {
      const { policy, source } = await loadPolicyFile(file);
      const error = await compilePolicy(policy, source, { pluginDirs: [CUSTOM] }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigError);
      const issues = (error as ConfigError).issues.map((i) => [i.line, i.keyPath, i.message]);
      expect(issues).toEqual([
        [7, 'checks[1].plugin', expect.stringMatching(/^no plugin "banned-app" in .*custom\/, .*plugins\/ \(known: always-pass, banned-apps, banned-clients, managed-only, min-os-version, platforms, require-device\)$/)],
        [15, 'checks[2].options.minimum.ios', 'quote the version ("17.1"): YAML reads an unquoted 17.10 as 17.1'],
        [23, 'checks[3].options.apps.ios[1]', 'expected a string'],
        [30, 'checks[4].options.names[1]', 'expected a string'],
      ]);
      expect((error as ConfigError).message.split('\n')[1]).toMatch(/policy\.yaml:15: checks\[2\]\.options\.minimum\.ios: quote the version/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
