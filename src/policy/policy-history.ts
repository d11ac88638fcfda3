// The policies in force recently, shared by every instance through a store flag: what the
// blast-radius guard and the brake compare a change with. Returning to one of them is never blocked
// (re-tightening after a mistaken or half-written file), and the baseline at start is the last
// policy that stayed in force for the whole window, not whichever was loaded last.
import { policyVersion } from '../core/config';
import type { DeviceStore } from '../store/device-store';

/** Store flag holding the history (JSON). Replaces `policy:active`, which is still read once as a seed. */
export const POLICY_HISTORY_FLAG = 'policy:history';
export const LEGACY_ACTIVE_POLICY_FLAG = 'policy:active';

/** Entries kept besides the baseline: enough for a busy day of edits, small enough for one flag. */
const MAX_ENTRIES = 16;

export interface PolicyInForce {
  readonly version: string;
  /** The YAML text, so any instance can compile it again. */
  readonly text: string;
  readonly fromMs: number;
  /** null while it is the policy in force. */
  readonly untilMs: number | null;
}

function isEntry(value: unknown): value is PolicyInForce {
  const e = value as Record<string, unknown> | null;
  return (
    typeof e === 'object' &&
    e !== null &&
    typeof e.version === 'string' &&
    typeof e.text === 'string' &&
    Number.isFinite(e.fromMs) &&
    (e.untilMs === null || Number.isFinite(e.untilMs))
  );
}

/** The stored history, oldest first; anything unreadable is dropped (the guard then has less to go on, never more). */
export function parseHistory(raw: string | null): PolicyInForce[] {
  if (raw === null) return [];
  try {
    const value: unknown = JSON.parse(raw);
    return Array.isArray(value) ? value.filter(isEntry) : [];
  } catch {
    return [];
  }
}

const endMs = (entry: PolicyInForce, nowMs: number): number => entry.untilMs ?? nowMs;

/** Policies in force at some moment of the last `windowMs`, newest first. */
export function inForceWithin(history: readonly PolicyInForce[], nowMs: number, windowMs: number): PolicyInForce[] {
  return history.filter((e) => endMs(e, nowMs) >= nowMs - windowMs).reverse();
}

/**
 * The newest policy that stayed in force for at least `windowMs`: a policy active for a few seconds
 * by mistake never becomes it. Without one, the oldest entry known (the state before the recent edits).
 */
export function establishedBaseline(history: readonly PolicyInForce[], nowMs: number, windowMs: number): PolicyInForce | null {
  for (let i = history.length - 1; i >= 0; i--) {
    const e = history[i]!;
    if (endMs(e, nowMs) - e.fromMs >= windowMs) return e;
  }
  return history[0] ?? null;
}

/** The history after `policy` became the one in force at `nowMs` (unchanged when it already is). */
export function withActivation(
  history: readonly PolicyInForce[],
  policy: { readonly version: string; readonly text: string },
  nowMs: number,
  windowMs: number,
): PolicyInForce[] {
  const last = history.at(-1);
  if (last && last.untilMs === null && last.version === policy.version) return [...history];
  const closed = history.map((e) => (e.untilMs === null ? { ...e, untilMs: nowMs } : e));
  const next = [...closed, { version: policy.version, text: policy.text, fromMs: nowMs, untilMs: null }];
  const baseline = establishedBaseline(next, nowMs, windowMs);
  const recent = next.filter((e) => endMs(e, nowMs) >= nowMs - windowMs).slice(-MAX_ENTRIES);
  return baseline && !recent.includes(baseline) ? [baseline, ...recent] : recent;
}

/** Reads and writes the shared history. Failures propagate: the caller decides what an outage means. */
export class PolicyHistory {
  constructor(private readonly store: Pick<DeviceStore, 'getFlag' | 'setFlag'>) {}

  async load(): Promise<PolicyInForce[]> {
    const history = parseHistory(await this.store.getFlag(POLICY_HISTORY_FLAG));
    if (history.length > 0) return history;
    // Upgrading from a version that kept only the last activated text: it counts as long established.
    const legacy = await this.store.getFlag(LEGACY_ACTIVE_POLICY_FLAG);
    return legacy ? [{ version: policyVersion(legacy), text: legacy, fromMs: 0, untilMs: null }] : [];
  }

  async recordActivation(policy: { readonly version: string; readonly text: string }, nowMs: number, windowMs: number): Promise<PolicyInForce[]> {
    const next = withActivation(await this.load(), policy, nowMs, windowMs);
    await this.store.setFlag(POLICY_HISTORY_FLAG, JSON.stringify(next));
    return next;
  }
}
