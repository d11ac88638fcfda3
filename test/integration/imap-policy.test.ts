// Policy modes seen through the IMAP proxy with the real runtime: report mode (login allowed, the
// audit keeps the would-be denial), grace period (ALERT and login), and a reload that newly denies
// a live session's device ends that session.
import { ALICE, TIKTOK, imapClient, loginError, seedMailbox, startRig, type Rig } from './imap-rig';
import { RawClient } from '../unit/imap-fakes';

let rig: Rig;

beforeAll(async () => {
  rig = await startRig();
  seedMailbox(rig.dovecot, 1);
});
afterAll(async () => {
  await rig?.stop();
});

async function login(deviceId: string): Promise<RawClient> {
  const raw = await RawClient.connect(rig.ports.plain);
  await raw.waitFor(/^\* OK/);
  raw.write(`a1 LOGIN ${ALICE.user}+${deviceId} ${ALICE.password}\r\n`);
  await raw.waitFor(/a1 (OK|NO)/);
  return raw;
}

async function auditFor(deviceId: string): Promise<Record<string, unknown>[]> {
  for (let i = 0; i < 50; i++) {
    const entries = (await rig.runtime.store.readAudit('0', 10000)).map((e) => e.event).filter((e) => e.deviceId === deviceId);
    if (entries.length > 0) return entries as Record<string, unknown>[];
    await new Promise((r) => setTimeout(r, 20));
  }
  return [];
}

test('report mode: the TikTok iPhone logs in, and the audit shows the would-be denial', async () => {
  await rig.setTiktok({ mode: 'report' });
  await rig.report('report-iphone', 'ios', [TIKTOK]);
  const raw = await login('report-iphone');
  raw.close();
  expect(raw.data).toMatch(/a1 OK \[CAPABILITY /);
  expect(raw.data).not.toContain('ALERT');
  const [event] = await auditFor('report-iphone');
  expect(event).toMatchObject({ action: 'allow', protocol: 'imap', identitySource: 'asserted' });
  const check = (event!.checks as { checkId: string; outcome: string; effectiveMode: string }[]).find((c) => c.checkId === 'no-tiktok-on-mobiles');
  expect(check).toMatchObject({ outcome: 'fail', effectiveMode: 'report' });
});

test('grace period: an ALERT warning, then the login proceeds', async () => {
  await rig.setTiktok({ graceHours: 24, graceMessage: 'Remove {app} within the grace period or mail stops. Ref {refId}.' });
  await rig.report('grace-iphone', 'ios', [TIKTOK]);
  const raw = await login('grace-iphone');
  raw.close();
  expect(raw.data).toMatch(/\* OK \[ALERT\] .*TikTok.*\r\na1 OK \[CAPABILITY /);
});

test('a policy reload that newly denies a device ends its live session', async () => {
  await rig.setTiktok({});
  await rig.report('laptop-1', 'macos', [TIKTOK]);
  const client = imapClient(rig.ports.plain, { user: `${ALICE.user}+laptop-1`, pass: ALICE.password });
  await client.connect();
  await client.mailboxOpen('INBOX');
  const idling = client.idle();
  const closed = new Promise<void>((resolve) => client.on('close', () => resolve()));
  await rig.setTiktok({
    scope: { platforms: ['ios', 'macos'] },
    options: { apps: { ios: [TIKTOK], macos: [TIKTOK] }, names: { [TIKTOK]: 'TikTok' } },
  });
  await closed;
  await idling.catch(() => undefined);
  expect(rig.runtime.gate.sessions.byDevice('laptop-1')).toHaveLength(0);
  const err = await loginError(imapClient(rig.ports.plain, { user: `${ALICE.user}+laptop-1`, pass: ALICE.password }));
  expect(err.serverResponseCode).toBe('CONTACTADMIN');
});
