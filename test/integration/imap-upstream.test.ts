// mailwarden → Dovecot over implicit TLS and over STARTTLS, and the quarantine block style seen by
// a real client (imapflow): the blocked device reads the explanation, Dovecot never sees it.
import fs from 'node:fs';
import { ALICE, TIKTOK, imapClient, seedMailbox, startRig, type Rig } from './imap-rig';

describe.each(['implicit', 'starttls'] as const)('upstream over %s TLS, quarantine block style', (upstreamTls) => {
  let rig: Rig;
  beforeAll(async () => {
    rig = await startRig({ upstreamTls, blockStyle: 'quarantine' });
    seedMailbox(rig.dovecot, 2);
    await rig.report('q-mac', 'macos', []);
    await rig.report('q-iphone', 'ios', [TIKTOK]);
  });
  afterAll(async () => {
    await rig?.stop();
  });

  test('an allowed device reaches its real mailbox through the TLS upstream leg', async () => {
    const client = imapClient(rig.ports.plain, { user: `${ALICE.user}+q-mac`, pass: ALICE.password });
    await client.connect();
    expect((await client.mailboxOpen('INBOX')).exists).toBe(2);
    await client.logout();
    // Dovecot saw a TLS connection from the proxy ("TLS" in its login line) and the forwarded client address.
    expect(fs.readFileSync(rig.dovecot.logFile, 'utf8')).toMatch(/Login: user=<alice@example\.com>.*TLS/);
  });

  test('a blocked device logs in to the quarantine mailbox and reads the explanation', async () => {
    const client = imapClient(rig.ports.plain, { user: `${ALICE.user}+q-iphone`, pass: ALICE.password });
    await client.connect();
    const box = await client.mailboxOpen('INBOX');
    expect(box.exists).toBe(1);
    expect(box.readOnly).toBe(true);
    const msg = await client.fetchOne('1', { envelope: true, source: true });
    expect(msg && msg.envelope?.subject).toBe('Company mail is blocked on this device');
    expect(msg && msg.source?.toString()).toMatch(/because TikTok is installed\. Remove TikTok/);
    await expect(client.mailboxCreate('Archive')).rejects.toBeDefined();
    await client.logout();
    const sessions = fs.readFileSync(rig.dovecot.logFile, 'utf8').match(/Login: user=<alice@example\.com>/g) ?? [];
    expect(sessions).toHaveLength(1);
  });
});
