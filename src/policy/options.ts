// Small readers for a check's `options` from policy.yaml. Each throws an OptionError whose message
// names the offending option ("apps.ios[0]: expected a string"); the policy loader adds file and line.
import { formatKeyPath } from '../core/errors';

export type OptionPath = readonly (string | number)[];

/** Thrown by the readers below; `path` is relative to the check's `options`. */
export class OptionError extends Error {
  constructor(
    readonly path: OptionPath,
    readonly problem: string,
  ) {
    super(path.length > 0 ? `${formatKeyPath(path)}: ${problem}` : problem);
    this.name = 'OptionError';
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'a mapping' : `${typeof value} ${JSON.stringify(value)}`;
}

/** A mapping (YAML object); `undefined`/`null` becomes `{}` when `optional`. */
export function readObject(value: unknown, path: OptionPath = [], optional = false): Record<string, unknown> {
  if (optional && (value === undefined || value === null)) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new OptionError(path, `expected a mapping, got ${describe(value)}`);
  }
  return value as Record<string, unknown>;
}

/** Rejects keys the plugin does not know, so a typo in a safety option is an error, not a no-op. */
export function rejectUnknownKeys(obj: Record<string, unknown>, known: readonly string[], path: OptionPath = []): void {
  for (const key of Object.keys(obj)) {
    if (!known.includes(key)) {
      throw new OptionError([...path, key], `unknown option (known: ${known.join(', ') || 'none'})`);
    }
  }
}

export function readString(value: unknown, path: OptionPath): string {
  if (typeof value !== 'string') throw new OptionError(path, 'expected a string');
  if (value.trim() === '') throw new OptionError(path, 'expected a non-empty string');
  return value;
}

/** A list of non-empty strings; `minItems` guards against "an empty list means allow all". */
export function readStringList(value: unknown, path: OptionPath, minItems = 1): string[] {
  if (!Array.isArray(value)) throw new OptionError(path, `expected a list of strings, got ${describe(value)}`);
  if (value.length < minItems) throw new OptionError(path, `expected at least ${minItems} item${minItems === 1 ? '' : 's'}`);
  return value.map((item, i) => readString(item, [...path, i]));
}

/** A mapping of key → value read by `readValue`. */
export function readMap<T>(
  value: unknown,
  path: OptionPath,
  readValue: (v: unknown, p: OptionPath) => T,
  optional = false,
): Map<string, T> {
  const obj = readObject(value, path, optional);
  const out = new Map<string, T>();
  for (const [key, v] of Object.entries(obj)) out.set(key, readValue(v, [...path, key]));
  return out;
}

export function readNumber(value: unknown, path: OptionPath, range: { min?: number; max?: number } = {}): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new OptionError(path, 'expected a number');
  if (range.min !== undefined && value < range.min) throw new OptionError(path, `expected a number >= ${range.min}`);
  if (range.max !== undefined && value > range.max) throw new OptionError(path, `expected a number <= ${range.max}`);
  return value;
}

export function readBoolean(value: unknown, path: OptionPath): boolean {
  if (typeof value !== 'boolean') throw new OptionError(path, 'expected true or false');
  return value;
}

/** Platform ids are lower-case everywhere (DeviceReport.platform). */
export function readPlatformList(value: unknown, path: OptionPath): string[] {
  return readStringList(value, path).map((p) => p.toLowerCase());
}
