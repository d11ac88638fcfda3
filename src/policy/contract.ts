// The plugin contract: facts in, a verdict out. The only module a plugin in plugins/ may import
// (besides src/policy/options.ts). Plugins detect; the engine and config decide what a failure does.
// Self-contained: it imports nothing, so a plugin sees only what is written here
// (test/unit/architecture.test.ts holds it to that).

export type Protocol = 'imap' | 'smtp';

/** Reason codes the core itself produces; plugins add their own (BANNED_APP, OS_TOO_OLD, ...). */
export const CoreReasonCodes = {
  OK: 'OK',
  UNKNOWN_DEVICE: 'UNKNOWN_DEVICE',
  STALE_REPORT: 'STALE_REPORT',
  MALFORMED_RECORD: 'MALFORMED_RECORD',
  UNIDENTIFIED: 'UNIDENTIFIED',
  STORE_UNAVAILABLE: 'STORE_UNAVAILABLE',
  CHECK_ERROR: 'CHECK_ERROR',
  CHECK_TIMEOUT: 'CHECK_TIMEOUT',
  /** A bug or unexpected failure inside the decision itself (logged): tempfail, never allow. */
  INTERNAL_ERROR: 'INTERNAL_ERROR',
  /** A live session an administrator ended from the console. */
  ENDED_BY_ADMIN: 'ENDED_BY_ADMIN',
} as const;

/**
 * The device record as a check sees it: the report a posture source sent, plus when the store took
 * it. The store's record (src/core/device-record.ts) has this shape; tsc checks it where the engine
 * hands a record to a check.
 */
export interface DeviceFacts {
  readonly deviceId: string;
  readonly user: string;
  /** Lower-case platform id: ios, ipados, android, macos, windows, linux, ... */
  readonly platform: string;
  readonly osVersion: string;
  readonly managed: boolean;
  /** Installed app ids (bundle ids / package names). Absent = inventory not visible to the reporter. */
  readonly apps?: readonly string[];
  /** Display names of the installed apps as the MDM shows them; absent when `apps` is. */
  readonly appNames?: readonly string[];
  /** Ownership as the MDM reports it; absent from reports that do not say. */
  readonly ownership?: 'company' | 'personal' | 'unknown';
  /** ISO-8601 time the device state was observed. */
  readonly reportedAt: string;
  /** Who sent it: the reporter key id, or "cli". */
  readonly source: string;
  /** ISO-8601 time the store accepted the report. */
  readonly receivedAt: string;
}

/** How the login proved which device it comes from (docs/identity.md). */
export type IdentitySource = 'oauth' | 'certificate' | 'app-password' | 'asserted' | 'none';

/** What the engine knows about the device, already classified. */
export type DeviceStatus =
  /** A record younger than the configured maximum report age. */
  | 'current'
  /** A record older than the maximum report age: counts as unknown. */
  | 'stale'
  /** Never reported, or the record expired. */
  | 'missing'
  /** Something is stored but does not parse: counts as unknown, never compliant. */
  | 'malformed';

/** Facts the core gathered for one login (or one re-evaluation of a live session). */
export interface CheckFacts {
  readonly user: string;
  readonly protocol: Protocol;
  readonly deviceId: string | null;
  readonly deviceStatus: DeviceStatus;
  /** The record when status is current or stale, otherwise null. */
  readonly device: DeviceFacts | null;
  readonly identitySource: IdentitySource;
  /** `weak` for asserted identities (typed by the user, not bound to a credential). */
  readonly identityStrength: 'strong' | 'weak';
  /** Platform hints: IMAP ID fields, X-Mailer / User-Agent. Never an identity. */
  readonly hints: Readonly<Record<string, string>>;
  /** Groups of the user, from configuration. */
  readonly groups: readonly string[];
  readonly now: Date;
}

/**
 * A plugin's verdict.
 * - pass: the device complies with this check.
 * - fail: it does not; `code` is a stable reason code (e.g. BANNED_APP), `vars` fill the user's
 *   sentence template (e.g. {app: 'TikTok'}).
 * - unknown: the facts do not allow an answer (no record, stale, inventory not visible); the check's
 *   configured `onUnknown` decides what that means.
 */
export type Verdict =
  | { readonly verdict: 'pass' }
  | {
      readonly verdict: 'fail' | 'unknown';
      readonly code: string;
      /** For logs and the audit event (operators), not for the client. */
      readonly reason: string;
      readonly vars?: Readonly<Record<string, string>>;
    };

export interface CheckPlugin<Options = unknown> {
  /** kebab-case; equals the file name in plugins/. */
  readonly name: string;
  /**
   * The reason codes this check's `fail` and `unknown` verdicts can carry, beside the core's
   * (CoreReasonCodes). The built-ins' are listed in docs/errors.md (test/unit/error-codes.test.ts).
   */
  readonly codes?: readonly string[];
  /**
   * Validate and compile the check's `options` from policy.yaml. Throw an Error whose message names
   * the offending option (e.g. "apps.ios[0]: expected a string"); the loader adds file and line.
   */
  readonly parseOptions: (raw: unknown) => Options;
  /** Pure: no I/O, no Redis, no sockets. May be async, but is bounded by the check's timeout. */
  readonly evaluate: (facts: CheckFacts, options: Options) => Verdict | Promise<Verdict>;
}

/** Identity helper that keeps the Options type inferred. */
export const defineCheck = <Options>(plugin: CheckPlugin<Options>): CheckPlugin<Options> => plugin;

/**
 * For checks that need the device record (every built-in except require-device): the `unknown`
 * verdict for a device that is not `current` (missing, stale, malformed), or null when it is current.
 * Missing data is never compliant; the check's `onUnknown` decides what unknown means.
 */
export function unknownUnlessCurrent(facts: CheckFacts): Verdict | null {
  switch (facts.deviceStatus) {
    case 'current':
      return null;
    case 'missing':
      return { verdict: 'unknown', code: CoreReasonCodes.UNKNOWN_DEVICE, reason: 'no device report' };
    case 'stale':
      return {
        verdict: 'unknown',
        code: CoreReasonCodes.STALE_REPORT,
        reason: `device report from ${facts.device?.reportedAt ?? 'unknown time'} is stale`,
      };
    case 'malformed':
      return { verdict: 'unknown', code: CoreReasonCodes.MALFORMED_RECORD, reason: 'stored device record does not parse' };
  }
}
