// Fake ConsoleServices for the console's unit tests: the in-memory store, a scripted decision (a
// TikTok device is denied by no-tiktok), tokens per role, one mail account for the /my/ page.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { silentLogger } from '../../src/core/log';
import { hashToken, principalFor, ROLES, type Role } from '../../src/admin/roles';
import { createConsole, type WebConsole } from '../../src/console/console';
import { CandidateInvalidError, type ConsoleServices, type Simulation } from '../../src/console/ports';
import { MemoryDeviceStore } from '../../src/store/memory-store';
import type { DeviceRecord } from '../../src/store/device-store';
import type { Decision } from '../../src/policy/decision';
import type { ConsoleConfig } from '../../src/core/config-types';

export const TIKTOK = 'com.zhiliaoapp.musically';
export const tokenOf = (role: Role) => `${role}-console-token-0123456789`;
const accessTokens = ROLES.map((role) => ({ name: `${role}-holder`, role, sha256: hashToken(tokenOf(role)) }));

export function device(overrides: Partial<DeviceRecord> = {}): DeviceRecord {
  const now = new Date().toISOString();
  return { deviceId: 'iphone-1', user: 'alice@example.com', platform: 'ios', osVersion: '18.2', managed: true, apps: [TIKTOK], reportedAt: now, receivedAt: now, source: 'mdm-1', ...overrides };
}

function decide(record: DeviceRecord | null, deviceId: string, user: string): Decision {
  const banned = record?.apps?.includes(TIKTOK) ?? false;
  return {
    action: banned ? 'deny' : 'allow',
    reasonCode: banned ? 'BANNED_APP' : 'OK',
    refId: 'MW-00000000',
    fault: 'policy',
    ...(banned ? { message: 'Remove TikTok. Ref MW-00000000.', decidedBy: 'no-tiktok' } : {}),
    warnings: [],
    checks: [{ checkId: 'no-tiktok', plugin: 'banned-apps', mode: 'enforce', effectiveMode: 'enforce', outcome: banned ? 'fail' : 'pass', ...(banned ? { code: 'BANNED_APP', reason: 'TikTok installed' } : {}), ms: 0.1 }],
    user,
    deviceId,
    identitySource: 'app-password',
    identityStrength: 'strong',
    protocol: 'imap',
    policyVersion: 'v1',
    at: new Date().toISOString(),
  };
}

export interface ConsoleRig {
  readonly url: string;
  readonly store: MemoryDeviceStore;
  readonly console: WebConsole;
  readonly calls: { killSwitch: boolean[]; ended: string[] };
  stop(): Promise<void>;
}

