// The SMTP integration rig: a real redis-server, the real mailwarden runtime with its SMTP listeners,
// reporter keys and app passwords from the fake-device kit, and as the upstream either a real Postfix
// (Dovecot SASL for passthrough AUTH, XCLIENT from mailwarden) or the capturing sink.
import fs from 'node:fs';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { startRuntime, type Runtime } from '../../src/app/runtime';
import { silentLogger } from '../../src/core/log';
import { buildReport, enrollDevice, makeReporterKeys, pushReport, signReport } from '../../src/kit';
import { startDovecot, type DovecotServer } from '../harness/dovecot';
import { startPostfix, type PostfixServer } from '../harness/postfix';
import { startRedis, cleanupRedis, type RedisServer } from '../harness/redis';
import { startSmtpSink, type SmtpSink } from '../harness/smtp-sink';
import { tempDir } from '../harness/ports';
import { makeTestPki, type TestPki } from '../harness/tls';
import { ADMIN_TOKEN, ALICE, TIKTOK } from './imap-rig';
import { writeAppPasswordKey } from '../harness/app-password-key';

export { ALICE, TIKTOK };

export interface SmtpRig {
  readonly runtime: Runtime;
  readonly redis: RedisServer;
  /** Set with upstream 'postfix'. */
  readonly postfix: PostfixServer | null;
  /** Dovecot, only as Postfix's SASL backend (upstream 'postfix'). */
  readonly dovecot: DovecotServer | null;
  /** Set with upstream 'sink'. */
  readonly sink: SmtpSink | null;
  readonly pki: TestPki;
  /** Ports of the implicit-TLS, STARTTLS and plaintext listeners. */
  readonly ports: { readonly implicit: number; readonly starttls: number; readonly plain: number };
  /** Sign and push a device report through the admin API (as an MDM would). */
  report(deviceId: string, platform: string, apps: readonly string[] | undefined): Promise<void>;
  /** A device-bound app password for alice's device (the iOS Mail path). */
  enroll(deviceId: string): Promise<string>;
  /** Rewrite the TikTok check and reload. */
  setTiktok(fields: Record<string, unknown>): Promise<void>;
  /** Decision audit events for a device, waiting briefly for the background write. */
  audit(deviceId: string): Promise<Record<string, unknown>[]>;
  stop(): Promise<void>;
}

/** The example-like policy the SMTP and hooks rigs run: a device report required, TikTok banned on mobiles. */
export function policyYaml(tiktok: Record<string, unknown>): string {
  return JSON.stringify({
    helpdesk: 'the IT helpdesk',
    blastRadius: { maxNewlyDeniedPercent: 100, maxNewlyDeniedCount: 100000 },
    brake: { enabled: false },
    checks: [
      { id: 'require-device', plugin: 'require-device', message: 'Company mail needs a device report. Ref {refId}.' },
      {
        id: 'no-tiktok-on-mobiles',
        plugin: 'banned-apps',
        onUnknown: 'pass',
        scope: { platforms: ['ios', 'ipados', 'android'] },
        options: { apps: { ios: [TIKTOK], android: [TIKTOK] }, names: { [TIKTOK]: 'TikTok' } },
        message: 'Company mail is blocked on this {platform} device because {app} is installed. Remove {app}. Ref {refId}.',
        ...tiktok,
      },
    ],
  });
}

