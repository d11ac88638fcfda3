// Verifies signed device reports (compact JWS from a trusted reporter key) and turns them into
// device records. Writes nothing: the admin handler stores what verify() accepts.
import { compactVerify, decodeProtectedHeader, type ProtectedHeaderParameters } from 'jose';
import type { Logger } from '../core/log';
import type { ReportsConfig } from '../core/config-types';
import type { DeviceRecord, DeviceReport } from '../store/device-store';
import { isReportTyp, joseErrorCode, loadKeySet, REPORT_TYP, type KeySet } from '../identity/jwks';
import { validateAppId, validateDeviceId, validateIdentifier, validatePlatform, validateUserName } from '../core/identifiers';
import { errorText } from '../core/errors';

/** What a reporter signs: a DeviceReport without `source` (the server sets it to the key id). */
export type ReportPayload = Omit<DeviceReport, 'source'>;

/**
 * Every code POST /v1/reports refuses a report with, and its HTTP status (docs/reports.md gives each
 * cause; test/unit/error-codes.test.ts holds docs/errors.md to this list). 503 only for
 * KEYS_UNAVAILABLE (a remote JWKS could not be fetched): retry later.
 */
export const ReportErrorCodes = {
  MALFORMED_JWS: 400,
  WRONG_TYPE: 401,
  ALG_NOT_ALLOWED: 401,
  UNKNOWN_KEY: 401,
  BAD_SIGNATURE: 401,
  TOO_LARGE: 413,
  SCHEMA_ERROR: 422,
  REPORT_TOO_OLD: 422,
  REPORT_IN_FUTURE: 422,
  KEYS_UNAVAILABLE: 503,
} as const;

export type ReportErrorCode = keyof typeof ReportErrorCodes;

export type ReportVerifyResult =
  | { readonly ok: true; readonly record: DeviceRecord }
  | {
      readonly ok: false;
      readonly status: (typeof ReportErrorCodes)[ReportErrorCode];
      readonly code: ReportErrorCode;
      readonly message: string;
    };

export interface ReportVerifier {
  /** Pure apart from fetching a remote JWKS: the same input gives the same answer, nothing is stored. */
  verify(jws: string, now?: Date): Promise<ReportVerifyResult>;
}

/** An inventory larger than this is a bug or an attack (a phone has a few hundred apps). */
export const MAX_REPORT_APPS = 2000;
/** RFC 3339 date-time: a zone is required, so the instant is never ambiguous. */
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/i;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const PLAIN_FIELD_NAME = /^[A-Za-z0-9_]{1,64}$/;
const PAYLOAD_FIELDS = new Set(['deviceId', 'user', 'platform', 'osVersion', 'managed', 'apps', 'reportedAt']);

type Failure = ReportVerifyResult & { ok: false };

function reject(code: ReportErrorCode, message: string): Failure {
  return { ok: false, status: ReportErrorCodes[code], code, message };
}

/**
 * Check a report payload strictly: unknown fields are refused (a typo such as `app` for `apps`
 * must not silently mean "inventory not visible"). Messages name the field: "apps[3]: expected a string".
 */
export function parseReportPayload(value: unknown): { ok: true; report: ReportPayload } | { ok: false; message: string } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, message: 'payload: expected a JSON object' };
  }
  const raw = value as Record<string, unknown>;
  for (const key of Object.keys(raw)) {
    if (key === 'source') return { ok: false, message: 'source: not accepted in the payload; it is set to the signing key id' };
    if (!PAYLOAD_FIELDS.has(key)) {
      // The name is echoed only when it is a plain word: a hostile key (CR/LF, megabytes) never reaches the reply or the log.
      return { ok: false, message: PLAIN_FIELD_NAME.test(key) ? `${key}: unknown field` : 'payload: unknown field whose name is not a plain word (letters, digits, _)' };
    }
  }
  const problem =
    validateDeviceId(raw.deviceId) ??
    validateUserName(raw.user) ??
    validatePlatform(raw.platform) ??
    validateIdentifier(raw.osVersion, 'osVersion', 64) ??
    (typeof raw.managed === 'boolean' ? null : 'managed: expected true or false') ??
    checkApps(raw.apps) ??
    (typeof raw.reportedAt === 'string' && RFC3339.test(raw.reportedAt) && !Number.isNaN(Date.parse(raw.reportedAt))
      ? null
      : 'reportedAt: expected an RFC 3339 time with a zone, e.g. 2025-01-31T09:00:00Z');
  if (problem) return { ok: false, message: problem };
  const report: ReportPayload = {
    deviceId: raw.deviceId as string,
    user: raw.user as string,
    platform: raw.platform as string,
    osVersion: raw.osVersion as string,
    managed: raw.managed as boolean,
    ...(raw.apps === undefined ? {} : { apps: [...(raw.apps as string[])] }),
    // Normalised to UTC so the store can compare report times as strings.
    reportedAt: new Date(raw.reportedAt as string).toISOString(),
  };
  return { ok: true, report };
}

