// Which enforcing checks a policy change removes or weakens (a "loosening"): logged and alerted at
// every activation, because a half-written or mistaken file loosens silently otherwise.
import { isDeepStrictEqual } from 'node:util';
import type { CheckConfig, CheckScope, PolicyConfig } from '../core/config-types';

export interface Loosening {
  /** The check id, or `reportOnly` / `unidentified` for the policy-wide switches. */
  readonly check: string;
  /** What changed, in a few words ("removed", "mode enforce → report", ...). */
  readonly change: string;
}

type Policy = Pick<PolicyConfig, 'reportOnly' | 'unidentified' | 'checks'>;

/** A scope key limits where a check applies; a key the previous scope lacked, or a list with items dropped, narrows it. */
function scopeNarrowed(before: CheckScope, after: CheckScope): boolean {
  return (['platforms', 'protocols', 'users', 'groups'] as const).some((key) => {
    const was = before[key];
    const now = after[key];
    if (now === undefined) return false;
    if (was === undefined) return true;
    const kept = new Set(now.map((v) => v.toLowerCase()));
    return was.some((v) => !kept.has(v.toLowerCase()));
  });
}

/** Whether the staged rollout now enforces for fewer devices (a percent lowered, groups limited or dropped). */
function rolloutNarrowed(before: CheckConfig['rollout'], after: CheckConfig['rollout']): boolean {
  if (after === undefined) return false;
  if (before === undefined) return true;
  if ((after.percent ?? 100) < (before.percent ?? 100)) return true;
  return !isDeepStrictEqual(after.groups ?? null, before.groups ?? null);
}

function weakened(before: CheckConfig, after: CheckConfig): string[] {
  const changes: string[] = [];
  if (after.mode !== 'enforce') changes.push(`mode enforce → ${after.mode}`);
  if (before.onUnknown === 'fail' && after.onUnknown === 'pass') changes.push('onUnknown fail → pass');
  if (after.graceHours > before.graceHours) changes.push(`graceHours ${before.graceHours} → ${after.graceHours}`);
  if (scopeNarrowed(before.scope, after.scope)) changes.push('scope narrowed');
  if (rolloutNarrowed(before.rollout, after.rollout)) changes.push('rollout narrowed');
  if (before.plugin !== after.plugin) changes.push(`plugin ${before.plugin} → ${after.plugin}`);
  // Options are the plugin's own (a banned list, a minimum version): a change may loosen or tighten,
  // and only the plugin could tell. Named, so the operator sees it beside the real loosenings.
  if (!isDeepStrictEqual(before.options, after.options)) changes.push('options changed');
  return changes;
}

/**
 * The enforcing checks of `previous` that `next` removes or weakens. A check that was not enforcing
 * before cannot be loosened; when `reportOnly` was already on, nothing was enforcing.
 */
export function findLoosenings(previous: Policy, next: Policy): Loosening[] {
  const found: Loosening[] = [];
  if (!previous.reportOnly && next.reportOnly) found.push({ check: 'reportOnly', change: 'false → true (every check in report)' });
  if (previous.unidentified.action !== 'allow' && next.unidentified.action === 'allow') {
    found.push({ check: 'unidentified', change: `action ${previous.unidentified.action} → allow` });
  }
  if (previous.reportOnly) return found;
  const after = new Map(next.checks.map((c) => [c.id, c]));
  for (const before of previous.checks) {
    if (before.mode !== 'enforce') continue;
    const now = after.get(before.id);
    if (!now) {
      found.push({ check: before.id, change: 'removed' });
      continue;
    }
    for (const change of weakened(before, now)) found.push({ check: before.id, change });
  }
  return found;
}

/** "no-tiktok removed; min-os mode enforce → report" */
export function describeLoosenings(loosenings: readonly Loosening[]): string {
  return loosenings.map((l) => `${l.check} ${l.change}`).join('; ');
}
