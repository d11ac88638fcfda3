// `mailwarden device profile DEVICE`: an Apple configuration profile (.mobileconfig) with the IMAP
// and SMTP account of one device, using that device's app password, for an MDM to push to it.
import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { buildMailProfile } from '../enrolment/mobileconfig';
import { adminClient, keyName, print, readStdin, withAdminOptions } from './device';

interface ProfileOptions {
  config: string;
  url?: string;
  token?: string;
  user: string;
  host: string;
  imapPort?: string;
  smtpPort?: string;
  email?: string;
  identifier: string;
  organization?: string;
  accountName?: string;
  passwordStdin?: boolean;
  out?: string;
}

function portOption(value: string | undefined, fallback: number, flag: string): number {
  if (value === undefined) return fallback;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`${flag} must be a port number (got "${value}")`);
  return port;
}

export function registerProfileCommand(program: Command): void {
  const device = program.commands.find((c) => c.name() === 'device');
  if (!device) throw new Error('the device command group must be registered first');
  withAdminOptions(device.command('profile'))
    .description('write an Apple .mobileconfig (IMAP + SMTP account with the device’s app password) for the MDM to push')
    .argument('<deviceId>', 'device id', keyName('deviceId'))
    .requiredOption('--user <user>', 'the mail login name of the device’s user', keyName('user'))
    .requiredOption('--host <name>', 'the name devices reach mailwarden by (e.g. mail.example.com)')
    .option('--imap-port <port>', 'IMAP port on that name (implicit TLS)', '993')
    .option('--smtp-port <port>', 'submission port on that name (STARTTLS)', '587')
    .option('--email <address>', 'the address shown and sent from (default: the user)')
    .option('--identifier <reverse-dns>', 'prefix of the profile identifiers', 'org.mailwarden.mail')
    .option('--organization <name>', 'shown in Settings as the profile’s organisation')
    .option('--account-name <name>', 'the account name shown in Mail', 'Company mail')
    .option('--password-stdin', 'read an existing app password from stdin instead of issuing a new one')
    .option('--out <file>', 'write the profile here (mode 600) instead of to stdout')
    .action(async (deviceId: string, opts: ProfileOptions) => {
      const password = opts.passwordStdin ? (await readStdin()).trim() : (await (await adminClient(opts)).issueAppPassword(deviceId, opts.user)).password;
      if (!password) throw new Error('no app password on stdin');
      const profile = buildMailProfile({
        deviceId,
        user: opts.user,
        email: opts.email,
        appPassword: password,
        imap: { host: opts.host, port: portOption(opts.imapPort, 993, '--imap-port'), tls: true },
        smtp: { host: opts.host, port: portOption(opts.smtpPort, 587, '--smtp-port'), tls: true },
        identifier: opts.identifier,
        organization: opts.organization,
        accountName: opts.accountName,
      });
      if (!opts.out) {
        process.stdout.write(profile);
        return;
      }
      // The profile holds the password in clear: readable by its owner only.
      await writeFile(opts.out, profile, { mode: 0o600 });
      print(`wrote ${opts.out}: mail account for ${opts.user} on device ${deviceId}; it holds the device's app password — upload it to the MDM for this one device, then delete it`);
    });
}
