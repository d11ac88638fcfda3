// Parsing and validation of what the stores keep (records, exemptions, credentials, change events),
// shared by both adapters so that memory and Redis accept and reject exactly the same data.
import type { Logger } from '../core/log';
import { validateAppId, validateDeviceId, validateIdentifier, validatePlatform, validateUserName } from '../core/identifiers';
import {
  KILL_SWITCH_FLAG,
  type AppPasswordCredential,
  type ChangeEvent,
  type DeviceLookup,
  type DeviceRecord,
  type Exemption,
} from './device-store';

/**
 * The one timestamp format the Redis layout accepts (docs/redis-layout.md): ISO-8601 with a time and
 * an explicit zone. The putDevice Lua script parses the same shape to compare reportedAt atomically.
 */
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i;

/** ms epoch of an ISO-8601 time in the documented format, or null. */
export function isoToMs(value: unknown): number | null {
  if (typeof value !== 'string' || !ISO_TIME.test(value)) return null;
  const ms = Date.parse(value);
  return Number.isFinite(ms) ? ms : null;
}

type FieldKind = 'string' | 'text' | 'boolean' | 'time' | 'strings';
/** Field name → [kind, required]. */
type FieldSpec = Readonly<Record<string, readonly [FieldKind, boolean]>>;

/**
 * Copies the fields named in `spec` out of `value` into a fresh object (unknown keys, including
 * `__proto__`, are dropped), or returns a sentence naming the first bad field.
 */
function readFields(value: unknown, spec: FieldSpec): Record<string, unknown> | string {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return 'not a JSON object';
  const source = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [name, [kind, required]] of Object.entries(spec)) {
    const field = Object.prototype.hasOwnProperty.call(source, name) ? source[name] : undefined;
    if (field === undefined || field === null) {
      if (required) return `field ${name}: missing`;
      continue;
    }
    if (!fieldOk(kind, field)) return `field ${name}: expected ${kindName[kind]}`;
    out[name] = kind === 'strings' ? [...(field as string[])] : field;
  }
  return out;
}

function fieldOk(kind: FieldKind, field: unknown): boolean {
  switch (kind) {
    case 'string':
      return typeof field === 'string' && field !== '';
    case 'text':
      return typeof field === 'string';
    case 'boolean':
      return typeof field === 'boolean';
    case 'time':
      return isoToMs(field) !== null;
    case 'strings':
      return Array.isArray(field) && field.every((item) => typeof item === 'string');
  }
}

const kindName: Record<FieldKind, string> = {
  string: 'a non-empty string',
  text: 'a string',
  boolean: 'true or false',
  time: 'an ISO-8601 time with a zone (2026-01-31T12:00:00Z)',
  strings: 'an array of strings',
};

const RECORD_FIELDS: FieldSpec = {
  deviceId: ['string', true],
  user: ['string', true],
  platform: ['string', true],
  osVersion: ['string', true],
  managed: ['boolean', true],
  apps: ['strings', false],
  appNames: ['strings', false],
  ownership: ['string', false],
  reportedAt: ['time', true],
  source: ['string', true],
  receivedAt: ['time', true],
};

const EXEMPTION_FIELDS: FieldSpec = {
  scope: ['string', true],
  subject: ['string', true],
  expiresAt: ['time', true],
  note: ['text', false],
  createdBy: ['string', true],
  createdAt: ['time', true],
  checks: ['strings', false],
};

const CREDENTIAL_FIELDS: FieldSpec = {
  credentialId: ['string', true],
  user: ['string', true],
  deviceId: ['string', true],
  hash: ['string', true],
  createdAt: ['time', true],
};

function parseJson(raw: string): { ok: true; value: unknown } | { ok: false; detail: string } {
  try {
    return { ok: true, value: JSON.parse(raw) as unknown };
  } catch (err) {
    return { ok: false, detail: `invalid JSON: ${(err as Error).message}` };
  }
}

/**
 * How far a record's receivedAt may be ahead of this clock: the clocks of the instances and of MDMs
 * writing records themselves differ a little. Beyond it, the record is from the future: malformed.
 */
export const CLOCK_TOLERANCE_MS = 60_000;
/** How far reportedAt may be ahead of receivedAt: the largest reports.maxSkewSeconds ingest allows. */
export const MAX_REPORT_SKEW_MS = 300_000;

