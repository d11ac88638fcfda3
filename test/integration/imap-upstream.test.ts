// mailwarden → Dovecot over implicit TLS and over STARTTLS, and the quarantine block style seen by
// a real client (imapflow): the blocked device reads the explanation, Dovecot never sees it.
import fs from 'node:fs';
import { ALICE, TIKTOK, imapClient, loginError, seedMailbox, startRig, type Rig } from './imap-rig';
import { makeTestPki } from '../harness/tls';

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

describe('device identity from a client certificate issued by the MDM CA', () => {
  let rig: Rig;
  beforeAll(async () => {
    rig = await startRig({ clientCertificates: true });
    seedMailbox(rig.dovecot, 1);
    await rig.report('cert-mac', 'macos', [TIKTOK]);
    await rig.report('cert-iphone', 'ios', [TIKTOK]);
  });
  afterAll(async () => {
    await rig?.stop();
  });

  function certClient(cn: string | null, pki = rig.pki): ReturnType<typeof imapClient> {
    const client = imapClient(rig.ports.implicit, { user: ALICE.user, pass: ALICE.password }, true);
    if (cn !== null) {
      const files = pki.clientCert(cn);
      const options = (client as unknown as { options: { tls: Record<string, unknown> } }).options;
      options.tls = { ...options.tls, cert: fs.readFileSync(files.cert), key: fs.readFileSync(files.key) };
    }
    return client;
  }

  test('the laptop certificate logs in; the TikTok iPhone certificate is denied with CONTACTADMIN', async () => {
    const mac = certClient('cert-mac');
    await mac.connect();
    expect((await mac.mailboxOpen('INBOX')).exists).toBe(1);
    await mac.logout();
    const err = await loginError(certClient('cert-iphone'));
    expect(err.serverResponseCode).toBe('CONTACTADMIN');
    expect(err.responseText).toMatch(/TikTok/);
  });

  test('without a certificate the login has no device identity: the unidentified rule applies', async () => {
    const err = await loginError(certClient(null));
    expect(err.serverResponseCode).toBe('CONTACTADMIN');
    expect(err.responseText).toMatch(/not enrolled/);
  });
});

describe('a client certificate from another CA', () => {
  test('carries no device identity, even with a known device id in its CN', async () => {
    const rig = await startRig({ clientCertificates: true });
    const foreign = makeTestPki();
    try {
      await rig.report('cert-mac', 'macos', []);
      const files = foreign.clientCert('cert-mac');
      const client = imapClient(rig.ports.implicit, { user: ALICE.user, pass: ALICE.password }, true);
      const options = (client as unknown as { options: { tls: Record<string, unknown> } }).options;
      options.tls = { ...options.tls, cert: fs.readFileSync(files.cert), key: fs.readFileSync(files.key) };
      const err = await loginError(client);
      expect(err.serverResponseCode).toBe('CONTACTADMIN');
      expect(err.responseText).toMatch(/not enrolled/);
    } finally {
      foreign.cleanup();
      await rig.stop();
    }
  });
});
