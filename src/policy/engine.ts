// The policy engine: one login (or live session) + the stored facts → one Decision. Pure apart from
// the plugins it calls (which are pure by contract): no store access, no logging, no clock of its own.
import { createHash } from 'node:crypto';
import type { CheckFacts, DeviceStatus, Verdict } from './contract';
import { CoreReasonCodes, type CheckMode, type CheckResult, type Decision, type DecisionRequest } from './decision';
import type { CompiledCheck, CompiledPolicy } from './compile';
import type { DeviceLookup, DeviceRecord, Exemption, StoredFacts } from '../store/device-store';
import { errorText } from '../core/errors';

export interface EngineContext {
  readonly now: Date;
  /** store.maxReportAgeHours: an older report is stale. */
  readonly maxReportAgeHours: number;
  /** Groups of the user (config `groups`). */
  readonly groups: readonly string[];
  /** Check ids the runtime brake has put in `report`. */
  readonly brakeReportOnly: ReadonlySet<string>;
  readonly refId: string;
  /** Freshness of the sources connectors write (absent: every record by its own reportedAt). */
  readonly sourceFreshness?: (source: string) => SourceFreshness | undefined;
  /** The blocked person's console page (`{myUrl}` in sentences): admin.console.publicUrl + /my/. */
  readonly myUrl?: string;
}

export interface EngineResult {
  readonly decision: Decision;
  /** Checks whose grace period starts with this decision: mark first-seen-non-compliant now. */
  readonly firstSeenToMark: string[];
  /** Checks that passed while a first-seen mark exists: clear it. */
  readonly firstSeenToClear: string[];
}

const HOUR_MS = 3_600_000;

const PLATFORM_LABELS: Readonly<Record<string, string>> = {
  ios: 'iOS',
  ipados: 'iPadOS',
  android: 'Android',
  macos: 'macOS',
  windows: 'Windows',
  linux: 'Linux',
  chromeos: 'ChromeOS',
};

/** How a platform id is shown to people ("ios" → "iOS"). */
export function platformLabel(platform: string | undefined): string {
  if (!platform) return '';
  return PLATFORM_LABELS[platform.toLowerCase()] ?? platform;
}

/**
 * How current the records of one source are, when a connector wrote them (docs/connectors.md): a
 * connector rewrites only changed records, so its last complete sync, not each record's own
 * reportedAt, says how old what it vouches for is.
 */
export interface SourceFreshness {
  /** ISO time of the connector's last complete sync. */
  readonly syncedAt: string;
  /** No complete sync within the connector's staleAfterSeconds. */
  readonly stale: boolean;
  /** A stale source's devices: on their last known state, or as stale reports. */
  readonly onStale: 'last-known' | 'stale';
}

/**
 * Classifies a lookup: a record older than maxReportAgeHours (or with an unreadable time) is not
 * current. A record a connector vouches for is seen as of the connector's last complete sync, and
 * while that connector is stale it is judged by the connector's rule — one fault for the source,
 * not a stale report per device.
 */
export function classifyDevice(
  lookup: DeviceLookup | null,
  now: Date,
  maxReportAgeHours: number,
  sourceFreshness?: (source: string) => SourceFreshness | undefined,
): { status: DeviceStatus; device: DeviceRecord | null } {
  if (lookup === null || lookup.state === 'missing') return { status: 'missing', device: null };
  if (lookup.state === 'malformed') return { status: 'malformed', device: null };
  const reported = Date.parse(lookup.record.reportedAt);
  if (Number.isNaN(reported)) return { status: 'malformed', device: null };
  const vouched = sourceFreshness?.(lookup.record.source);
  if (vouched && Date.parse(vouched.syncedAt) >= reported) {
    const asOfSync = { ...lookup.record, reportedAt: vouched.syncedAt };
    if (!vouched.stale || vouched.onStale === 'last-known') return { status: 'current', device: asOfSync };
    return { status: 'stale', device: lookup.record };
  }
  const stale = now.getTime() - reported > maxReportAgeHours * HOUR_MS;
  return { status: stale ? 'stale' : 'current', device: lookup.record };
}

/**
 * The groups of `user` from config `groups`, case-insensitively (mail servers fold login names, so
 * "Alice@Example.com" in the config is the same account as "alice@example.com" at login; a miss
 * would silently skip every group-scoped check). Own keys only: a user named "constructor" has none.
 */
