// The operations behind the admin API, apart from its transport: readiness, app-password issuance,
// the dry-run decision for a device, policy simulation and the kill switch, over the runtime's parts.
import { loadPolicyText } from '../core/config';
import type { MailwardenConfig } from '../core/config-types';
import { ConfigError, errorText } from '../core/errors';
import type { Logger } from '../core/log';
import { appPasswordKeyFor, issueAppPassword } from '../identity/app-password';
import { InvalidIdentifierError } from '../identity/validate';
import { checkBlastRadius } from '../policy/blast-radius';
import { readKillSwitch, setKillSwitch, type KillSwitchChange, type KillSwitchState } from '../policy/brake';
import { compilePolicy, type CompiledPolicy } from '../policy/compile';
import type { Protocol } from '../policy/contract';
import type { Decision, DecisionRequest } from '../policy/decision';
import { simulate } from '../policy/simulate';
import type { DeviceStore, Exemptions } from '../store/device-store';
import { AdminError } from './errors';
import type { Metrics } from './metrics';
import type { ReportVerifier, ReportVerifyResult } from './reports';
import type { ConnectorOperations } from './routes/connectors';
import { principalFor, type Principal } from './roles';

export type ReportVerification = ReportVerifyResult;

/**
 * What the admin listener needs from the runtime. The runtime implements it by wiring the report
 * verifier, the decider, app-password issuance, simulate and the kill switch; the listener itself
 * knows none of them. Methods may throw AdminError (→ its status) or StoreUnavailableError (→ 503).
 */
export interface AdminServices {
  /** Who a bearer token belongs to (name, role), or null; read per request so a reload takes effect at once. */
  principalFor(token: string): Principal | null;
  readonly store: DeviceStore;
  /**
   * Configuration loaded and store reachable; `checks` names each part ("ok" or the problem).
   * `connectors` is detail only: a stale source is one connector fault, not an unready instance.
   */
  ready(): Promise<{ ready: boolean; checks: Record<string, string>; connectors?: Record<string, string> }>;
  /** Verifies a compact JWS report (signature, key, timestamps, schema). Writes nothing. */
  verifyReport(jws: string): Promise<ReportVerification>;
  /** TTL for stored records (config store.recordTtlHours). */
  recordTtlSeconds(): number;
  /** Body limit for POST /v1/reports (config reports.maxBodyBytes). */
  reportMaxBytes(): number;
  /**
   * The decision this device would get now on a login of `protocol` as `user`, with every check's
   * result. A dry run: it must not write audit events, first-seen marks or metrics.
   */
  decideForDevice(deviceId: string, user: string, protocol: Protocol): Promise<Decision>;
  issueAppPassword(user: string, deviceId: string): Promise<{ password: string; credentialId: string }>;
  /** Simulate result as JSON; null = the policy in force against itself. Throw AdminError(400) for a bad policy. */
  simulate(candidatePolicyYaml: string | null): Promise<unknown>;
  /** Sets the shared kill-switch flag (with who and why) and publishes it to every instance. */
  setKillSwitch(on: boolean, change?: KillSwitchChange): Promise<void>;
  /** The kill switch now: on/off, since when, by whom, and the note given. */
  killSwitch(): Promise<KillSwitchState>;
  /** The inventory connectors (absent: none are run by this process). */
  readonly connectors?: ConnectorOperations;
  readonly metrics: Metrics;
  readonly log: Logger;
}

export interface AdminServiceDeps {
  readonly store: DeviceStore;
  readonly log: Logger;
  readonly metrics: Metrics;
  /** Folder of the config file: relative key-file paths resolve against it. */
  readonly configDir: string;
  /** The configuration and policy in force now (they change on reload). */
  config(): MailwardenConfig;
  policy(): CompiledPolicy;
  reportVerifier(): ReportVerifier;
  /** The decider's side-effect-free decision (src/policy/decider.ts dryRun). */
  dryRun(request: DecisionRequest): Promise<Decision>;
  /** The connectors this process runs (absent: none configured at start). */
  readonly connectors?: ConnectorOperations & { readiness(): Record<string, string> };
}

/** What a policy simulation needs besides the two policies and the devices. */
export function simulationContext(config: MailwardenConfig, store: Pick<Exemptions, 'listExemptions'>) {
  return { maxReportAgeHours: config.store.maxReportAgeHours, groups: config.groups, store };
}

export function createAdminServices(deps: AdminServiceDeps): AdminServices {
  const { store, log, metrics } = deps;
  return {
    principalFor: (token) => principalFor(token, deps.config().admin?.accessTokens ?? [], deps.config().admin?.tokens ?? []),
    store,
    log,
    metrics,
    async ready() {
      const checks: Record<string, string> = { config: 'ok' };
      try {
        await store.ping();
        checks.store = 'ok';
      } catch (err) {
        checks.store = errorText(err);
      }
      const connectors = deps.connectors?.readiness();
      return { ready: Object.values(checks).every((v) => v === 'ok'), checks, ...(connectors && Object.keys(connectors).length > 0 ? { connectors } : {}) };
    },
    verifyReport: (jws) => deps.reportVerifier().verify(jws),
    recordTtlSeconds: () => deps.config().store.recordTtlHours * 3600,
    reportMaxBytes: () => deps.config().reports.maxBodyBytes,
    decideForDevice: (deviceId, user, protocol) =>
      deps.dryRun({ user, deviceId, protocol, identitySource: 'app-password', identityStrength: 'strong', trigger: 'admin' }),
    async issueAppPassword(user, deviceId) {
      const key = await appPasswordKeyFor(deps.config().identity.sources, deps.configDir);
      if (!key) throw new AdminError('NO_APP_PASSWORD_SOURCE', 'no app-password identity source is configured (identity.sources)');
      try {
        return await issueAppPassword(store, { user, deviceId }, key);
      } catch (err) {
        if (err instanceof InvalidIdentifierError) throw new AdminError(err.code, err.message);
        throw err;
      }
    },
    async simulate(candidateYaml) {
      const current = deps.policy();
      let candidate = current;
      if (candidateYaml !== null) {
        try {
          const { policy, source } = await loadPolicyText(candidateYaml, '(candidate policy)');
          candidate = await compilePolicy(policy, source, { pluginDirs: deps.config().pluginDirs });
        } catch (err) {
          if (err instanceof ConfigError) throw new AdminError('POLICY_INVALID', err.message);
          throw err;
        }
      }
      const devices = await store.listDevices();
      const sim = await simulate(current, candidate, devices, simulationContext(deps.config(), store));
      return { ...sim, blastRadius: checkBlastRadius(sim, candidate.config.blastRadius) };
    },
    setKillSwitch: (on, change) => setKillSwitch(store, on, change),
    killSwitch: () => readKillSwitch(store),
    ...(deps.connectors ? { connectors: deps.connectors } : {}),
  };
}
