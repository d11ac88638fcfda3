// Wires the web console's port (src/console/ports.ts) to the running mailwarden: the shared store,
// the decider's dry run, the live sessions of every instance (asked on demand), the policy in force
// and its brake, simulate, the kill switch, the connectors' last syncs, and the IMAP upstream for
// the /my/ page's own-credential sign-in.
import { randomUUID } from 'node:crypto';
import type { MailwardenConfig } from '../core/config-types';
import type { Logger } from '../core/log';
import { errorText } from '../core/errors';
import type { SessionDirectory } from './session-directory';
import { principalFor } from '../admin/roles';
import { CandidateInvalidError, type ConsoleServices, type Simulation, type SourceView } from '../console/ports';
import type { ConnectorRunner } from './connectors';
import type { LoginThrottle, ThrottleSubject } from '../admission/login-throttle';
import { AdminError } from '../admin/errors';
import type { AdminServices } from '../admin/services';
import type { CompiledPolicy } from '../policy/compile';
import type { Decider } from '../policy/decider';
import type { DeviceStore } from '../store/device-store';
import { KILL_SWITCH_FLAG } from '../store/device-store';
import { killSwitchOn } from '../store/record-codec';
import { Upstream } from '../imap/upstream';

export interface ConsoleWiring {
  readonly store: DeviceStore;
  readonly log: Logger;
  readonly decider: Decider;
  /** Live sessions on every instance, asked on demand (src/app/session-directory.ts). */
  readonly directory: SessionDirectory;
  config(): MailwardenConfig;
  policy(): CompiledPolicy;
  /** The failed-login throttle of the IMAP and SMTP logins (src/admission/login-throttle.ts). */
  readonly throttle: Pick<LoginThrottle, 'wait' | 'failed' | 'succeeded'>;
  /** The inventory connectors' runner (null: none configured at start). */
  connectors(): ConnectorRunner | null;
  /** Throws CandidateInvalidError for a candidate that does not validate. */
  simulate(candidateYaml: string): Promise<Simulation>;
  setKillSwitch(on: boolean, by: string): Promise<void>;
}