export async function startSmtpRig(options: { upstream: 'postfix' | 'sink' }): Promise<SmtpRig> {
  const redis = await startRedis();
  let dovecot: DovecotServer | null = null;
  let postfix: PostfixServer | null = null;
  let sink: SmtpSink | null = null;
  if (options.upstream === 'postfix') {
    // Dovecot only answers Postfix's SASL questions here (the same users as the IMAP tests).
    dovecot = await startDovecot({ extraConfig: 'service auth {\n  unix_listener auth-postfix {\n    mode = 0666\n  }\n}\n' });
    postfix = await startPostfix({ saslSocket: path.join(dovecot.dir, 'run', 'auth-postfix'), xclientHosts: ['127.0.0.1'] });
  } else {
    sink = await startSmtpSink({ xclient: true, auth: { users: { [ALICE.user]: ALICE.password } } });
  }
  const upstream = (postfix ?? sink) as { host: string; port: number };
  const pki = makeTestPki();
  const dir = tempDir('smtp-rig');
  const reporter = await makeReporterKeys({ kid: 'mdm-1', outDir: dir });
  const policyFile = path.join(dir, 'policy.yaml');
  fs.writeFileSync(policyFile, policyYaml({}));
  const config = {
    instanceName: 'smtp-it',
    policyFile: 'policy.yaml',
    tls: { cert: pki.serverCert, key: pki.serverKey },
    store: {
      type: 'redis',
      redis: { mode: 'standalone', host: redis.host, port: redis.port, keyPrefix: 'mws:', commandTimeoutMs: 100, connectTimeoutMs: 500 },
      // Redis down means a temporary failure at once (no last-known state to fall back on).
      outageLastKnownMaxSeconds: 0,
    },
    reports: { jwksFile: 'reporters.jwks.json', algorithms: ['ES256'] },
    admin: { listen: { host: '127.0.0.1', port: 0 }, tokens: [ADMIN_TOKEN] },
    identity: { sources: [{ type: 'app-password', hmacKeyFile: writeAppPasswordKey(dir) }, { type: 'asserted', separator: '+' }] },
    smtp: {
      listeners: [
        { host: '127.0.0.1', port: 0, tls: 'implicit' },
        { host: '127.0.0.1', port: 0, tls: 'starttls' },
        { host: '127.0.0.1', port: 0, tls: 'none' },
      ],
      // App-password devices: XCLIENT LOGIN= (the upstream never sees the app password);
      // asserted logins replay the user's own password (Dovecot SASL behind Postfix).
      upstream: { host: upstream.host, port: upstream.port, tls: 'none', login: 'master', xclient: true, connectTimeoutMs: 1000 },
      maxMessageBytes: 52428800,
      hostname: 'mailwarden.test',
    },
    logging: { level: 'error' },
  };
  const configFile = path.join(dir, 'mailwarden.yaml');
  fs.writeFileSync(configFile, JSON.stringify(config));
  const teardown = async (): Promise<void> => {
    await Promise.all([postfix?.cleanup(), dovecot?.cleanup(), sink?.stop(), cleanupRedis(redis)]);
    pki.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const runtime = await startRuntime({ configFile, logger: silentLogger(), watch: false }).catch(async (err: unknown) => {
    await teardown();
    throw err;
  });
  const [implicit, starttls, plain] = runtime.smtp!.addresses.map((a) => a.port) as [number, number, number];
  const adminUrl = `http://127.0.0.1:${runtime.admin!.address.port}`;

  return {
    runtime,
    redis,
    postfix,
    dovecot,
    sink,
    pki,
    ports: { implicit, starttls, plain },
    async report(deviceId, platform, apps) {
      const jws = await signReport(buildReport({ deviceId, user: ALICE.user, platform, osVersion: '18.2', managed: true, apps }), reporter.privateJwk);
      const result = await pushReport(adminUrl, ADMIN_TOKEN, jws);
      if (!result.ok) throw new Error(`report refused: ${result.code} ${result.message}`);
    },
    async enroll(deviceId) {
      return (await enrollDevice(adminUrl, ADMIN_TOKEN, { user: ALICE.user, deviceId })).password;
    },
    async setTiktok(fields) {
      fs.writeFileSync(policyFile, policyYaml(fields));
      const outcome = await runtime.reload();
      if (outcome.result !== 'ok') throw new Error(`reload refused: ${JSON.stringify(outcome)}`);
    },
    async audit(deviceId) {
      for (let i = 0; i < 50; i++) {
        const entries = (await runtime.store.readAudit('0', 10000)).map((e) => e.event).filter((e) => e.deviceId === deviceId && typeof e.action === 'string');
        if (entries.length > 0) return entries as Record<string, unknown>[];
        await new Promise((r) => setTimeout(r, 20));
      }
      return [];
    },
    async stop() {
      await runtime.stop(0);
      await teardown();
    },
  };
}

/** nodemailer against one of the rig's listeners (TLS with the test CA not verified). */
export function smtpClient(port: number, auth: { user: string; pass: string }, secure: 'implicit' | 'starttls' | 'none' = 'none') {
  return nodemailer.createTransport({
    host: '127.0.0.1',
    port,
    secure: secure === 'implicit',
    requireTLS: secure === 'starttls',
    ignoreTLS: secure === 'none',
    tls: { rejectUnauthorized: false },
    auth,
  });
}

/** What nodemailer's errors carry. */
export interface SmtpClientError {
  readonly code?: string;
  readonly responseCode?: number;
  readonly response?: string;
  readonly command?: string;
}

export async function sendError(promise: Promise<unknown>): Promise<SmtpClientError> {
  try {
    await promise;
  } catch (err) {
    return err as SmtpClientError;
  }
  throw new Error('sending unexpectedly succeeded');
}
