// Apple configuration profiles (.mobileconfig) for iOS/iPadOS/macOS Mail: one IMAP + SMTP account
// (com.apple.mail.managed payload) that logs in with the device's own app password, for an MDM
// (Jamf, Intune) to push to exactly that device. Built as an XML property list by `plist`.
import { randomUUID } from 'node:crypto';
import plist from 'plist';

export interface MailProfileInput {
  readonly deviceId: string;
  readonly user: string;
  /** The mail address shown and used as sender (defaults to the user). */
  readonly email?: string;
  /** The device's app password (`<id>.<secret>`): the profile is as secret as the password. */
  readonly appPassword: string;
  readonly imap: { readonly host: string; readonly port: number; readonly tls: boolean };
  readonly smtp: { readonly host: string; readonly port: number; readonly tls: boolean };
  /** Reverse-DNS prefix of the payload identifiers, e.g. com.example.mail. */
  readonly identifier: string;
  readonly organization?: string;
  readonly accountName?: string;
  /** For tests: fixed UUIDs. */
  readonly uuid?: () => string;
}

/** The profile as XML text. */
export function buildMailProfile(input: MailProfileInput): string {
  const uuid = input.uuid ?? (() => randomUUID().toUpperCase());
  const email = input.email ?? input.user;
  const id = `${input.identifier}.${input.deviceId.replace(/[^A-Za-z0-9.-]/g, '-')}`;
  const account = {
    PayloadType: 'com.apple.mail.managed',
    PayloadVersion: 1,
    PayloadIdentifier: `${id}.account`,
    PayloadUUID: uuid(),
    PayloadDisplayName: input.accountName ?? 'Company mail',
    EmailAccountDescription: input.accountName ?? 'Company mail',
    EmailAccountName: input.user,
    EmailAccountType: 'EmailTypeIMAP',
    EmailAddress: email,
    IncomingMailServerAuthentication: 'EmailAuthPassword',
    IncomingMailServerHostName: input.imap.host,
    IncomingMailServerPortNumber: input.imap.port,
    IncomingMailServerUseSSL: input.imap.tls,
    IncomingMailServerUsername: input.user,
    IncomingPassword: input.appPassword,
    OutgoingMailServerAuthentication: 'EmailAuthPassword',
    OutgoingMailServerHostName: input.smtp.host,
    OutgoingMailServerPortNumber: input.smtp.port,
    OutgoingMailServerUseSSL: input.smtp.tls,
    OutgoingMailServerUsername: input.user,
    OutgoingPasswordSameAsIncomingPassword: true,
    // The app password is bound to this device: keep mail inside Mail.
    PreventMove: true,
    PreventAppSheet: true,
    disableMailRecentsSyncing: true,
  };
  return plist.build({
    PayloadType: 'Configuration',
    PayloadVersion: 1,
    PayloadIdentifier: id,
    PayloadUUID: uuid(),
    PayloadDisplayName: `${input.accountName ?? 'Company mail'} (${input.user})`,
    PayloadDescription: `Mail account for ${input.user} on device ${input.deviceId}; the password works on this device only.`,
    ...(input.organization ? { PayloadOrganization: input.organization } : {}),
    PayloadRemovalDisallowed: false,
    PayloadContent: [account],
  });
}
