// Issue 8 item 8: a Redis outage (the redis-server this test started, frozen with SIGSTOP). App
// passwords keep working from last-known state within outageLastKnownMaxSeconds, the documented
// store-unreachable alert reaches the webhook, and the audit events of the outage are buffered
// (bounded) and written once Redis answers again, the overflow counted.
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { findProgram } from '../harness/ports';
import { ADMIN_TOKEN, ALICE, imapClient, seedMailbox, startRig, type Rig } from './imap-rig';

const AUDIT_BUFFER = 3;
let rig: Rig;
let webhook: http.Server;
const alerts: { kind: string; details: Record<string, unknown> }[] = [];
let appPassword: string;

beforeAll(async () => {
  webhook = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
    req.on('end', () => {
      alerts.push(JSON.parse(body) as (typeof alerts)[number]);
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => webhook.listen(0, '127.0.0.1', resolve));
  const webhookUrl = `http://127.0.0.1:${(webhook.address() as AddressInfo).port}/alerts`;
  rig = await startRig({
    outageLastKnownMaxSeconds: 60,
    store: { auditBufferMax: AUDIT_BUFFER },
    extraConfig: { alerts: { webhookUrl, timeoutMs: 2000 } },
  });
  seedMailbox(rig.dovecot);
  await rig.report('out-phone', 'macos', []);
  const res = await fetch(`${rig.adminUrl}/v1/devices/out-phone/app-passwords`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ user: ALICE.user }),
  });
  appPassword = ((await res.json()) as { password: string }).password;
}, 60_000);
afterAll(async () => {
  await rig?.stop();
  await new Promise((resolve) => webhook?.close(resolve));
});

/** Logs in with the app password and opens INBOX; resolves with the message count or the error text. */
async function appPasswordLogin(): Promise<number | string> {
  const client = imapClient(rig.ports.plain, { user: ALICE.user, pass: appPassword });
  try {
    await client.connect();
    const exists = (await client.mailboxOpen('INBOX')).exists;
    await client.logout();
    return exists;
  } catch (err) {
    const e = err as { responseText?: string; message: string };
    client.close();
    return e.responseText ?? e.message;
  }
}

async function waitUntil(what: string, ok: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  for (const until = Date.now() + ms; Date.now() < until; ) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Decisions about the phone made between the two instants (ISO strings compare in time order). */
async function decisionsBetween(from: string, to: string): Promise<Record<string, unknown>[]> {
  const entries = await rig.runtime.store.readAudit('0', 10000);
  return entries.map((e) => e.event).filter((e) => e.msg === 'decision' && e.deviceId === 'out-phone' && (e.at as string) >= from && (e.at as string) <= to);
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${rig.adminUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : Number.NaN;
}

test('Redis frozen: app-password logins go on from last-known state, the alert is sent, the audit is written afterwards', async () => {
  // Seen once while Redis answers: the credential and the device's facts are now last-known state.
  expect(await appPasswordLogin()).toBe(3);
  const cli = findProgram('redis-cli');
  if (!cli) throw new Error('redis-cli not found');
  // The pid of the redis-server the rig started for this file.
  const pid = Number(/process_id:(\d+)/.exec(execFileSync(cli, ['-p', String(rig.redis.port), 'info', 'server']).toString())![1]);
  const frozenAt = new Date().toISOString();
  process.kill(pid, 'SIGSTOP');
  const during: (number | string)[] = [];
  try {
    for (let i = 0; i < AUDIT_BUFFER + 2; i++) during.push(await appPasswordLogin());
    expect(during).toEqual([3, 3, 3, 3, 3]);
    await waitUntil('the store-unreachable alert', () => alerts.some((a) => a.kind === 'store-unreachable'));
    // Buffered (3), the overflow counted (2), nothing written yet.
    expect(await metric('mailwarden_audit_buffered')).toBe(AUDIT_BUFFER);
    expect(await metric('mailwarden_audit_dropped_total')).toBe(2);
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  const thawedAt = new Date().toISOString();
  const outageDecisions = () => decisionsBetween(frozenAt, thawedAt);
  expect(alerts.filter((a) => a.kind === 'store-unreachable')).toHaveLength(1);
  // Once Redis answers again the buffered decisions are written, oldest first; the log file has the rest.
  // (Marked replayed: a write that timed out against the frozen Redis may also have landed.)
  const replayed = async () => (await outageDecisions().catch(() => [])).filter((e) => e.replayed === true);
  await waitUntil('the buffered audit events in Redis', async () => (await replayed()).length === AUDIT_BUFFER);
  expect(await metric('mailwarden_audit_buffered')).toBe(0);
  const written = await replayed();
  expect(written.map((e) => e.at)).toEqual([...written.map((e) => e.at as string)].sort());
  expect(new Set(written.map((e) => e.refId)).size).toBe(AUDIT_BUFFER);
}, 90_000);
