// Built-in check: fails when the device's OS version is below the minimum configured for its
// platform. Versions compare numerically part by part ("17.10" is newer than "17.4").
import { defineCheck, unknownUnlessCurrent } from '../src/policy/contract';
import { OptionError, readMap, readObject, rejectUnknownKeys, type OptionPath } from '../src/policy/options';

interface MinOsVersionOptions {
  /** platform → { text as configured, parsed parts }. */
  readonly minimum: ReadonlyMap<string, { readonly text: string; readonly parts: readonly number[] }>;
}

/** Leading dotted number of a version string ("17.4.1 (21E236)" → [17, 4, 1]); null when there is none. */
export function parseVersion(text: string): number[] | null {
  const match = /^\s*v?(\d+(?:\.\d+)*)/i.exec(text);
  return match ? match[1]!.split('.').map(Number) : null;
}

/** Negative when a < b, 0 when equal, positive when a > b; missing parts count as 0 ("17" = "17.0"). */
export function compareVersions(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

function readMinimum(value: unknown, path: OptionPath): { text: string; parts: number[] } {
  // YAML reads an unquoted 17.10 as the number 17.1, so only whole numbers are accepted unquoted.
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0) return { text: String(value), parts: [value] };
  if (typeof value === 'number') throw new OptionError(path, `quote the version ("${value}"): YAML reads an unquoted 17.10 as 17.1`);
  const parts = typeof value === 'string' && /^\d+(\.\d+)*$/.test(value.trim()) ? parseVersion(value) : null;
  if (!parts) throw new OptionError(path, 'expected a version like "17.4"');
  return { text: String(value).trim(), parts };
}

export default defineCheck<MinOsVersionOptions>({
  name: 'min-os-version',
  codes: ['OS_TOO_OLD', 'OS_VERSION_UNKNOWN'],

  parseOptions(raw) {
    const obj = readObject(raw);
    rejectUnknownKeys(obj, ['minimum']);
    const minimum = readMap(obj.minimum, ['minimum'], readMinimum);
    if (minimum.size === 0) throw new OptionError(['minimum'], 'expected at least one platform (e.g. ios: "17.4")');
    return { minimum: new Map([...minimum].map(([platform, v]) => [platform.toLowerCase(), v])) };
  },

  evaluate(facts, options) {
    const notCurrent = unknownUnlessCurrent(facts);
    if (notCurrent) return notCurrent;
    const device = facts.device!;
    const minimum = options.minimum.get(device.platform.toLowerCase());
    if (!minimum) return { verdict: 'pass' };
    const version = parseVersion(device.osVersion);
    if (!version) {
      return { verdict: 'unknown', code: 'OS_VERSION_UNKNOWN', reason: `cannot read OS version ${JSON.stringify(device.osVersion)}` };
    }
    if (compareVersions(version, minimum.parts) >= 0) return { verdict: 'pass' };
    return {
      verdict: 'fail',
      code: 'OS_TOO_OLD',
      reason: `${device.platform} ${device.osVersion} is older than ${minimum.text}`,
      vars: { version: device.osVersion, minimum: minimum.text },
    };
  },
});
