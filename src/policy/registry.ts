// Finds check plugins by name: the configured plugin folders first, then the built-in plugins/.
// A plugin is any CommonJS module (compiled .ts or a plain .js dropped into a folder) whose export,
// or default export, has the CheckPlugin shape.
import fs from 'node:fs';
import path from 'node:path';
import type { CheckPlugin } from './contract';
import { displayPath } from '../core/errors';
import { errorText } from '../core/errors';

/** Plugin names are kebab-case; this also keeps a name from walking out of its folder. */
const PLUGIN_NAME = /^[a-z0-9][a-z0-9-]*$/;
const PLUGIN_FILE = /^([a-z0-9][a-z0-9-]*)\.(js|ts)$/;

/**
 * The built-in folder relative to this module: `<root>/plugins` under ts-jest, `dist/plugins` when
 * compiled. When running from dist/, the source `plugins/` folder is searched too, so a plain .js
 * plugin dropped there loads without a rebuild.
 */
export function builtinPluginDirs(): string[] {
  const compiled = path.resolve(__dirname, '../../plugins');
  const root = path.resolve(__dirname, '../..');
  return path.basename(root) === 'dist' ? [compiled, path.resolve(root, '../plugins')] : [compiled];
}

/** Every folder searched, in order: the configured ones, then the built-in ones. */
export function pluginSearchPath(pluginDirs: readonly string[]): string[] {
  return [...new Set([...pluginDirs.map((d) => path.resolve(d)), ...builtinPluginDirs()])];
}

/** Names of the plugins present in these folders, sorted (for "known: …" in error messages). */
export function listPlugins(dirs: readonly string[]): string[] {
  const names = new Set<string>();
  for (const dir of dirs) {
    let entries: string[];
    try {
      entries = fs.readdirSync(dir);
    } catch {
      continue;
    }
    for (const entry of entries) {
      const match = PLUGIN_FILE.exec(entry);
      if (match && !entry.endsWith('.d.ts')) names.add(match[1]!);
    }
  }
  return [...names].sort();
}

function isFunction(v: unknown): v is (...args: never[]) => unknown {
  return typeof v === 'function';
}

/** The plugin object of a loaded module, or a sentence saying what is wrong with its shape. */
export function pluginFromModule(mod: unknown, expectedName: string): CheckPlugin<unknown> | string {
  const candidates = [(mod as { default?: unknown } | null)?.default, mod];
  const plugin = candidates.find(
    (c): c is Record<string, unknown> => typeof c === 'object' && c !== null && isFunction((c as Record<string, unknown>).evaluate),
  );
  if (!plugin) return 'the module exports no `evaluate` function (expected `export default defineCheck({...})` or `module.exports = {name, parseOptions, evaluate}`)';
  if (typeof plugin.name !== 'string') return 'the plugin has no `name`';
  if (plugin.name !== expectedName) return `the plugin calls itself "${plugin.name}"; name and file name must match`;
  if (!isFunction(plugin.parseOptions)) return 'the plugin has no `parseOptions` function';
  return plugin as unknown as CheckPlugin<unknown>;
}

export type PluginLookup =
  | { readonly ok: true; readonly plugin: CheckPlugin<unknown>; readonly file: string }
  | { readonly ok: false; readonly problem: string };

function resolveIn(dir: string, name: string): string | null {
  try {
    return require.resolve(path.join(dir, name));
  } catch {
    return null;
  }
}

/** Loads plugin `name` from the first folder that has it. Never throws. */
export function loadPlugin(name: string, dirs: readonly string[]): PluginLookup {
  if (!PLUGIN_NAME.test(name)) return { ok: false, problem: `"${name}" is not a plugin name (kebab-case: a-z, 0-9, -)` };
  for (const dir of dirs) {
    const file = resolveIn(dir, name);
    if (file === null) continue;
    let mod: unknown;
    try {
      mod = require(file);
    } catch (err) {
      return { ok: false, problem: `cannot load ${displayPath(file)}: ${errorText(err)}` };
    }
    const plugin = pluginFromModule(mod, name);
    if (typeof plugin === 'string') return { ok: false, problem: `${displayPath(file)}: ${plugin}` };
    return { ok: true, plugin, file };
  }
  const known = listPlugins(dirs);
  return {
    ok: false,
    problem: `no plugin "${name}" in ${dirs.map((d) => displayPath(d) + '/').join(', ')} (known: ${known.join(', ') || 'none'})`,
  };
}
