// Turns a validated PolicyConfig into a CompiledPolicy: each check's plugin loaded and its options
// parsed. Every problem is collected into one ConfigError naming file, line and key path, so a bad
// reload is refused as a whole and the policy in force stays.
import type { CheckPlugin } from './contract';
import type { CheckConfig, PolicyConfig } from '../core/config-types';
import { issueAt, type YamlSource } from '../core/config';
import { ConfigError, type ConfigIssue } from '../core/errors';
import { OptionError } from './options';
import { loadPlugin, pluginSearchPath } from './registry';
import { errorText } from '../core/errors';

export interface CompiledCheck {
  readonly id: string;
  readonly config: CheckConfig;
  readonly plugin: CheckPlugin<unknown>;
  /** What the plugin's parseOptions returned. */
  readonly options: unknown;
  /** The module the plugin was loaded from (for logs and `policy simulate`). */
  readonly pluginFile: string;
}

export interface CompiledPolicy {
  readonly config: PolicyConfig;
  readonly version: string;
  readonly checks: readonly CompiledCheck[];
}

type KeyPath = (string | number)[];

/** A plain Error from a custom plugin may still start with a key path ("apps.ios[0]: expected …"). */
const IDENT = String.raw`[A-Za-z_$][\w$-]*`;
const INDEX = String.raw`\[\d+\]`;
const QUOTED = String.raw`\["(?:[^"\\]|\\.)*"\]`;
const LEADING_PATH = new RegExp(`^((?:${IDENT}|${INDEX}|${QUOTED})(?:\\.${IDENT}|${INDEX}|${QUOTED})*): (.+)$`, 's');
const PATH_SEGMENT = new RegExp(`(${IDENT})|\\[(\\d+)\\]|\\[(${QUOTED.slice(2, -2)})\\]`, 'g');

function parseKeyPath(text: string): KeyPath {
  const out: KeyPath = [];
  for (const m of text.matchAll(PATH_SEGMENT)) {
    if (m[1] !== undefined) out.push(m[1]);
    else if (m[2] !== undefined) out.push(Number(m[2]));
    else out.push(JSON.parse(m[3]!) as string);
  }
  return out;
}

/** Splits an option error into the path under `options` and the problem. */
function optionProblem(err: unknown): { path: KeyPath; message: string } {
  if (err instanceof OptionError) return { path: [...err.path], message: err.problem };
  const text = errorText(err);
  const match = LEADING_PATH.exec(text);
  return match ? { path: parseKeyPath(match[1]!), message: match[2]! } : { path: [], message: text };
}

export async function compilePolicy(
  policy: PolicyConfig,
  source: YamlSource,
  options: { readonly pluginDirs: readonly string[] },
): Promise<CompiledPolicy> {
  const dirs = pluginSearchPath(options.pluginDirs);
  const issues: ConfigIssue[] = [];
  const issue = (path: KeyPath, message: string, fallback: number | null): void => {
    const found = issueAt(source, path, message);
    issues.push(found.line === null ? { ...found, line: fallback } : found);
  };

  const checks: CompiledCheck[] = [];
  policy.checks.forEach((check, i) => {
    const lookup = loadPlugin(check.plugin, dirs);
    if (!lookup.ok) {
      issue(['checks', i, 'plugin'], lookup.problem, check.line);
      return;
    }
    try {
      const parsed = lookup.plugin.parseOptions(check.options);
      checks.push({ id: check.id, config: check, plugin: lookup.plugin, options: parsed, pluginFile: lookup.file });
    } catch (err) {
      const { path, message } = optionProblem(err);
      issue(['checks', i, 'options', ...path], message, check.line);
    }
  });

  if (issues.length > 0) throw new ConfigError(issues);
  return { config: policy, version: policy.version, checks };
}
