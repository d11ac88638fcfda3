// Live sessions on every instance, in the console: two mailwarden runtimes on one real redis-server
// in front of a real Dovecot. An IMAP IDLE session through runtime B is listed by runtime A's console
// with B's instance name, and ending it from A's console ends it on B (the client gets the BYE and the
// connection closes) within 2 s; the audit stream says who ended it and how many each instance ended.
import fs from 'node:fs';
import path from 'node:path';
import { hashToken } from '../../src/admin/roles';
import { startRuntime, type Runtime } from '../../src/app/runtime';
import { silentLogger } from '../../src/core/log';
import { ConsoleClient, tokenOf } from '../unit/console-fakes';
import { RawClient } from '../unit/imap-fakes';
import { ALICE, seedMailbox, startRig, type Rig } from './imap-rig';

const DEVICE = 'alice-ipad-sessions';
let rig: Rig;
let runtimeB: Runtime;

beforeAll(async () => {
  rig = await startRig({
    admin: {
      accessTokens: [
        { name: 'helpdesk-person', role: 'helpdesk', sha256: hashToken(tokenOf('helpdesk')) },
        { name: 'viewer-person', role: 'viewer', sha256: hashToken(tokenOf('viewer')) },
      ],
      console: { enabled: true },
    },
  });
  seedMailbox(rig.dovecot, 1);
  // Instance B: the rig's configuration (same redis-server, same Dovecot, same keys) under another name.
  const config = JSON.parse(fs.readFileSync(path.join(rig.dir, 'mailwarden.yaml'), 'utf8')) as Record<string, unknown>;
  const configB = path.join(rig.dir, 'mailwarden-b.yaml');
  fs.writeFileSync(configB, JSON.stringify({ ...config, instanceName: 'imap-b' }));
  runtimeB = await startRuntime({ configFile: configB, logger: silentLogger(), watch: false });
  await rig.report(DEVICE, 'ios', ['com.apple.mobilemail']);
});

afterAll(async () => {
  await runtimeB?.stop(0);
  await rig?.stop();
});

async function idleThroughB(): Promise<RawClient> {
  const plainB = runtimeB.imap!.addresses[2]!.port;
  const raw = await RawClient.connect(plainB);
  await raw.waitFor(/^\* OK/);
  raw.write(`a1 LOGIN ${ALICE.user}+${DEVICE} ${ALICE.password}\r\na2 SELECT INBOX\r\na3 IDLE\r\n`);
  await raw.waitFor(/\+ idling/);
  return raw;
}

test("runtime A's console lists an IDLE session held by runtime B, with B's name", async () => {
  const raw = await idleThroughB();
  try {
    expect(rig.runtime.gate.sessions.byDevice(DEVICE)).toHaveLength(0);
    const viewer = new ConsoleClient(rig.adminUrl);
    await viewer.signIn('viewer');
    const page = await viewer.request(`/console/devices/${DEVICE}`);
    expect(page.status).toBe(200);
    expect(page.text).toMatch(/<tr data-instance="imap-b"><td>imap-b<\/td><td>[^<]+<\/td><td>imap<\/td><td>alice@example\.com<\/td>/);
    expect(page.text).toContain('Instances that answered within 300 ms: imap-b, imap-it.');
    // A viewer sees the sessions but is offered no way to end them.
    expect(page.text).not.toContain('end-sessions');
  } finally {
    raw.close();
  }
});

test("ending the device's sessions from A's console ends B's IDLE session within 2 s, and the audit says who", async () => {
  const raw = await idleThroughB();
  const helpdesk = new ConsoleClient(rig.adminUrl);
  await helpdesk.signIn('helpdesk');
  const csrf = await helpdesk.csrf(`/console/devices/${DEVICE}`);
  const started = Date.now();
  const done = await helpdesk.request(`/console/devices/${DEVICE}/end-sessions`, { form: { _csrf: csrf } });
  await raw.waitClosed(2000);
  expect(Date.now() - started).toBeLessThan(2000);
  expect(raw.data).toMatch(/\* BYE This mail session was ended by the IT helpdesk\. Sign in again\. Ref MW-[0-9A-Z]{8}\.\r\n/);
  expect(done.status).toBe(200);
  expect(done.text).toContain('1 live session was ended.');
  expect(done.text).toContain('<tr data-instance="imap-b"><td>imap-b</td><td>1</td></tr>');
  expect(done.text).toContain('<tr data-instance="imap-it"><td>imap-it</td><td>0</td></tr>');

  const audit = (await rig.runtime.store.readAudit('0', 10000)).map((e) => e.event as Record<string, unknown>);
  expect(audit).toContainEqual(
    expect.objectContaining({
      msg: 'admin',
      operation: 'sessions-ended',
      by: 'helpdesk-person',
      role: 'helpdesk',
      via: 'console',
      deviceId: DEVICE,
      ended: 1,
      byInstance: { 'imap-b': 1, 'imap-it': 0 },
    }),
  );
  expect(runtimeB.gate.sessions.byDevice(DEVICE)).toHaveLength(0);
});
