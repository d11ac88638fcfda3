// The runtime brake and the kill switch. The brake watches the decisions made just after a policy
// change; when too many are denials it puts the newest enforcing checks in `report` on this instance
// and alerts ops. The kill switch is a shared flag that puts every check in `report` on every instance.
import type { CheckConfig, PolicyConfig } from '../core/config-types';
import type { Logger } from '../core/log';
import { CoreReasonCodes, type Decision } from './decision';
import type { CompiledCheck, CompiledPolicy } from './compile';
import { errorText } from '../core/errors';
import { KILL_SWITCH_FLAG, type Flags } from '../store/device-store';
import { killSwitchOn } from '../store/record-codec';

/**
 * Who changed the kill switch, when and why, beside the flag itself. A separate flag, not a richer
 * value in `kill-switch`: every instance (an older one too, during a rolling upgrade) reads that flag
 * as "1" = on, so it keeps meaning exactly that.
 */
export const KILL_SWITCH_STATE_FLAG = 'kill-switch:state';

/** The kill switch as `GET /v1/kill-switch` and `mailwarden kill-switch status` show it. */
export interface KillSwitchState {
  readonly on: boolean;
  /** When it was last switched to this state (null: set outside mailwarden, e.g. with redis-cli). */
  readonly since: string | null;
  readonly by: string | null;
  readonly note: string | null;
}

export interface KillSwitchChange {
  readonly by?: string;
  readonly note?: string;
  readonly at?: Date;
}

/**
 * Sets the shared kill-switch flag, after recording who, when and why. Both store adapters publish
 * the `kill-switch` ChangeEvent in the flag's write (record-codec flagChangeEvent), so every instance
 * hears it exactly once. Switching it to the state it is in keeps the first `since` and `by`.
 */
export async function setKillSwitch(store: Flags, on: boolean, change: KillSwitchChange = {}): Promise<void> {
  const before = await readKillSwitch(store);
  const same = before.on === on && before.since !== null;
  const state: KillSwitchState = {
    on,
    since: same ? before.since : (change.at ?? new Date()).toISOString(),
    by: same ? before.by : (change.by ?? null),
    note: change.note ?? (same ? before.note : null),
  };
  await store.setFlag(KILL_SWITCH_STATE_FLAG, JSON.stringify(state));
  await store.setFlag(KILL_SWITCH_FLAG, on ? '1' : null);
}

/** The flag decides on/off; the record beside it counts only when it describes that same state. */
export async function readKillSwitch(store: Pick<Flags, 'getFlag'>): Promise<KillSwitchState> {
  const [flag, raw] = await Promise.all([store.getFlag(KILL_SWITCH_FLAG), store.getFlag(KILL_SWITCH_STATE_FLAG)]);
  const on = killSwitchOn(flag);
  const recorded = parseState(raw);
  return recorded?.on === on ? recorded : { on, since: null, by: null, note: null };
}

function parseState(raw: string | null): KillSwitchState | null {
  if (raw === null) return null;
  try {
    const v = JSON.parse(raw) as Record<string, unknown>;
    const textOrNull = (x: unknown): string | null => (typeof x === 'string' ? x : null);
    if (typeof v.on !== 'boolean') return null;
    return { on: v.on, since: textOrNull(v.since), by: textOrNull(v.by), note: textOrNull(v.note) };
  } catch {
    return null;
  }
}

/** What decides how a check behaves; the sentence and the line do not. */
function behaviour(check: CheckConfig): string {
  const { plugin, mode, action, onUnknown, onError, timeoutMs, scope, options, graceHours, rollout } = check;
  return JSON.stringify({ plugin, mode, action, onUnknown, onError, timeoutMs, scope, options, graceHours, rollout });
}

/**
 * Whether `check` behaves exactly as it did in one of `recent` (policies in force lately) while that
 * policy was enforcing: a check put back after a mistaken edit is a known behaviour, not a new one.
 */
function restored(check: CompiledCheck, recent: readonly PolicyConfig[]): boolean {
  const wanted = behaviour(check.config);
  return recent.some((p) => !p.reportOnly && p.checks.some((c) => c.id === check.id && behaviour(c) === wanted));
}

/**
 * The enforcing checks a change made newer: added or changed ones (all of them when the global
 * reportOnly switch was just turned off). Falls back to the last enforcing check in file order.
 */
export function newestEnforcingChecks(previous: CompiledPolicy, next: CompiledPolicy): string[] {
  const enforcing = next.checks.filter((c) => c.config.mode === 'enforce');
  const before = new Map(previous.checks.map((c) => [c.id, behaviour(c.config)]));
  const globallyEnabled = previous.config.reportOnly && !next.config.reportOnly;
  const changed = enforcing.filter((c) => globallyEnabled || before.get(c.id) !== behaviour(c.config)).map((c) => c.id);
  if (changed.length > 0) return changed;
  const last = enforcing.at(-1);
  return last ? [last.id] : [];
}

