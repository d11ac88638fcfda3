// `policy simulate`: every known device evaluated under the policy in force and under a candidate,
// as an IMAP login with a strong identity, counted per check and per platform.
import type { DeviceRecord, Exemption, Exemptions, StoredFacts } from '../store/device-store';
import type { DecisionRequest, Decision } from './decision';
import type { CompiledPolicy } from './compile';
import { evaluatePolicy, groupsOf, type SourceFreshness } from './engine';

export interface SimulationContext {
  /** Default: now. */
  readonly now?: Date;
  readonly maxReportAgeHours: number;
  /** Exemptions to consider (expired ones are ignored); read from `store` when not given. */
  readonly exemptions?: readonly Exemption[];
  readonly store?: Pick<Exemptions, 'listExemptions'>;
  /** config `groups`: user → groups. */
  readonly groups?: Readonly<Record<string, readonly string[]>>;
  /** How current connector-written records are (as the decider sees them). */
  readonly sourceFreshness?: (source: string) => SourceFreshness | undefined;
}

export interface SimulationRow {
  /** Check id, platform id, or "all". */
  readonly key: string;
  readonly deniedNow: number;
  readonly deniedCandidate: number;
  readonly newlyDenied: number;
  readonly newlyAllowed: number;
  /** Devices on which the check fails under the candidate whatever its mode (report-only checks included). */
  readonly failing?: number;
}

export interface DeviceChange {
  readonly deviceId: string;
  readonly user: string;
  readonly platform: string;
  /** The reason code and check of the denial (candidate for newly denied, current for newly allowed). */
  readonly reasonCode: string;
  readonly checkId?: string;
}

export interface SimulationResult {
  readonly devices: number;
  readonly currentVersion: string | null;
  readonly candidateVersion: string;
  readonly total: SimulationRow;
  readonly byCheck: readonly SimulationRow[];
  readonly byPlatform: readonly SimulationRow[];
  readonly newlyDenied: readonly DeviceChange[];
  readonly newlyAllowed: readonly DeviceChange[];
}

type Counts = { deniedNow: number; deniedCandidate: number; newlyDenied: number; newlyAllowed: number; failing: number };

const zero = (): Counts => ({ deniedNow: 0, deniedCandidate: 0, newlyDenied: 0, newlyAllowed: 0, failing: 0 });

interface Resolved {
  readonly now: Date;
  readonly maxReportAgeHours: number;
  readonly exemptions: readonly Exemption[];
  readonly groups: Readonly<Record<string, readonly string[]>>;
  readonly sourceFreshness?: (source: string) => SourceFreshness | undefined;
}

/** What a device's login would look like: IMAP, app password (strong), its own exemptions. */
function loginOf(record: DeviceRecord, ctx: Resolved): { request: DecisionRequest; facts: StoredFacts } {
  const user = record.user.toLowerCase();
  const exemptions = ctx.exemptions.filter((e) =>
    e.scope === 'device' ? e.subject === record.deviceId : e.subject.toLowerCase() === user,
  );
  return {
    request: { user: record.user, deviceId: record.deviceId, protocol: 'imap', identitySource: 'app-password', identityStrength: 'strong', trigger: 'simulate' },
    // No first-seen marks: a check with a grace period starts its grace now, as it would on activation.
    facts: { device: { state: 'found', record }, exemptions, firstSeen: {}, killSwitch: false },
  };
}

async function decide(policy: CompiledPolicy, record: DeviceRecord, ctx: Resolved): Promise<Decision> {
  const { request, facts } = loginOf(record, ctx);
  const engineCtx = {
    now: ctx.now,
    maxReportAgeHours: ctx.maxReportAgeHours,
    groups: groupsOf(ctx.groups, record.user),
    brakeReportOnly: new Set<string>(),
    refId: 'SIMULATION',
    sourceFreshness: ctx.sourceFreshness,
  };
  return (await evaluatePolicy(policy, request, facts, engineCtx)).decision;
}

/** The candidate with every check in report: every check runs, so each one's failures can be counted. */
function allInReport(policy: CompiledPolicy): CompiledPolicy {
  return { ...policy, config: { ...policy.config, reportOnly: true } };
}

function failedChecks(decision: Decision, policy: CompiledPolicy): string[] {
  const onUnknown = new Map(policy.checks.map((c) => [c.id, c.config.onUnknown]));
  return decision.checks
    .filter((c) => c.outcome === 'fail' || c.outcome === 'error' || (c.outcome === 'unknown' && onUnknown.get(c.checkId) === 'fail'))
    .map((c) => c.checkId);
}

/**
 * Evaluates every device under `current` (null = no policy: everyone allowed) and `candidate`.
 * Plugins are pure; the only store read is the exemption list (when not passed in).
 */
