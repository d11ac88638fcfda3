// The IMAP integration rig: a real redis-server, a real Dovecot, a test CA, reporter and IdP keys
// from the fake-device kit, and the real mailwarden runtime configured in a temp dir.
import fs from 'node:fs';
import path from 'node:path';
import type { JWK } from 'jose';
import { ImapFlow } from 'imapflow';
import { startRuntime, type Runtime } from '../../src/app/runtime';
import { silentLogger } from '../../src/core/log';
import { buildReport, makeIdpKeys, makeOauthToken, makeReporterKeys, pushReport, signReport } from '../../src/kit';
import { startDovecot, makeMessage, type DovecotOptions, type DovecotServer } from '../harness/dovecot';
import { startRedis, cleanupRedis, type RedisServer } from '../harness/redis';
import { tempDir } from '../harness/ports';
import { makeTestPki, type TestPki } from '../harness/tls';
import { writeAppPasswordKey } from '../harness/app-password-key';

export const ADMIN_TOKEN = 'imap-test-admin-token';
export const ISSUER = 'https://idp.example.test';
export const AUDIENCE = 'mail';
export const TIKTOK = 'com.zhiliaoapp.musically';
export const ALICE = { user: 'alice@example.com', password: 'alice-pw' };

export interface RigOptions {
  /** Replaces the example policy's TikTok check fields (mode, graceHours, ...). */
  readonly tiktok?: Record<string, unknown>;
  readonly blockStyle?: 'refuse' | 'quarantine';
  readonly outageLastKnownMaxSeconds?: number;
  /** Ask TLS clients for a certificate from the test CA; its CN is the device id (certificate source first). */
  readonly clientCertificates?: boolean;
  /** How mailwarden reaches Dovecot (default plaintext on loopback). */
  readonly upstreamTls?: 'none' | 'implicit' | 'starttls';
  /** Merged into the `admin` section (e.g. accessTokens with roles). */
  readonly admin?: Record<string, unknown>;
  /** Passed to the Dovecot harness (e.g. `trustedNetworks: ''` for Dovecot's auth penalty). */
  readonly dovecot?: Pick<DovecotOptions, 'trustedNetworks' | 'extraConfig'>;
  /** Merged over the rig's imap.upstream settings. */
  readonly upstream?: Record<string, unknown>;
  /** Merged over the rig's imap section (limits, timeouts). */
  readonly imap?: Record<string, unknown>;
  /** Merged into the `store` section (auditBufferMax, ...). */
  readonly store?: Record<string, unknown>;
  /** Extra top-level config sections (alerts, throttle, ...). */
  readonly extraConfig?: Record<string, unknown>;
}

export interface Rig {
  readonly runtime: Runtime;
  readonly redis: RedisServer;
  readonly dovecot: DovecotServer;
  readonly pki: TestPki;
  readonly dir: string;
  readonly policyFile: string;
  readonly idpKey: JWK;
  /** Ports of the implicit-TLS, STARTTLS and plaintext listeners. */
  readonly ports: { readonly implicit: number; readonly starttls: number; readonly plain: number };
  readonly adminUrl: string;
  /** Sign and push a device report through the admin API (as an MDM would). */
  report(deviceId: string, platform: string, apps: readonly string[] | undefined, user?: string): Promise<void>;
  token(deviceId: string, options?: { expiresIn?: number; user?: string }): Promise<string>;
  /** Rewrite the TikTok check and reload. */
  setTiktok(fields: Record<string, unknown>): Promise<void>;
  stop(): Promise<void>;
}

function policyYaml(tiktok: Record<string, unknown>): string {
  const check = {
    id: 'no-tiktok-on-mobiles',
    plugin: 'banned-apps',
    mode: 'enforce',
    action: 'deny',
    onUnknown: 'pass',
    scope: { platforms: ['ios', 'ipados', 'android'] },
    options: {
      apps: { ios: [TIKTOK], ipados: [TIKTOK], android: [TIKTOK] },
      names: { [TIKTOK]: 'TikTok' },
    },
    graceHours: 0,
    message: 'Company mail is blocked on this {platform} device because {app} is installed. Remove {app}; mail resumes within a minute. Ref {refId}.',
    ...tiktok,
  };
  return JSON.stringify({
    reportOnly: false,
    helpdesk: 'the IT helpdesk',
    unidentified: { action: 'deny', message: 'This mail app is not enrolled. Enrol the device in the company portal. Ref {refId}.' },
    blastRadius: { maxNewlyDeniedPercent: 100, maxNewlyDeniedCount: 100000 },
    brake: { enabled: false, windowSeconds: 300, minLogins: 50, maxDeniedPercent: 30 },
    checks: [
      {
        id: 'require-device',
        plugin: 'require-device',
        mode: 'enforce',
        action: 'deny',
        message: 'Company mail needs a device report. Open the company portal app, then try again. Ref {refId}.',
      },
      check,
    ],
  });
}

