// The gateway-hook integration rig: a real redis-server, the real mailwarden runtime with the
// `hooks:` section from docs/hooks.md (ports and backends replaced), reporter keys and app
// passwords from the fake-device kit, and helpers for the cases every hook test runs.
import fs from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import YAML from 'yaml';
import { startRuntime, type Runtime } from '../../src/app/runtime';
import { createLogger, silentLogger } from '../../src/core/log';
import type { HooksService } from '../../src/hooks/service';
import { buildReport, enrollDevice, makeReporterKeys, pushReport, signReport } from '../../src/kit';
import { startRedis, cleanupRedis, type RedisServer } from '../harness/redis';
import { ALICE, TIKTOK, policyYaml } from './smtp-rig';
import { tempDir } from '../harness/ports';
import { makeTestPki, type TestPki } from '../harness/tls';
import { docBlock } from './doc-blocks';
import { writeAppPasswordKey } from '../harness/app-password-key';

export const ADMIN_TOKEN = 'hooks-test-admin-token';
export { ALICE, TIKTOK };
/** The sentence the TikTok check shows (the policy below); a client must see it. */
export const TIKTOK_SENTENCE = /Company mail is blocked on this iOS device because TikTok is installed\. Remove TikTok\. Ref MW-[0-9A-Z]{8}\./;

const execFileP = promisify(execFile);

export interface HooksRig {
  readonly runtime: Runtime;
  readonly redis: RedisServer;
  /** The hooks running now (a reload that moves them starts new ones). */
  readonly hooks: HooksService;
  readonly pki: TestPki;
  readonly dir: string;
  /** The hooks section as docs/hooks.md has it (parsed), before the rig's replacements. */
  readonly documented: Record<string, unknown>;
  report(deviceId: string, platform: string, apps: readonly string[]): Promise<void>;
  enroll(deviceId: string): Promise<string>;
  /** Rewrite the TikTok check and reload. */
  setTiktok(fields: Record<string, unknown>): Promise<void>;
  setKillSwitch(on: boolean): Promise<void>;
  /** Decision audit events for a device, waiting briefly for the background write. */
  audit(deviceId: string, count?: number): Promise<Record<string, unknown>[]>;
  /** The admin listener's /metrics text. */
  metrics(): Promise<string>;
  /**
   * The hook switched off by a reload (`enabled: false`: its listener closes) for the duration of
   * `fn`, then on again. Give the hook a fixed port, so it comes back where the daemon expects it.
   */
  withHookDisabled<T>(hook: 'nginx' | 'dovecot' | 'postfix', fn: () => Promise<T>): Promise<T>;
  /** Redis down for the duration of `fn`, then up again with the devices re-reported. */
  withRedisDown<T>(fn: () => Promise<T>): Promise<T>;
  stop(): Promise<void>;
}

export interface HooksRigOptions {
  /** The hooks section to run, from the documented one (replace ports and backends here). */
  readonly hooks: (documented: Record<string, any>) => Record<string, unknown>;
}