/**
 * The time reports are ordered by: reportedAt, but never later than receivedAt. A report dated
 * ahead (a reporter's fast clock, or on purpose) must not make the next real report look older.
 */
export function reportOrderMs(record: Pick<DeviceRecord, 'reportedAt' | 'receivedAt'>): number {
  return Math.min(isoToMs(record.reportedAt) ?? 0, isoToMs(record.receivedAt) ?? 0);
}

/**
 * The order time of a stored record a new report is compared with, or null when that record is
 * from the future (receivedAt beyond the clock tolerance, or reportedAt beyond the skew after it):
 * malformed on read, it must not hold back the next real report either. The Redis script
 * (store/redis/layout.ts LUA_PUT_DEVICE) applies the same rule.
 */
export function storedOrderMs(record: Pick<DeviceRecord, 'reportedAt' | 'receivedAt'>, nowMs: number): number | null {
  const reported = isoToMs(record.reportedAt);
  const received = isoToMs(record.receivedAt);
  if (reported === null || received === null) return null;
  if (received > nowMs + CLOCK_TOLERANCE_MS || reported > received + MAX_REPORT_SKEW_MS) return null;
  return Math.min(reported, received);
}

/**
 * Values, not just types: an MDM may write records into Redis itself (docs/redis-layout.md), and a
 * platform or app id outside the grammar ("ios ", "iphoneos", an app id with a NUL) would match no
 * check and pass all of them. Such a record is malformed, so unknown, never compliant.
 */
function recordProblem(fields: Record<string, unknown>, nowMs: number | null): string | null {
  const apps = (fields.apps as string[] | undefined) ?? [];
  const appProblem = apps.map((app, i) => validateAppId(app, `field apps[${i}]`)).find((p) => p !== null);
  const names = (fields.appNames as string[] | undefined) ?? [];
  const nameProblem = names.map((name, i) => validateIdentifier(name, `field appNames[${i}]`)).find((p) => p !== null);
  const ownership = fields.ownership;
  const ownershipProblem = ownership === undefined || ['company', 'personal', 'unknown'].includes(ownership as string) ? null : 'field ownership: expected company, personal or unknown';
  const problem =
    validateDeviceId(fields.deviceId, 'field deviceId') ??
    validateUserName(fields.user, 'field user') ??
    validatePlatform(fields.platform, 'field platform') ??
    validateIdentifier(fields.osVersion, 'field osVersion', 64) ??
    appProblem ??
    nameProblem ??
    ownershipProblem;
  if (problem) return problem;
  const receivedMs = isoToMs(fields.receivedAt)!;
  if (nowMs !== null && receivedMs > nowMs + CLOCK_TOLERANCE_MS) return 'field receivedAt: in the future';
  if (isoToMs(fields.reportedAt)! > receivedMs + MAX_REPORT_SKEW_MS) return 'field reportedAt: in the future (after receivedAt)';
  return null;
}

/** A stored record (JSON text) as a lookup; `deviceId` is the id it was stored under. */
export function decodeDeviceRecord(raw: string | null, deviceId: string, nowMs: number = Date.now()): DeviceLookup {
  if (raw === null) return { state: 'missing' };
  const json = parseJson(raw);
  if (!json.ok) return { state: 'malformed', detail: json.detail };
  const fields = readFields(json.value, RECORD_FIELDS);
  if (typeof fields === 'string') return { state: 'malformed', detail: fields };
  if (fields.deviceId !== deviceId) return { state: 'malformed', detail: `field deviceId: does not match the key (${deviceId})` };
  const problem = recordProblem(fields, nowMs);
  if (problem) return { state: 'malformed', detail: problem };
  return { state: 'found', record: fields as unknown as DeviceRecord };
}

/**
 * Validates a record before it is stored; throws TypeError naming the bad field. Returns a clean copy.
 * Its receivedAt is the writer's clock (ingest sets it to now), so only reads compare it with a clock.
 */
export function checkDeviceRecord(record: DeviceRecord): DeviceRecord {
  const fields = readFields(record, RECORD_FIELDS);
  const problem = typeof fields === 'string' ? fields : recordProblem(fields, null);
  if (problem) throw new TypeError(`device record: ${problem}`);
  return fields as unknown as DeviceRecord;
}

/** A stored exemption (JSON text), or a sentence saying why it is unusable. */
export function decodeExemption(raw: string): Exemption | string {
  const json = parseJson(raw);
  if (!json.ok) return json.detail;
  return exemptionFields(json.value);
}