function checkApps(apps: unknown): string | null {
  if (apps === undefined) return null;
  if (!Array.isArray(apps)) return 'apps: expected an array of app ids';
  if (apps.length > MAX_REPORT_APPS) return `apps: more than ${MAX_REPORT_APPS} entries`;
  for (let i = 0; i < apps.length; i++) {
    const problem = validateAppId(apps[i], `apps[${i}]`);
    if (problem) return problem;
  }
  return null;
}

/** Map a jose verification error to the reporter-facing answer. */
function verifyFailure(err: unknown, header: ProtectedHeaderParameters): Failure {
  const message = errorText(err);
  switch (joseErrorCode(err)) {
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return reject('UNKNOWN_KEY', `no trusted reporter key has kid "${header.kid}" and alg ${header.alg}`);
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return reject('UNKNOWN_KEY', `several trusted reporter keys have kid "${header.kid}"; kids must be unique`);
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return reject('BAD_SIGNATURE', `signature does not verify with reporter key "${header.kid}"`);
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return reject('ALG_NOT_ALLOWED', message);
    case 'ERR_JWS_INVALID':
    case 'ERR_JOSE_NOT_SUPPORTED':
      return reject('MALFORMED_JWS', message);
    default:
      return reject('KEYS_UNAVAILABLE', `reporter keys could not be loaded: ${message}`);
  }
}

export async function createReportVerifier(config: ReportsConfig, configDir: string, log?: Logger): Promise<ReportVerifier> {
  const keys: KeySet | null =
    config.jwksFile === undefined && config.jwksUrl === undefined ? null : await loadKeySet(config, configDir, 'reports', log);
  const algorithms = [...config.algorithms];

  async function verify(input: string, now: Date = new Date()): Promise<ReportVerifyResult> {
    if (Buffer.byteLength(input, 'utf8') > config.maxBodyBytes) {
      return reject('TOO_LARGE', `report larger than ${config.maxBodyBytes} bytes`);
    }
    const jws = input.trim();
    if (!COMPACT_JWS.test(jws)) {
      return reject('MALFORMED_JWS',
        jws.split('.').length === 5
          ? 'an encrypted JWE is not accepted; sign the report as a compact JWS'
          : 'expected a compact JWS: three base64url parts separated by dots',
      );
    }
    let header: ProtectedHeaderParameters;
    try {
      header = decodeProtectedHeader(jws);
    } catch {
      return reject('MALFORMED_JWS', 'the protected header is not base64url-encoded JSON');
    }
    if (!isReportTyp(header.typ)) {
      return reject('WRONG_TYPE', `header typ must be "${REPORT_TYP}" (got ${JSON.stringify(header.typ ?? null)})`);
    }
    if (typeof header.alg !== 'string' || !algorithms.includes(header.alg)) {
      return reject('ALG_NOT_ALLOWED', `header alg ${JSON.stringify(header.alg ?? null)} is not allowed; allowed: ${algorithms.join(', ')}`);
    }
    const kidProblem = validateIdentifier(header.kid, 'header kid', 128);
    if (kidProblem) return reject('UNKNOWN_KEY', kidProblem);
    if (!keys) return reject('UNKNOWN_KEY', 'no reporter keys are configured (reports.jwksFile or reports.jwksUrl)');

    let payloadBytes: Uint8Array;
    try {
      payloadBytes = (await compactVerify(jws, keys, { algorithms })).payload;
    } catch (err) {
      return verifyFailure(err, header);
    }
    let payload: unknown;
    try {
      payload = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payloadBytes));
    } catch {
      return reject('SCHEMA_ERROR', 'payload: not UTF-8 JSON');
    }
    const parsed = parseReportPayload(payload);
    if (!parsed.ok) return reject('SCHEMA_ERROR', parsed.message);

    const ageSeconds = (now.getTime() - Date.parse(parsed.report.reportedAt)) / 1000;
    if (ageSeconds > config.maxAgeSeconds) {
      return reject('REPORT_TOO_OLD', `reportedAt ${parsed.report.reportedAt} is older than ${config.maxAgeSeconds} s`);
    }
    if (-ageSeconds > config.maxSkewSeconds) {
      return reject('REPORT_IN_FUTURE',
        `reportedAt ${parsed.report.reportedAt} is more than ${config.maxSkewSeconds} s ahead of this server's clock`,
      );
    }
    return { ok: true, record: { ...parsed.report, source: header.kid as string, receivedAt: now.toISOString() } };
  }

  return { verify };
}