export async function startConsoleRig(config: Partial<ConsoleConfig> = {}, overrides: Partial<ConsoleServices> = {}): Promise<ConsoleRig> {
  const store = new MemoryDeviceStore();
  const calls = { killSwitch: [] as boolean[], ended: [] as string[] };
  let kill = false;
  const consoleConfig: ConsoleConfig = { enabled: true, sessionMinutes: 60, secureCookies: 'auto', auditScanEntries: 1000, selfService: true, ...config };
  const services: ConsoleServices = {
    log: silentLogger(),
    config: () => consoleConfig,
    instanceName: () => 'test-1',
    principalFor: (token) => principalFor(token, accessTokens),
    tokenExists: (name, role) => accessTokens.some((t) => t.name === name && t.role === role),
    getDevice: (id) => store.getDevice(id),
    listUserDevices: (user) => store.listUserDevices(user),
    getExemptions: (id, user) => store.getExemptions(id, user),
    putExemption: (e) => store.putExemption(e),
    readAudit: (after, count) => store.readAudit(after, count),
    readAuditLast: (count) => store.readAuditLast!(count),
    audit: async (operation, by, fields) => void (await store.appendAudit({ msg: 'admin', operation, by: by.name, role: by.role, at: new Date().toISOString(), ...fields })),
    decideForDevice: async (id, user) => {
      const lookup = await store.getDevice(id);
      return decide(lookup.state === 'found' ? lookup.record : null, id, user);
    },
    liveSessions: async () => ({ sessions: [], answered: ['test-1'], reachedOthers: true, windowMs: 0 }),
    endSessions: async (id) => (calls.ended.push(id), { byInstance: [{ instance: 'test-1', ended: 0 }], total: 0, reachedOthers: true, windowMs: 0 }),
    reevaluate: async () => undefined,
    policy: () => ({ version: 'v1', file: 'policy.yaml', reportOnly: false, helpdesk: 'the helpdesk', checks: [{ id: 'no-tiktok', plugin: 'banned-apps', mode: 'enforce', action: 'deny', graceHours: 0 }], brakeReportOnly: [] }),
    killSwitch: async () => kill,
    setKillSwitch: async (on, _by) => void (calls.killSwitch.push(on), (kill = on)),
    simulate: async (yaml) => {
      if (yaml.includes('broken')) throw new CandidateInvalidError(['candidate.yaml:3: checks[0].mode: must be one of off, report, warn, enforce (got "enforced")']);
      const row = { key: 'all', deniedNow: 0, deniedCandidate: 1, newlyDenied: 1, newlyAllowed: 0 };
      const sim: Simulation = { devices: 1, currentVersion: 'v1', candidateVersion: 'v2', total: row, byCheck: [{ ...row, key: 'no-tiktok' }], byPlatform: [{ ...row, key: 'macos' }], newlyDenied: [{ deviceId: 'mac-1', user: 'bob@example.com', platform: 'macos', reasonCode: 'BANNED_APP', checkId: 'no-tiktok' }], newlyAllowed: [] };
      return sim;
    },
    sources: async () => [{ source: 'mdm-1', devices: 1, lastDelivery: new Date().toISOString() }],
    connectors: async () => [
      { name: 'intune', type: 'intune', enabled: true, lastSuccessAt: '2026-12-07T08:00:00.000Z', lastAttemptAt: '2026-12-07T08:15:00.000Z', result: 'failed', stale: true, held: false },
      { name: '<b>jamf</b>', type: 'jamf', enabled: true, stale: false, held: false },
    ],
    checkMailLogin: async (user, password) =>
      user === 'alice@example.com' && password === 'alice-pw' ? { result: 'ok', user } : { result: 'bad' },
  };
  const web = createConsole({ ...services, ...overrides }, { pollMs: 50 });
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://console.invalid');
    void web.handle(req, res, url).then((handled) => {
      if (!handled) res.writeHead(404).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    store,
    console: web,
    calls,
    async stop() {
      await web.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

/** A cookie-keeping client that signs in with a role token, as a browser would (same-origin forms). */
export class ConsoleClient {
  private cookies = new Map<string, string>();
  constructor(readonly base: string) {}

  async request(path: string, init: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {}): Promise<{ status: number; text: string; location: string | null }> {
    const headers: Record<string, string> = { ...init.headers };
    if (this.cookies.size > 0) headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    let body: string | undefined;
    if (init.form) {
      body = new URLSearchParams(init.form).toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers.origin ??= this.base;
    }
    const res = await fetch(this.base + path, { method: init.method ?? (init.form ? 'POST' : 'GET'), headers, body, redirect: 'manual' });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair!.indexOf('=');
      const value = pair!.slice(eq + 1);
      if (value === '' || /Max-Age=0/.test(c)) this.cookies.delete(pair!.slice(0, eq));
      else this.cookies.set(pair!.slice(0, eq), value);
    }
    return { status: res.status, text: await res.text(), location: res.headers.get('location') };
  }

  /** The CSRF token of the page at `path`. */
  async csrf(path: string): Promise<string> {
    const page = await this.request(path);
    const m = /name="_csrf" value="([^"]+)"/.exec(page.text);
    if (!m) throw new Error(`no CSRF token on ${path} (${page.status})`);
    return m[1]!;
  }

  async signIn(role: Role): Promise<void> {
    const csrf = await this.csrf('/console/login');
    const res = await this.request('/console/login', { form: { _csrf: csrf, token: tokenOf(role) } });
    if (res.status !== 303) throw new Error(`sign-in failed: ${res.status} ${res.text}`);
  }
}
