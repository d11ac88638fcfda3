// What happens around every policy activation (start and reload): the blast-radius guard against the
// policies in force lately, the shared history of them, and the loosening warning. The runtime calls
// it; the swap itself stays in the runtime.
import type { PolicyConfig } from '../core/config-types';
import type { Logger } from '../core/log';
import { errorText } from '../core/errors';
import type { CompiledPolicy } from './compile';
import type { BlastRadiusResult } from './blast-radius';
import { describeLoosenings, findLoosenings } from './loosening';
import { establishedBaseline, inForceWithin, PolicyHistory, type PolicyInForce } from './policy-history';
import type { DeviceStore } from '../store/device-store';

const HOUR_MS = 3_600_000;
/** Compiled history entries kept (the history holds at most 17). */
const MAX_COMPILED = 32;

export type ActivationVerdict = BlastRadiusResult & {
  /** Set when the candidate is (or behaves within the limits of) a policy in force lately. */
  readonly returningTo?: string;
};

export interface ActivationOptions {
  readonly store: Pick<DeviceStore, 'getFlag' | 'setFlag'>;
  readonly log: Logger;
  /** Compiles a policy text from the history (plugins may have changed since: a failure drops that entry). */
  readonly compile: (text: string) => Promise<CompiledPolicy>;
  /** The blast-radius guard of `candidate` against `baseline` (simulation over the known devices). */
  readonly guard: (baseline: CompiledPolicy, candidate: CompiledPolicy) => Promise<BlastRadiusResult>;
  readonly alert: (kind: 'policy-loosened', details: Readonly<Record<string, unknown>>) => unknown;
  readonly now?: () => number;
}

const windowMs = (policy: CompiledPolicy): number => policy.config.blastRadius.inForceWindowHours * HOUR_MS;

export class PolicyActivation {
  private readonly history: PolicyHistory;
  private readonly compiled = new Map<string, Promise<CompiledPolicy | null>>();
  private readonly now: () => number;

  constructor(private readonly options: ActivationOptions) {
    this.history = new PolicyHistory(options.store);
    this.now = options.now ?? Date.now;
  }

  /**
   * Whether `candidate` may become the policy in force. `current` is the one in force on this
   * instance (null at start). Never blocks a return to a policy in force within the window, and is
   * within the limits when it is so against at least one of them (re-tightening after a mistaken edit
   * compares with the policy before the mistake, not with the mistake). At start, with no recent
   * policy, the baseline is the last one that stayed in force for the whole window. Throws when the
   * store or the device population cannot be read.
   */
  async check(current: CompiledPolicy | null, candidate: CompiledPolicy): Promise<ActivationVerdict> {
    const nowMs = this.now();
    const history = await this.history.load();
    const window = windowMs(candidate);
    const entries = uniqueByVersion([...inForceWithin(history, nowMs, window), establishedBaseline(history, nowMs, window)]);
    const returning = entries.find((e) => e.version === candidate.version);
    if (returning) return { ok: true, newlyDenied: 0, devices: 0, returningTo: returning.version };

    const references = uniqueByVersion([current, ...(await this.compileAll(entries))]);
    if (references.length === 0) return { ok: true, newlyDenied: 0, devices: 0 };
    let first: BlastRadiusResult | null = null;
    for (const reference of references) {
      const verdict = await this.options.guard(reference, candidate);
      if (verdict.ok) return reference === references[0] ? verdict : { ...verdict, returningTo: reference.version };
      first ??= verdict;
    }
    return first!;
  }

  /**
   * `next` is now in force: recorded in the shared history (a failure is logged, never fatal), and a
   * loosening compared with `previous` (or, at start, the baseline) is logged and alerted. Returns the
   * policies in force lately other than `previous`, for the brake (Brake.policyChanged `recent`).
   */
  async activated(previous: CompiledPolicy | null, next: CompiledPolicy): Promise<readonly PolicyConfig[]> {
    const nowMs = this.now();
    const window = windowMs(next);
    let before: PolicyInForce[] = [];
    try {
      before = await this.history.load();
      const baseline = previous ?? (await this.compileEntry(establishedBaseline(before, nowMs, window)));
      if (baseline) this.warnIfLoosened(baseline, next);
      await this.history.recordActivation({ version: next.version, text: next.config.text }, nowMs, window);
    } catch (err) {
      this.options.log.warn('could not record the activated policy in the store', { error: errorText(err) });
    }
    // Earlier entries of `next` itself count: going back to a policy is what restores its checks.
    const recent = inForceWithin(before, nowMs, window).filter((e) => e.version !== previous?.version);
    return (await this.compileAll(recent)).map((p) => p.config);
  }

  private warnIfLoosened(previous: CompiledPolicy, next: CompiledPolicy): void {
    const loosenings = findLoosenings(previous.config, next.config);
    if (loosenings.length === 0) return;
    const details = { policy: next.config.file, from: previous.version, to: next.version, checks: [...new Set(loosenings.map((l) => l.check))], changes: loosenings };
    this.options.log.warn(`policy loosened (${previous.version} → ${next.version}): ${describeLoosenings(loosenings)}`, { msg: 'policy-loosened', ...details });
    try {
      Promise.resolve(this.options.alert('policy-loosened', details)).catch(() => undefined);
    } catch {
      // The alerter never throws; a test double might. The warning above is logged either way.
    }
  }

  private async compileAll(entries: readonly (PolicyInForce | null)[]): Promise<CompiledPolicy[]> {
    const compiled = await Promise.all(entries.map((e) => this.compileEntry(e)));
    return compiled.filter((p): p is CompiledPolicy => p !== null);
  }

  private compileEntry(entry: PolicyInForce | null): Promise<CompiledPolicy | null> {
    if (!entry) return Promise.resolve(null);
    let compiled = this.compiled.get(entry.version);
    if (!compiled) {
      if (this.compiled.size >= MAX_COMPILED) this.compiled.clear(); // more than the history holds: old versions
      compiled = this.options.compile(entry.text).catch((err: unknown) => {
        this.options.log.warn('a policy from the history no longer compiles; it is not compared with', { version: entry.version, error: errorText(err) });
        return null;
      });
      this.compiled.set(entry.version, compiled);
    }
    return compiled;
  }
}

function uniqueByVersion<T extends { readonly version: string }>(items: readonly (T | null)[]): T[] {
  const seen = new Set<string>();
  return items.filter((item): item is T => item !== null && !seen.has(item.version) && (seen.add(item.version), true));
}