export async function startRig(options: RigOptions = {}): Promise<Rig> {
  const pki = makeTestPki();
  const upstreamTls = options.upstreamTls ?? 'none';
  const [redis, dovecot] = await Promise.all([
    startRedis(),
    startDovecot({ ...options.dovecot, ...(upstreamTls === 'none' ? {} : { tls: { cert: pki.serverCert, key: pki.serverKey } }) }),
  ]);
  const dir = tempDir('imap-rig');
  const reporter = await makeReporterKeys({ kid: 'mdm-1', outDir: dir });
  const idp = await makeIdpKeys({ kid: 'idp-1', outDir: dir });
  const policyFile = path.join(dir, 'policy.yaml');
  fs.writeFileSync(policyFile, policyYaml(options.tiktok ?? {}));
  const config = {
    instanceName: 'imap-it',
    policyFile: 'policy.yaml',
    tls: { cert: pki.serverCert, key: pki.serverKey, ...(options.clientCertificates ? { clientCa: pki.caCert } : {}) },
    store: {
      type: 'redis',
      redis: { mode: 'standalone', host: redis.host, port: redis.port, keyPrefix: 'mwt:', commandTimeoutMs: 100, connectTimeoutMs: 500 },
      outageLastKnownMaxSeconds: options.outageLastKnownMaxSeconds ?? 300,
      ...options.store,
    },
    reports: { jwksFile: 'reporters.jwks.json', algorithms: ['ES256'] },
    admin: { listen: { host: '127.0.0.1', port: 0 }, tokens: [ADMIN_TOKEN], ...options.admin },
    identity: {
      sources: [
        ...(options.clientCertificates ? [{ type: 'certificate', deviceField: 'CN' }] : []),
        { type: 'oauth', jwksFile: 'idp.jwks.json', issuer: ISSUER, audience: AUDIENCE, algorithms: ['ES256'], userClaim: 'email', deviceClaim: 'deviceid' },
        { type: 'app-password', hmacKeyFile: writeAppPasswordKey(dir) },
        { type: 'asserted', separator: '+' },
      ],
    },
    imap: {
      listeners: [
        { host: '127.0.0.1', port: 0, tls: 'implicit' },
        { host: '127.0.0.1', port: 0, tls: 'starttls' },
        { host: '127.0.0.1', port: 0, tls: 'none' },
      ],
      upstream: {
        host: dovecot.host,
        port: upstreamTls === 'implicit' ? dovecot.tlsPort : dovecot.port,
        tls: upstreamTls,
        // The test CA is not in the system store; the listener certificate is checked elsewhere.
        rejectUnauthorized: false,
        // Verified identities (JWT, app password) log in as the Dovecot master user; asserted ones replay the password.
        login: 'master',
        masterUser: dovecot.master.user,
        masterPassword: dovecot.master.password,
        connectTimeoutMs: 1000,
        circuitBreaker: { failures: 3, resetMs: 500 },
        ...options.upstream,
      },
      blockStyle: options.blockStyle ?? 'refuse',
      maxLiteralBytes: 8192,
      drainMs: 200,
      ...options.imap,
    },
    logging: { level: 'error' },
    ...options.extraConfig,
  };
  const configFile = path.join(dir, 'mailwarden.yaml');
  fs.writeFileSync(configFile, JSON.stringify(config));
  const runtime = await startRuntime({ configFile, logger: silentLogger(), watch: false });
  const [implicit, starttls, plain] = runtime.imap!.addresses.map((a) => a.port) as [number, number, number];
  const adminUrl = `http://127.0.0.1:${runtime.admin!.address.port}`;

  return {
    runtime,
    redis,
    dovecot,
    pki,
    dir,
    policyFile,
    idpKey: idp.privateJwk,
    ports: { implicit, starttls, plain },
    adminUrl,
    async report(deviceId, platform, apps, user = ALICE.user) {
      const jws = await signReport(buildReport({ deviceId, user, platform, osVersion: '18.2', managed: true, apps }), reporter.privateJwk);
      const result = await pushReport(adminUrl, ADMIN_TOKEN, jws);
      if (!result.ok) throw new Error(`report refused: ${result.code} ${result.message}`);
    },
    token: (deviceId, opts = {}) =>
      makeOauthToken({ privateJwk: idp.privateJwk, issuer: ISSUER, audience: AUDIENCE, user: opts.user ?? ALICE.user, deviceId, expiresIn: opts.expiresIn }),
    async setTiktok(fields) {
      fs.writeFileSync(policyFile, policyYaml(fields));
      const outcome = await runtime.reload();
      if (outcome.result !== 'ok') throw new Error(`reload refused: ${JSON.stringify(outcome)}`);
    },
    async stop() {
      await runtime.stop(0);
      await Promise.all([dovecot.cleanup(), cleanupRedis(redis)]);
      pki.cleanup();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** An imapflow client for the plaintext listener (or TLS with the test CA). */
export function imapClient(port: number, auth: { user: string; pass?: string; accessToken?: string }, secure = false): ImapFlow {
  return new ImapFlow({
    host: '127.0.0.1',
    port,
    secure,
    doSTARTTLS: secure ? undefined : false,
    tls: { rejectUnauthorized: false },
    auth,
    logger: false,
    disableCompression: true,
    clientInfo: { name: 'mailwarden-it' },
  });
}

/** What an imapflow login failure carries. */
export interface ImapFlowError {
  readonly authenticationFailed?: boolean;
  readonly serverResponseCode?: string;
  readonly responseText?: string;
}

export async function loginError(client: ImapFlow): Promise<ImapFlowError> {
  try {
    await client.connect();
  } catch (err) {
    return err as ImapFlowError;
  }
  await client.logout();
  throw new Error('login unexpectedly succeeded');
}

export function seedMailbox(dovecot: DovecotServer, count = 3): void {
  dovecot.fillMailbox(ALICE.user, Array.from({ length: count }, (_, i) => makeMessage(`hello ${i + 1}`)));
}