export function groupsOf(groups: Readonly<Record<string, readonly string[]>>, user: string): readonly string[] {
  let folded = foldedGroups.get(groups);
  if (!folded) {
    folded = new Map();
    for (const [name, list] of Object.entries(groups)) {
      const key = name.toLowerCase();
      folded.set(key, [...new Set([...(folded.get(key) ?? []), ...list])]);
    }
    foldedGroups.set(groups, folded);
  }
  return folded.get(user.toLowerCase()) ?? [];
}

/** config `groups` object → the same with lower-cased user names (built once per loaded config). */
const foldedGroups = new WeakMap<object, Map<string, readonly string[]>>();

/** Stable bucket in [0, 100) for a check and a device: the same device stays in or out of a rollout. */
export function rolloutBucket(checkId: string, subject: string): number {
  const digest = createHash('sha256').update(`${checkId}\0${subject}`).digest();
  return (digest.readUInt32BE(0) / 0x1_0000_0000) * 100;
}

/** Fills `{name}` placeholders; unknown names stay visible so a typo shows up in `policy simulate`. */
export function renderTemplate(template: string, vars: Readonly<Record<string, string | undefined>>): string {
  return template
    .replace(/\{(\w+)\}/g, (whole, name: string) => (Object.hasOwn(vars, name) ? (vars[name] ?? '') : whole))
    .replace(/[ \t]{2,}/g, ' ')
    .trim();
}