function exemptionFields(value: unknown): Exemption | string {
  const fields = readFields(value, EXEMPTION_FIELDS);
  if (typeof fields === 'string') return fields;
  if (fields.scope !== 'device' && fields.scope !== 'user') return 'field scope: expected "device" or "user"';
  return { ...fields, note: fields.note ?? '' } as unknown as Exemption;
}

/** Validates an exemption before it is stored (throws TypeError/RangeError); returns a clean copy. */
export function checkExemption(exemption: Exemption, nowMs: number): Exemption {
  const fields = exemptionFields(exemption);
  if (typeof fields === 'string') throw new TypeError(`exemption: ${fields}`);
  if ((isoToMs(fields.expiresAt) ?? 0) <= nowMs) throw new RangeError(`exemption: expiresAt ${fields.expiresAt} is not in the future`);
  return fields;
}

/** A stored credential (JSON text), or null when it is absent or unusable (the login then fails). */
export function decodeCredential(raw: string | null): AppPasswordCredential | null {
  if (raw === null) return null;
  const json = parseJson(raw);
  if (!json.ok) return null;
  const fields = readFields(json.value, CREDENTIAL_FIELDS);
  return typeof fields === 'string' ? null : (fields as unknown as AppPasswordCredential);
}

export function checkCredential(credential: AppPasswordCredential): AppPasswordCredential {
  const fields = readFields(credential, CREDENTIAL_FIELDS);
  if (typeof fields === 'string') throw new TypeError(`app password: ${fields}`);
  return fields as unknown as AppPasswordCredential;
}

/** A change-channel message, or null when it is not one we understand (ignored, never guessed at). */
export function decodeChangeEvent(raw: string): ChangeEvent | null {
  const json = parseJson(raw);
  if (!json.ok || json.value === null || typeof json.value !== 'object') return null;
  const e = json.value as Record<string, unknown>;
  const str = (v: unknown): v is string => typeof v === 'string' && v !== '';
  switch (e.kind) {
    case 'device':
      if (!str(e.deviceId)) return null;
      return str(e.user) ? { kind: 'device', deviceId: e.deviceId, user: e.user } : { kind: 'device', deviceId: e.deviceId };
    case 'exemption':
      return (e.scope === 'device' || e.scope === 'user') && str(e.subject)
        ? { kind: 'exemption', scope: e.scope, subject: e.subject }
        : null;
    case 'policy':
      return str(e.version) ? { kind: 'policy', version: e.version } : null;
    case 'kill-switch':
      return typeof e.on === 'boolean' ? { kind: 'kill-switch', on: e.on } : null;
    case 'sessions':
      return e.body !== null && typeof e.body === 'object' && !Array.isArray(e.body) ? { kind: 'sessions', body: e.body as Record<string, unknown> } : null;
    default:
      return null;
  }
}

/**
 * A first-seen value as stored (decimal ms epoch). Anything else counts as 0, i.e. "first seen
 * long ago": a garbled grace-period start ends the grace period rather than granting a new one.
 */
export function decodeFirstSeen(raw: string): number {
  return /^\d{1,15}$/.test(raw) ? Number(raw) : 0;
}

/** Only these values switch the kill switch on; anything else (including garbage) leaves checks enforcing. */
export function killSwitchOn(value: string | null): boolean {
  return value === '1' || value === 'true' || value === 'on';
}

/** The change event a flag write implies (the kill switch is announced so every instance sees it at once). */
export function flagChangeEvent(name: string, value: string | null): ChangeEvent | null {
  return name === KILL_SWITCH_FLAG ? { kind: 'kill-switch', on: killSwitchOn(value) } : null;
}

/** Both adapters refuse a TTL that would store a record forever or not at all. */
export function ttlToMs(ttlSeconds: number): number {
  if (!Number.isFinite(ttlSeconds) || ttlSeconds <= 0) throw new RangeError(`ttlSeconds: expected a positive number, got ${ttlSeconds}`);
  return Math.ceil(ttlSeconds * 1000);
}

/** A change listener wrapped so that its throw is logged instead of crashing the process. */
export function guardListener(listener: (event: ChangeEvent) => void, log: Logger | undefined): (event: ChangeEvent) => void {
  return (event) => {
    try {
      listener(event);
    } catch (err) {
      log?.error('store change listener failed', { event, error: (err as Error).message });
    }
  };
}