export function consoleServices(w: ConsoleWiring): ConsoleServices {
  const admin = () => w.config().admin;
  let upstream: { config: unknown; client: Upstream } | null = null;
  const imapUpstream = (): Upstream | null => {
    const config = w.config().imap?.upstream;
    if (!config) return null;
    if (upstream?.config !== config) upstream = { config, client: new Upstream(config) };
    return upstream.client;
  };

  return {
    log: w.log,
    config: () => admin()!.console,
    instanceName: () => w.config().instanceName,
    principalFor: (token) => principalFor(token, admin()?.accessTokens ?? [], admin()?.tokens ?? []),
    tokenExists: (name, role) => {
      const a = admin();
      if (!a) return false;
      if (a.accessTokens.some((t) => t.name === name && t.role === role)) return true;
      return role === 'admin' && a.tokens.some((_, i) => name === `admin.tokens[${i}]`);
    },
    getDevice: (id) => w.store.getDevice(id),
    listUserDevices: (user) => w.store.listUserDevices(user),
    getExemptions: (id, user) => w.store.getExemptions(id, user),
    putExemption: (e) => w.store.putExemption(e),
    readAudit: (after, count) => w.store.readAudit(after, count),
    readAuditLast: async (count) => (w.store.readAuditLast ? w.store.readAuditLast(count) : (await w.store.readAudit('0', 1_000_000)).slice(-count)),
    async audit(operation, by, fields) {
      try {
        await w.store.appendAudit({ msg: 'admin', operation, by: by.name, role: by.role, at: new Date().toISOString(), ...fields });
      } catch (err) {
        w.log.error('console action not audited: store error', { operation, error: errorText(err) });
      }
    },
    decideForDevice: (deviceId, user) =>
      w.decider.dryRun({ user, deviceId, protocol: 'imap', identitySource: 'app-password', identityStrength: 'strong', trigger: 'console' }),
    async liveSessions(deviceId) {
      const { answers, reachedOthers, windowMs } = await w.directory.list(deviceId);
      const sessions = answers.flatMap((a) => a.sessions.map((s) => ({ instance: a.instance, ...s })));
      sessions.sort((a, b) => a.instance.localeCompare(b.instance) || a.id.localeCompare(b.id));
      return { sessions, answered: [...new Set(answers.map((a) => a.instance))].sort(), reachedOthers, windowMs };
    },
    async endSessions(deviceId, by) {
      const { answers, reachedOthers, windowMs } = await w.directory.end(deviceId, `${by.name} (${by.role}, console)`);
      // With node:cluster workers one instance answers once per worker: add them up per instance.
      const byInstance = new Map<string, number>();
      for (const a of answers) byInstance.set(a.instance, (byInstance.get(a.instance) ?? 0) + a.ended);
      const rows = [...byInstance].map(([instance, ended]) => ({ instance, ended })).sort((a, b) => a.instance.localeCompare(b.instance));
      return { byInstance: rows, total: rows.reduce((n, r) => n + r.ended, 0), reachedOthers, windowMs };
    },
    reevaluate: (deviceId, user) => w.store.publish({ kind: 'device', deviceId, ...(user ? { user } : {}) }),
    policy: () => {
      const p = w.policy();
      return {
        version: p.version,
        file: p.config.file,
        reportOnly: p.config.reportOnly,
        helpdesk: p.config.helpdesk,
        checks: p.config.checks.map((c) => ({ id: c.id, plugin: c.plugin, mode: c.mode, action: c.action, platforms: c.scope.platforms, graceHours: c.graceHours })),
        brakeReportOnly: [...w.decider.brake.reportOnly()],
      };
    },
    killSwitch: async () => killSwitchOn(await w.store.getFlag(KILL_SWITCH_FLAG)),
    setKillSwitch: (on, by) => w.setKillSwitch(on, by),
    simulate: (yaml) => w.simulate(yaml),
    async sources() {
      const bySource = new Map<string, { devices: number; last: string }>();
      for (const r of await w.store.listDevices()) {
        const s = bySource.get(r.source) ?? { devices: 0, last: '' };
        s.devices++;
        if (r.receivedAt > s.last) s.last = r.receivedAt;
        bySource.set(r.source, s);
      }
      return [...bySource].map(([source, s]): SourceView => ({ source, devices: s.devices, lastDelivery: s.last })).sort((a, b) => a.source.localeCompare(b.source));
    },
    async connectors() {
      const runner = w.connectors();
      if (!runner) return [];
      return (await runner.views()).map(({ config, status, stale, held }) => ({
        name: config.name,
        type: config.type,
        enabled: config.enabled,
        ...(status?.lastSuccessAt ? { lastSuccessAt: status.lastSuccessAt } : {}),
        ...(status ? { lastAttemptAt: status.lastAttemptAt, result: status.result } : {}),
        stale,
        held,
      }));
    },
    async checkMailLogin(user, password, remoteAddress) {
      const client = imapUpstream();
      if (!client) return { result: 'unavailable' };
      // A password check like an IMAP login, so the same throttle and the same shared counters: the
      // /my/ sign-in is no way around the delay that guessing through the proxy gets.
      const subject: ThrottleSubject = { username: user, ...(remoteAddress ? { remoteAddress } : {}) };
      const turn = await w.throttle.wait(subject);
      // The person's own credentials, replayed as a passthrough login would (never the master user).
      const answer = await client.login({
        login: { mode: 'passthrough', credential: { kind: 'password', username: user, password }, username: user },
        clientId: { name: 'mailwarden-console' },
        sessionId: randomUUID(),
        secure: false,
      });
      if (!answer.ok) {
        if (answer.failure !== 'bad-credentials') return { result: 'unavailable' };
        await w.throttle.failed(subject);
        return { result: 'bad' };
      }
      answer.session.socket.end('x LOGOUT\r\n');
      await w.throttle.succeeded(subject, turn);
      return { result: 'ok', user };
    },
  };
}

/**
 * The admin API's simulate, for the console: a candidate that does not validate becomes
 * CandidateInvalidError with one `file:line: key: message` line per issue (as `config check` prints).
 */
export function consoleSimulate(admin: Pick<AdminServices, 'simulate'>): (yaml: string) => Promise<Simulation> {
  return async (yaml) => {
    try {
      return (await admin.simulate(yaml)) as Simulation;
    } catch (err) {
      if (err instanceof AdminError && err.code === 'POLICY_INVALID') throw new CandidateInvalidError(err.message.split('\n'));
      throw err;
    }
  };
}