export interface BrakeOptions {
  readonly log: Logger;
  readonly alert?: (kind: 'brake-tripped', details: Readonly<Record<string, unknown>>) => unknown;
  /** Called once when this brake trips (by its own count, not by adopt()); the workers relay it. */
  readonly onTrip?: (trip: BrakeTrip) => void;
  /**
   * This process's share of the instance's decisions (1/workers with node:cluster workers): the
   * minimum count is scaled by it, so that N workers together trip after about `minLogins`.
   */
  readonly shareOfDecisions?: number;
}

/** A trip as the workers relay it: the policy version it was counted for and the checks put in report. */
export interface BrakeTrip {
  readonly policyVersion: string;
  readonly checks: readonly string[];
}

export interface BrakeStatus {
  /** Watching decisions of this policy version until this time (null = not watching). */
  readonly watchingUntil: string | null;
  readonly candidates: readonly string[];
  readonly logins: number;
  readonly denied: number;
  /** Checks the brake put in `report` (empty until it trips). */
  readonly tripped: readonly string[];
}

export class Brake {
  private version: string | null = null;
  private watchUntilMs = 0;
  private candidates: string[] = [];
  private logins = 0;
  private denied = 0;
  private tripped = new Set<string>();

  constructor(private readonly options: BrakeOptions) {}

  /** Check ids in `report` because the brake tripped (passed to the engine). */
  reportOnly(): ReadonlySet<string> {
    return this.tripped;
  }

  /**
   * A new policy is in force. A tripped brake is released (the operator changed the policy), and
   * the decisions of the next `brake.windowSeconds` are watched. The first policy (previous null)
   * is not a change: there is no earlier behaviour to fall back to. Checks that behave as they did
   * in a policy of `recent` (in force lately) are restored, not new: the brake never watches them,
   * or re-tightening after a mistake would be undone by the denials it is meant to bring back.
   */
  policyChanged(previous: CompiledPolicy | null, next: CompiledPolicy, now: Date, recent: readonly PolicyConfig[] = []): void {
    if (previous !== null && previous.version === next.version) return;
    this.tripped = new Set();
    this.version = next.version;
    this.logins = 0;
    this.denied = 0;
    const brake = next.config.brake;
    const newest = previous && brake.enabled ? newestEnforcingChecks(previous, next) : [];
    this.candidates = newest.filter((id) => !restored(next.checks.find((c) => c.id === id)!, recent));
    this.watchUntilMs = this.candidates.length > 0 ? now.getTime() + brake.windowSeconds * 1000 : 0;
  }

  /**
   * Counts one decision (a login or a live session's re-evaluation) of the watched policy. Outages
   * and internal errors are not the policy's doing and are not counted.
   */
  record(decision: Decision, policy: CompiledPolicy, now: Date): void {
    if (decision.policyVersion !== this.version || now.getTime() > this.watchUntilMs) return;
    if (decision.reasonCode === CoreReasonCodes.STORE_UNAVAILABLE || decision.reasonCode === CoreReasonCodes.INTERNAL_ERROR) return;
    this.logins++;
    if (decision.action !== 'allow' && decision.decidedBy !== undefined) this.denied++;
    const { minLogins, maxDeniedPercent, windowSeconds } = policy.config.brake;
    const deniedPercent = (this.denied / this.logins) * 100;
    if (this.logins < minLogins * (this.options.shareOfDecisions ?? 1) || deniedPercent <= maxDeniedPercent) return;

    this.tripped = new Set(this.candidates);
    this.watchUntilMs = 0;
    const details = {
      policyVersion: this.version,
      checks: this.candidates,
      logins: this.logins,
      denied: this.denied,
      deniedPercent: Math.round(deniedPercent * 10) / 10,
      maxDeniedPercent,
      windowSeconds,
    };
    this.options.log.error(
      `brake tripped: ${details.deniedPercent}% of ${this.logins} decisions denied since the policy change (limit ${maxDeniedPercent}%); ` +
        `checks now in report mode on this instance: ${this.candidates.join(', ')}`,
      { msg: 'brake-tripped', ...details },
    );
    const failed = (err: unknown) => this.options.log.error('brake alert failed', { error: errorText(err) });
    try {
      this.options.onTrip?.({ policyVersion: details.policyVersion, checks: details.checks });
      Promise.resolve(this.options.alert?.('brake-tripped', details)).catch(failed);
    } catch (err) {
      failed(err);
    }
  }

  /**
   * Another worker of this instance tripped for `trip.policyVersion`: put the same checks in report
   * here too. A trip for another version (a reload raced it) or while not watching is ignored.
   */
  adopt(trip: BrakeTrip): void {
    if (trip.policyVersion !== this.version || this.watchUntilMs === 0) return;
    this.tripped = new Set(trip.checks.filter((id) => this.candidates.includes(id)));
    this.watchUntilMs = 0;
    this.options.log.error(`brake tripped on another worker: checks now in report mode on this instance: ${[...this.tripped].join(', ')}`, {
      msg: 'brake-tripped',
      policyVersion: trip.policyVersion,
      checks: [...this.tripped],
    });
  }

  status(): BrakeStatus {
    return {
      watchingUntil: this.watchUntilMs > 0 ? new Date(this.watchUntilMs).toISOString() : null,
      candidates: this.candidates,
      logins: this.logins,
      denied: this.denied,
      tripped: [...this.tripped],
    };
  }
}
