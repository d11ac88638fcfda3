// The blast-radius guard: a policy that would newly deny more known devices than `blastRadius`
// allows is not activated (the policy in force stays) unless the operator forces it.
import type { PolicyConfig } from '../core/config-types';
import type { SimulationResult } from './simulate';

export type BlastRadiusResult =
  | { readonly ok: true; readonly newlyDenied: number; readonly devices: number }
  | {
      readonly ok: false;
      readonly newlyDenied: number;
      readonly devices: number;
      /** One paragraph for the log, the alert and the reload command's error. */
      readonly message: string;
    };

/**
 * Compares a simulation with the limits: refused when the newly denied devices are more than
 * `maxNewlyDeniedCount`, or more than `maxNewlyDeniedPercent` of the known devices — the share only
 * from `minNewlyDeniedCount` devices on (3 of 6 devices is already 50%), but always when it is every
 * known device. With no known device there is nothing to compare, so the policy is accepted.
 */
export function checkBlastRadius(sim: SimulationResult, limits: PolicyConfig['blastRadius']): BlastRadiusResult {
  const newlyDenied = sim.total.newlyDenied;
  const devices = sim.devices;
  if (devices === 0) return { ok: true, newlyDenied, devices };
  const percent = (newlyDenied / devices) * 100;
  const handful = newlyDenied < limits.minNewlyDeniedCount && newlyDenied < devices;
  if (newlyDenied <= limits.maxNewlyDeniedCount && (handful || percent <= limits.maxNewlyDeniedPercent)) return { ok: true, newlyDenied, devices };

  const byCheck = sim.byCheck
    .filter((r) => r.newlyDenied > 0)
    .sort((a, b) => b.newlyDenied - a.newlyDenied)
    .map((r) => `${r.key} ${r.newlyDenied}`)
    .join(', ');
  const message =
    `policy ${sim.candidateVersion} not activated: it would newly deny ${newlyDenied} of ${devices} known devices ` +
    `(${percent.toFixed(1)}%) — ${byCheck}; the blast-radius limit is ${limits.maxNewlyDeniedPercent}% or ` +
    `${limits.maxNewlyDeniedCount} devices. The policy in force stays. See who with \`mailwarden policy simulate\`; ` +
    `stage the change (mode: report, rollout) or force the reload.`;
  return { ok: false, newlyDenied, devices, message };
}
