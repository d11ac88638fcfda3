// The iOS Mail profile: a valid XML property list whose one payload is an IMAP + SMTP account that
// logs in with the device's app password over TLS.
import plist from 'plist';
import { buildMailProfile } from '../../src/enrolment/mobileconfig';

let n = 0;
const profile = () =>
  buildMailProfile({
    deviceId: 'alice-iphone',
    user: 'alice@example.com',
    appPassword: 'abcd1234.0123456789abcdefghjkmnpqrs',
    imap: { host: 'mail.example.com', port: 993, tls: true },
    smtp: { host: 'mail.example.com', port: 587, tls: true },
    identifier: 'com.example.mail',
    organization: 'Example & Co <IT>',
    uuid: () => `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`,
  });

test('a Configuration profile with one com.apple.mail.managed payload', () => {
  const text = profile();
  expect(text).toMatch(/^<\?xml version="1.0" encoding="UTF-8"\?>\n<!DOCTYPE plist PUBLIC "-\/\/Apple\/\/DTD PLIST 1.0\/\/EN"/);
  const parsed = plist.parse(text) as Record<string, unknown>;
  expect(parsed).toMatchObject({
    PayloadType: 'Configuration',
    PayloadVersion: 1,
    PayloadIdentifier: 'com.example.mail.alice-iphone',
    PayloadOrganization: 'Example & Co <IT>',
  });
  const [account] = parsed.PayloadContent as Record<string, unknown>[];
  expect(account).toMatchObject({
    PayloadType: 'com.apple.mail.managed',
    EmailAccountType: 'EmailTypeIMAP',
    EmailAddress: 'alice@example.com',
    IncomingMailServerHostName: 'mail.example.com',
    IncomingMailServerPortNumber: 993,
    IncomingMailServerUseSSL: true,
    IncomingMailServerUsername: 'alice@example.com',
    IncomingPassword: 'abcd1234.0123456789abcdefghjkmnpqrs',
    OutgoingMailServerPortNumber: 587,
    OutgoingMailServerUseSSL: true,
    OutgoingPasswordSameAsIncomingPassword: true,
  });
  expect(parsed.PayloadUUID).not.toBe(account!.PayloadUUID);
});

test('XML special characters are escaped, not injected', () => {
  expect(profile()).toContain('<string>Example &amp; Co &lt;IT&gt;</string>');
});