export async function startHooksRig(options: HooksRigOptions): Promise<HooksRig> {
  const redis = await startRedis();
  const pki = makeTestPki();
  const dir = tempDir('hooks-rig');
  const reporter = await makeReporterKeys({ kid: 'mdm-1', outDir: dir });
  const policyFile = path.join(dir, 'policy.yaml');
  fs.writeFileSync(policyFile, policyYaml({}));
  const documented = (YAML.parse(docBlock('mailwarden-hooks')) as { hooks: Record<string, unknown> }).hooks;
  const config = {
    instanceName: 'hooks-it',
    policyFile: 'policy.yaml',
    tls: { cert: pki.serverCert, key: pki.serverKey, clientCa: pki.caCert },
    store: {
      type: 'redis',
      redis: { mode: 'standalone', host: redis.host, port: redis.port, keyPrefix: 'mwh:', commandTimeoutMs: 100, connectTimeoutMs: 500 },
      // Redis down means a temporary failure at once (no last-known state to fall back on).
      outageLastKnownMaxSeconds: 0,
    },
    reports: { jwksFile: 'reporters.jwks.json', algorithms: ['ES256'] },
    admin: { listen: { host: '127.0.0.1', port: 0 }, tokens: [ADMIN_TOKEN] },
    identity: { sources: [{ type: 'app-password', hmacKeyFile: writeAppPasswordKey(dir) }, { type: 'asserted', separator: '+' }, { type: 'certificate', deviceField: 'CN' }] },
    hooks: options.hooks(structuredClone(documented)),
    // The documented blocks keep their change-me placeholders; the tests send them.
    insecure: ['change-me-secret'],
    logging: { level: 'error' },
  };
  const configFile = path.join(dir, 'mailwarden.yaml');
  fs.writeFileSync(configFile, JSON.stringify(config));
  const teardown = async (): Promise<void> => {
    await cleanupRedis(redis);
    pki.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const logger = process.env.HOOKS_TEST_LOG ? createLogger({ level: 'info' }) : silentLogger();
  const runtime = await startRuntime({ configFile, logger, watch: false }).catch(async (err: unknown) => {
    await teardown();
    throw err;
  });
  const adminUrl = `http://127.0.0.1:${runtime.admin!.address.port}`;
  const reported = new Map<string, { platform: string; apps: readonly string[] }>();

  const report = async (deviceId: string, platform: string, apps: readonly string[]): Promise<void> => {
    const jws = await signReport(buildReport({ deviceId, user: ALICE.user, platform, osVersion: '18.2', managed: true, apps }), reporter.privateJwk);
    const result = await pushReport(adminUrl, ADMIN_TOKEN, jws);
    if (!result.ok) throw new Error(`report refused: ${result.code} ${result.message}`);
    reported.set(deviceId, { platform, apps });
  };

  return {
    runtime,
    redis,
    // The runtime starts the enabled hooks itself, as `mailwarden start` does.
    get hooks() {
      return runtime.hooks()!;
    },
    pki,
    dir,
    documented,
    report,
    async enroll(deviceId) {
      return (await enrollDevice(adminUrl, ADMIN_TOKEN, { user: ALICE.user, deviceId })).password;
    },
    async setTiktok(fields) {
      fs.writeFileSync(policyFile, policyYaml(fields));
      const outcome = await runtime.reload();
      if (outcome.result !== 'ok') throw new Error(`reload refused: ${JSON.stringify(outcome)}`);
    },
    async withHookDisabled(hook, fn) {
      const reloadWith = async (enabled: boolean): Promise<void> => {
        const section = config.hooks as Record<string, Record<string, unknown>>;
        section[hook] = { ...section[hook], enabled };
        fs.writeFileSync(configFile, JSON.stringify(config));
        const outcome = await runtime.reload();
        if (outcome.result !== 'ok') throw new Error(`reload refused: ${JSON.stringify(outcome)}`);
      };
      await reloadWith(false);
      try {
        return await fn();
      } finally {
        await reloadWith(true);
      }
    },
    async setKillSwitch(on) {
      const res = await fetch(`${adminUrl}/v1/kill-switch`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ on }),
      });
      if (res.status >= 300) throw new Error(`kill switch: HTTP ${res.status}`);
      // The switch reaches every instance's cache through the change feed.
      await new Promise((r) => setTimeout(r, 200));
    },
    async audit(deviceId, count = 1) {
      for (let i = 0; i < 100; i++) {
        const entries = (await runtime.store.readAudit('0', 10000)).map((e) => e.event).filter((e) => e.deviceId === deviceId && typeof e.action === 'string');
        if (entries.length >= count) return entries as Record<string, unknown>[];
        await new Promise((r) => setTimeout(r, 20));
      }
      return [];
    },
    async metrics() {
      const res = await fetch(`${adminUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      return res.text();
    },
    async withRedisDown(fn) {
      await redis.stop();
      try {
        return await fn();
      } finally {
        await redis.start();
        for (let i = 0; i < 100; i++) {
          if (await runtime.store.ping().then(() => true, () => false)) break;
          await new Promise((r) => setTimeout(r, 50));
        }
        // The test redis-server keeps nothing across a restart: report every device again.
        for (const [deviceId, r] of reported) await report(deviceId, r.platform, r.apps);
      }
    },
    async stop() {
      await runtime.stop(0);
      await teardown();
    },
  };
}

/** Runs a Python 3 snippet (a client that is not ours) and returns its stdout. */
export async function python(script: string, args: readonly string[] = []): Promise<string> {
  const { stdout } = await execFileP('python3', ['-c', script, ...args], { timeout: 30000 });
  return stdout;
}

/** Python imaplib: LOGIN, then SELECT INBOX; prints `OK <n>` or `ERR <server text>`. */
export const PY_IMAP_LOGIN = `
import imaplib, ssl, sys
host, port, user, password, tls = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5] == 'tls'
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
try:
    c = imaplib.IMAP4_SSL(host, port, ssl_context=ctx) if tls else imaplib.IMAP4(host, port)
    c.login(user, password)
    typ, data = c.select('INBOX')
    print('OK', data[0].decode())
    c.logout()
except imaplib.IMAP4.error as e:
    print('ERR', e.args[0].decode() if isinstance(e.args[0], bytes) else e.args[0])
except Exception as e:
    print('EXC', type(e).__name__, e)
`;

/** Python smtplib: EHLO, STARTTLS (optionally with a client certificate), AUTH, one message. */
export const PY_SMTP_SEND = `
import smtplib, ssl, sys
host, port, user, password, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
subject = sys.argv[7]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
if cert != '-': ctx.load_cert_chain(cert, key)
msg = 'From: %s\\r\\nTo: bob@example.com\\r\\nSubject: %s\\r\\n\\r\\nHello Bob.\\r\\n' % (user.split('+')[0], subject)
try:
    s = smtplib.SMTP(host, port, timeout=20)
    s.ehlo('client.test'); s.starttls(context=ctx); s.ehlo('client.test')
    # One mechanism only: smtplib.login() would try the next one after a refusal nginx closed on.
    s.user, s.password = user, password
    s.auth('PLAIN', s.auth_plain)
    s.sendmail(user.split('+')[0], ['bob@example.com'], msg)
    s.quit()
    print('SENT')
except smtplib.SMTPResponseException as e:
    print('ERR', e.smtp_code, e.smtp_error.decode(errors='replace'))
except smtplib.SMTPRecipientsRefused as e:
    code, text = list(e.recipients.values())[0]
    print('ERR', code, text.decode(errors='replace'))
except Exception as e:
    print('EXC', type(e).__name__, e)
`;