export async function simulate(
  current: CompiledPolicy | null,
  candidate: CompiledPolicy,
  devices: readonly DeviceRecord[],
  context: SimulationContext,
): Promise<SimulationResult> {
  const ctx: Resolved = {
    now: context.now ?? new Date(),
    maxReportAgeHours: context.maxReportAgeHours,
    exemptions: context.exemptions ?? (await context.store?.listExemptions()) ?? [],
    groups: context.groups ?? {},
    sourceFreshness: context.sourceFreshness,
  };
  const total = zero();
  const byCheck = new Map<string, Counts>();
  const byPlatform = new Map<string, Counts>();
  for (const c of [...candidate.checks, ...(current?.checks ?? [])]) if (!byCheck.has(c.id)) byCheck.set(c.id, zero());
  const row = (map: Map<string, Counts>, key: string): Counts => map.get(key) ?? map.set(key, zero()).get(key)!;
  const newlyDenied: DeviceChange[] = [];
  const newlyAllowed: DeviceChange[] = [];
  const probe = allInReport(candidate);

  for (const record of devices) {
    const before = current ? await decide(current, record, ctx) : null;
    const after = await decide(candidate, record, ctx);
    const deniedBefore = before !== null && before.action !== 'allow';
    const deniedAfter = after.action !== 'allow';
    const platform = record.platform.toLowerCase();
    row(byPlatform, platform); // every platform gets a row, also one nothing changes for
    const bump = (field: keyof Counts, d: Decision) => {
      for (const r of [total, row(byPlatform, platform), row(byCheck, d.decidedBy ?? d.reasonCode)]) r[field]++;
    };
    const change = (d: Decision): DeviceChange => ({
      deviceId: record.deviceId,
      user: record.user,
      platform,
      reasonCode: d.reasonCode,
      ...(d.decidedBy ? { checkId: d.decidedBy } : {}),
    });

    if (deniedBefore) bump('deniedNow', before);
    if (deniedAfter) bump('deniedCandidate', after);
    if (deniedAfter && !deniedBefore) {
      bump('newlyDenied', after);
      newlyDenied.push(change(after));
    }
    if (deniedBefore && !deniedAfter) {
      bump('newlyAllowed', before);
      newlyAllowed.push(change(before));
    }
    for (const checkId of failedChecks(await decide(probe, record, ctx), candidate)) row(byCheck, checkId).failing++;
  }

  const rows = (map: Map<string, Counts>) => [...map].map(([key, c]) => ({ key, ...c }));
  return {
    devices: devices.length,
    currentVersion: current?.version ?? null,
    candidateVersion: candidate.version,
    total: { key: 'all', ...total },
    byCheck: rows(byCheck),
    byPlatform: rows(byPlatform).sort((a, b) => a.key.localeCompare(b.key)),
    newlyDenied,
    newlyAllowed,
  };
}

/** Columns two spaces apart; the first left-aligned, numbers (the rest) right-aligned when `numeric`. */
function columns(rows: readonly (readonly string[])[], numeric: boolean): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const pad = (v: string, i: number) => (i === 0 || !numeric ? v.padEnd(widths[i]!) : v.padStart(widths[i]!));
  return rows.map((r) => r.map(pad).join('  ').trimEnd());
}

function table(title: string, rows: readonly SimulationRow[], withFailing: boolean): string[] {
  const headers = [title, 'denied now', 'denied then', 'newly denied', 'newly allowed', ...(withFailing ? ['fails (any mode)'] : [])];
  const cells = rows.map((r) => [
    r.key,
    ...[r.deniedNow, r.deniedCandidate, r.newlyDenied, r.newlyAllowed, ...(withFailing ? [r.failing ?? 0] : [])].map(String),
  ]);
  return columns([headers, ...cells], true);
}

/** A readable report: per check, per platform, totals, and the first devices that change. */
export function formatSimulation(result: SimulationResult, options: { maxDevices?: number } = {}): string {
  const from = result.currentVersion === null ? 'no policy' : `policy in force ${result.currentVersion}`;
  const out = [`Simulation over ${result.devices} known device${result.devices === 1 ? '' : 's'}: ${from} → candidate ${result.candidateVersion}`];
  if (result.devices === 0) {
    out.push('No device is known to the store, so nothing can be compared.');
    return out.join('\n');
  }
  const share = (n: number) => `${((n / result.devices) * 100).toFixed(1)}%`;
  out.push(
    '',
    ...table('check', result.byCheck, true),
    '',
    ...table('platform', [...result.byPlatform, result.total], false),
    '',
    `Newly denied: ${result.total.newlyDenied} (${share(result.total.newlyDenied)}); newly allowed: ${result.total.newlyAllowed} (${share(result.total.newlyAllowed)}).`,
  );
  const max = options.maxDevices ?? 20;
  const list = (title: string, changes: readonly DeviceChange[]) => {
    if (changes.length === 0) return;
    out.push('', `${title}${changes.length > max ? ` (first ${max} of ${changes.length})` : ''}:`);
    const rows = changes.slice(0, max).map((c) => [c.deviceId, c.user, c.platform, c.checkId ?? '-', c.reasonCode]);
    out.push(...columns(rows, false).map((line) => `  ${line}`));
  };
  list('Newly denied devices', result.newlyDenied);
  list('Newly allowed devices', result.newlyAllowed);
  return out.join('\n');
}
