// Fake AdminServices for the admin API and CLI unit tests: the in-memory store, a toy report
// verifier (payload = base64url JSON, signature must be "good"), a scripted decider, captured logs.
import { Writable } from 'node:stream';
import winston from 'winston';
import { createLogger } from '../../src/core/log';
import { AdminError } from '../../src/admin/errors';
import { startAdminServer, type AdminServer } from '../../src/admin/server';
import type { AdminServices } from '../../src/admin/services';
import { createMetrics } from '../../src/admin/metrics';
import { ROLES, hashToken, principalFor } from '../../src/admin/roles';
import { MemoryDeviceStore } from '../../src/store/memory-store';
import type { DeviceRecord, DeviceReport } from '../../src/store/device-store';
import { readKillSwitch, setKillSwitch } from '../../src/policy/brake';
import type { Decision } from '../../src/policy/decision';

export const TOKEN = 'test-admin-token-0123456789';
/** One hashed token per role (admin.accessTokens), for the role tests. */
export const ROLE_TOKENS = ROLES.map((role) => ({ name: `${role}-token`, role, token: `test-role-${role}-0123456789` }));
export const TIKTOK = 'com.zhiliaoapp.musically';

export function report(overrides: Partial<DeviceReport> = {}): DeviceReport {
  return {
    deviceId: 'dev-1',
    user: 'alice@example.com',
    platform: 'ios',
    osVersion: '17.4',
    managed: true,
    apps: ['com.apple.mobilemail'],
    reportedAt: new Date().toISOString(),
    source: 'mdm-key-1',
    ...overrides,
  };
}

/** A JWS-shaped string the fake verifier accepts when `signature` is "good". */
export function fakeJws(payload: DeviceReport, signature = 'good'): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${b64({ alg: 'ES256', kid: 'mdm-key-1' })}.${b64(payload)}.${signature}`;
}

export const record = (r: DeviceReport): DeviceRecord => ({ ...r, receivedAt: new Date().toISOString() });

/** Denies devices that report TikTok; the banned-apps check runs in `mode`. */
function decide(deviceId: string, user: string, protocol: 'imap' | 'smtp', apps: readonly string[]): Decision {
  const banned = apps.includes(TIKTOK);
  return {
    action: banned ? 'deny' : 'allow',
    reasonCode: banned ? 'BANNED_APP' : 'OK',
    fault: 'policy',
    refId: 'REF-1234',
    ...(banned ? { message: 'Remove TikTok to sync company mail (ref REF-1234).', decidedBy: 'banned-apps' } : {}),
    warnings: [],
    checks: [
      { checkId: 'require-device', plugin: 'require-device', mode: 'enforce', effectiveMode: 'enforce', outcome: 'pass', ms: 0.1 },
      {
        checkId: 'banned-apps',
        plugin: 'banned-apps',
        mode: 'enforce',
        effectiveMode: 'enforce',
        outcome: banned ? 'fail' : 'pass',
        ...(banned ? { code: 'BANNED_APP', reason: `banned app installed: ${TIKTOK}` } : {}),
        ms: 0.2,
      },
    ],
    user,
    deviceId,
    identitySource: 'app-password',
    identityStrength: 'strong',
    protocol,
    policyVersion: 'v-test',
    at: new Date().toISOString(),
  };
}

export interface Fake {
  readonly services: AdminServices;
  readonly store: MemoryDeviceStore;
  readonly logs: string[];
  readonly calls: { killSwitch: boolean[]; simulate: (string | null)[]; verified: string[] };
}

export function fakeServices(overrides: Partial<AdminServices> = {}): Fake {
  const store = new MemoryDeviceStore();
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs.push(chunk.toString());
      done();
    },
  });
  const log = createLogger({ silent: true, level: 'debug', transports: [new winston.transports.Stream({ stream: sink })] });
  const calls: Fake['calls'] = { killSwitch: [], simulate: [], verified: [] };
  const services: AdminServices = {
    principalFor: (token) => principalFor(token, ROLE_TOKENS.map(({ name, role, token: t }) => ({ name, role, sha256: hashToken(t) })), [TOKEN, 'second-token']),
    store,
    ready: async () => ({ ready: true, checks: { config: 'ok', store: 'ok' } }),
    verifyReport: async (jws) => {
      calls.verified.push(jws);
      const [, payload, signature] = jws.split('.');
      if (signature !== 'good') {
        return { ok: false, status: 401, code: 'BAD_SIGNATURE', message: 'the signature does not verify with key mdm-key-1' };
      }
      return { ok: true, record: record(JSON.parse(Buffer.from(payload, 'base64url').toString()) as DeviceReport) };
    },
    recordTtlSeconds: () => 3600,
    reportMaxBytes: () => 4096,
    decideForDevice: async (deviceId, user, protocol) => {
      const lookup = await store.getDevice(deviceId);
      return decide(deviceId, user, protocol, lookup.state === 'found' ? (lookup.record.apps ?? []) : []);
    },
    issueAppPassword: async (user, deviceId) => {
      const credentialId = `cred-${deviceId}`;
      await store.putAppPassword({ credentialId, user, deviceId, hash: 'ab'.repeat(32), createdAt: new Date().toISOString() });
      return { password: `${credentialId}.s3cret-app-password`, credentialId };
    },
    simulate: async (yaml) => {
      calls.simulate.push(yaml);
      if (yaml?.includes('broken')) throw new AdminError('POLICY_INVALID', 'policy.yaml:1: checks: expected a list');
      return { candidate: yaml === null ? 'current' : 'given', newlyDenied: [] };
    },
    setKillSwitch: async (on, change) => {
      calls.killSwitch.push(on);
      await setKillSwitch(store, on, change);
    },
    killSwitch: () => readKillSwitch(store),
    metrics: createMetrics({ processMetrics: false }),
    log,
    ...overrides,
  };
  return { services, store, logs, calls };
}

/** The fake services behind a real admin listener on a free loopback port. */
export async function startFakeAdmin(overrides: Partial<AdminServices> = {}): Promise<Fake & { server: AdminServer; url: string }> {
  const fake = fakeServices(overrides);
  const server = await startAdminServer({ host: '127.0.0.1', port: 0 }, fake.services);
  return { ...fake, server, url: `http://127.0.0.1:${server.address.port}` };
}