/** "2025-06-01 14:00 UTC": readable on a phone, unambiguous across time zones. */
export function humanTime(date: Date): string {
  return `${date.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** The user must always be able to quote the reference id, even if a template forgot it. */
function withRefId(message: string, refId: string): string {
  return message.includes(refId) ? message : `${message} Ref ${refId}.`;
}

function exemptionFor(
  check: CompiledCheck,
  exemptions: readonly Exemption[],
  request: DecisionRequest,
  now: Date,
  foreignDevice: boolean,
): Exemption | undefined {
  return exemptions.find(
    (e) =>
      Date.parse(e.expiresAt) > now.getTime() &&
      (e.scope === 'device'
        ? !foreignDevice && e.subject === request.deviceId
        : e.subject.toLowerCase() === request.user.toLowerCase()) &&
      (e.checks === undefined || e.checks.includes(check.id)),
  );
}

function inScope(check: CompiledCheck, request: DecisionRequest, device: DeviceRecord | null, groups: readonly string[]): boolean {
  const scope = check.config.scope;
  // Without a record the platform is unknown: the check runs, and its unknown verdict decides.
  if (scope.platforms && device && !scope.platforms.includes(device.platform.toLowerCase())) return false;
  if (scope.protocols && !scope.protocols.includes(request.protocol)) return false;
  if (scope.users && !scope.users.some((u) => u.toLowerCase() === request.user.toLowerCase())) return false;
  if (scope.groups && !scope.groups.some((g) => groups.includes(g))) return false;
  return true;
}

function effectiveMode(check: CompiledCheck, compiled: CompiledPolicy, request: DecisionRequest, stored: StoredFacts, ctx: EngineContext): CheckMode {
  const mode = check.config.mode;
  if (mode === 'off' || mode === 'report') return mode;
  if (compiled.config.reportOnly || stored.killSwitch || ctx.brakeReportOnly.has(check.id)) return 'report';
  const rollout = check.config.rollout;
  if (rollout && (rollout.percent !== undefined || rollout.groups !== undefined)) {
    const byPercent = rollout.percent !== undefined && rolloutBucket(check.id, request.deviceId ?? request.user) < rollout.percent;
    const byGroup = rollout.groups !== undefined && rollout.groups.some((g) => ctx.groups.includes(g));
    if (!byPercent && !byGroup) return 'report';
  }
  return mode;
}

/** One check's run, normalised: what the audit records and what the engine acts on. */
interface CheckRun {
  readonly outcome: 'pass' | 'fail' | 'unknown' | 'error';
  readonly code?: string;
  readonly reason?: string;
  readonly vars?: Readonly<Record<string, string>>;
}

const TIMED_OUT = Symbol('timeout');

function isVerdict(v: unknown): v is Verdict {
  if (typeof v !== 'object' || v === null) return false;
  const verdict = (v as { verdict?: unknown }).verdict;
  if (verdict === 'pass') return true;
  return (verdict === 'fail' || verdict === 'unknown') && typeof (v as { code?: unknown }).code === 'string';
}

/** Runs one plugin; a throw, a timeout or a malformed verdict is an error outcome, never a pass. */
async function runCheck(check: CompiledCheck, facts: CheckFacts): Promise<CheckRun> {
  let timer: NodeJS.Timeout | undefined;
  try {
    let result: unknown = check.plugin.evaluate(facts, check.options);
    // A synchronous plugin cannot be interrupted anyway; only a promise (any thenable) needs the timer.
    if (typeof (result as PromiseLike<unknown> | null)?.then === 'function') {
      const timeout = new Promise<typeof TIMED_OUT>((resolve) => {
        timer = setTimeout(resolve, check.config.timeoutMs, TIMED_OUT);
      });
      result = await Promise.race([result, timeout]);
      if (result === TIMED_OUT) {
        return { outcome: 'error', code: CoreReasonCodes.CHECK_TIMEOUT, reason: `no verdict within ${check.config.timeoutMs} ms` };
      }
    }
    if (!isVerdict(result)) return { outcome: 'error', code: CoreReasonCodes.CHECK_ERROR, reason: 'plugin returned no valid verdict' };
    if (result.verdict === 'pass') return { outcome: 'pass' };
    return { outcome: result.verdict, code: result.code, reason: result.reason, ...(result.vars ? { vars: result.vars } : {}) };
  } catch (err) {
    return { outcome: 'error', code: CoreReasonCodes.CHECK_ERROR, reason: errorText(err) };
  } finally {
    if (timer) clearTimeout(timer);
  }
}

function elapsed(start: number): number {
  return Math.round((performance.now() - start) * 1000) / 1000;
}

/** Decision fields every outcome shares. */
function baseDecision(policyVersion: string, request: DecisionRequest, refId: string, now: Date) {
  return {
    refId,
    user: request.user,
    deviceId: request.deviceId,
    identitySource: request.identitySource,
    identityStrength: request.identityStrength,
    protocol: request.protocol,
    policyVersion,
    at: now.toISOString(),
  };
}

const FALLBACK_TEMPFAIL = 'Mail is temporarily unavailable. Try again in a few minutes. Ref {refId}.';

/**
 * A tempfail no check decided (store unavailable, an internal error), with the policy's tempfail
 * sentence; `compiled` may be null when even the policy could not be read.
 */
export function tempfailDecision(
  compiled: CompiledPolicy | null,
  request: DecisionRequest,
  refId: string,
  now: Date,
  reasonCode: string,
): Decision {
  const template = compiled?.config.messages.tempfail ?? FALLBACK_TEMPFAIL;
  const vars = { user: request.user, deviceId: request.deviceId ?? '', refId, helpdesk: compiled?.config.helpdesk ?? '', platform: '' };
  return {
    ...baseDecision(compiled?.version ?? 'unknown', request, refId, now),
    action: 'tempfail',
    reasonCode,
    fault: 'system',
    message: withRefId(renderTemplate(template, vars), refId),
    warnings: [],
    checks: [],
  };
}

export async function evaluatePolicy(
  compiled: CompiledPolicy,
  request: DecisionRequest,
  stored: StoredFacts,
  ctx: EngineContext,
): Promise<EngineResult> {
  const policy = compiled.config;
  const base = baseDecision(compiled.version, request, ctx.refId, ctx.now);
  const firstSeenToMark: string[] = [];
  const firstSeenToClear: string[] = [];
  const done = (decision: Decision): EngineResult => ({ decision, firstSeenToMark, firstSeenToClear });
  const commonVars = { user: request.user, deviceId: request.deviceId ?? '', refId: ctx.refId, helpdesk: policy.helpdesk, myUrl: ctx.myUrl ?? '' };

  // No device identity at all: the policy's `unidentified` rule. `allow` lets the checks decide
  // (with no device, require-device and friends see "missing").
  const unidentified = request.deviceId === null || request.identitySource === 'none';
  if (unidentified && policy.unidentified.action !== 'allow') {
    const message = withRefId(renderTemplate(policy.unidentified.message, { ...commonVars, platform: '' }), ctx.refId);
    return done({ ...base, action: policy.unidentified.action, reasonCode: CoreReasonCodes.UNIDENTIFIED, fault: 'policy', message, warnings: [], checks: [] });
  }

  // A record that names another user is not this login's device (anyone can type a device id into
  // an asserted name): the login sees no record, and that device's exemptions do not apply.
  const foreignDevice =
    stored.device?.state === 'found' && stored.device.record.user.toLowerCase() !== request.user.toLowerCase();
  const { status, device } = classifyDevice(foreignDevice ? { state: 'missing' } : stored.device, ctx.now, ctx.maxReportAgeHours, ctx.sourceFreshness);
  const facts: CheckFacts = {
    user: request.user,
    protocol: request.protocol,
    deviceId: request.deviceId,
    deviceStatus: status,
    device,
    identitySource: request.identitySource,
    identityStrength: request.identityStrength,
    hints: request.hints ?? {},
    groups: ctx.groups,
    now: ctx.now,
  };
  const platform = platformLabel(device?.platform);
  const results: CheckResult[] = [];
  const warnings: string[] = [];

  for (const check of compiled.checks) {
    const cfg = check.config;
    const mode = cfg.mode;
    if (mode === 'off' || !inScope(check, request, device, ctx.groups)) {
      results.push({ checkId: check.id, plugin: cfg.plugin, mode, effectiveMode: mode, outcome: 'skipped', ms: 0 });
      continue;
    }
    const effective = effectiveMode(check, compiled, request, stored, ctx);
    const start = performance.now();
    const run = await runCheck(check, facts);
    const head = { checkId: check.id, plugin: cfg.plugin, mode, effectiveMode: effective, ms: elapsed(start) };
    const detail = { ...(run.code ? { code: run.code } : {}), ...(run.reason ? { reason: run.reason } : {}) };

    // An `unknown` with onUnknown: pass counts as passing (recorded as unknown for the audit).
    if (run.outcome === 'pass' || (run.outcome === 'unknown' && cfg.onUnknown === 'pass')) {
      if (!foreignDevice && Object.hasOwn(stored.firstSeen, check.id)) firstSeenToClear.push(check.id);
      results.push({ ...head, outcome: run.outcome, ...detail });
      continue;
    }
    const exemption = exemptionFor(check, stored.exemptions, request, ctx.now, foreignDevice);
    if (exemption) {
      const note = `exempt until ${exemption.expiresAt} (${exemption.note})`;
      results.push({ ...head, outcome: 'exempt', ...detail, reason: run.reason ? `${note}; ${run.reason}` : note });
      continue;
    }

    if (run.outcome === 'error') {
      results.push({ ...head, outcome: 'error', ...detail });
      // A broken check blocks only where the check may block; onError (never allow) decides.
      if (effective !== 'enforce') continue;
      const message = withRefId(renderTemplate(policy.messages.tempfail, { ...commonVars, platform }), ctx.refId);
      return done({ ...base, action: cfg.onError, reasonCode: run.code!, fault: 'system', message, warnings, decidedBy: check.id, checks: results });
    }

    // Plugin vars first: the core's own ({refId}, {user}, …) cannot be overridden by a plugin.
    const vars = { ...run.vars, ...commonVars, platform };
    const message = withRefId(renderTemplate(cfg.message, vars), ctx.refId);

    // Enforced with a grace period: allowed with a warning until first-seen + graceHours. Another
    // user's device has none for this login (and its marks are not this login's to set or clear).
    let graceUntil: Date | null = null;
    if (effective === 'enforce' && cfg.graceHours > 0 && request.deviceId !== null && !foreignDevice) {
      const seen = stored.firstSeen[check.id];
      if (seen === undefined) firstSeenToMark.push(check.id);
      const until = new Date((seen ?? ctx.now.getTime()) + cfg.graceHours * HOUR_MS);
      if (ctx.now < until) graceUntil = until;
    }
    results.push({ ...head, outcome: run.outcome, ...detail, message, ...(graceUntil ? { graceUntil: graceUntil.toISOString() } : {}) });

    if (effective === 'report') continue;
    if (effective === 'warn') {
      warnings.push(`${policy.messages.warnPrefix} ${message}`);
      continue;
    }
    if (graceUntil) {
      // The warning says when the block starts, from the first failure on.
      const until = humanTime(graceUntil);
      const graceText = cfg.graceMessage
        ? withRefId(renderTemplate(cfg.graceMessage, { ...vars, graceUntil: until }), ctx.refId)
        : `From ${until}: ${message}`;
      warnings.push(`${policy.messages.warnPrefix} ${graceText}`);
      continue;
    }
    return done({ ...base, action: cfg.action, reasonCode: run.code!, fault: 'policy', message, warnings, decidedBy: check.id, checks: results });
  }

  return done({ ...base, action: 'allow', reasonCode: CoreReasonCodes.OK, fault: 'policy', warnings, checks: results });
}
