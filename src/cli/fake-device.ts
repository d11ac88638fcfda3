// `mailwarden fake-device keys|report|enroll`: rehearse a policy end to end with a device that
// does not exist — make reporter keys, sign and push its report, enrol it, print how to log in.
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import {
  buildReport,
  enrollDevice,
  loginDetails,
  makeIdpKeys,
  makeReporterKeys,
  pushReport,
  readPrivateJwk,
  signReport,
} from '../kit';
import { keyName, print, withAdminOptions } from './device';
import { resolveAdminTarget, type TargetOptions } from '../admin/client';
import { CliError, EXIT, UsageError } from '../core/exit-codes';

interface KeysOptions {
  out: string;
  kid: string;
  alg: string;
  idp?: boolean;
}

interface ReportOptions {
  key: string;
  device: string;
  user: string;
  platform: string;
  os: string;
  app: string[];
  unmanaged?: boolean;
  /** commander's --no-inventory sets this false. */
  inventory: boolean;
  reportedAt?: string;
  push?: string;
  token?: string;
  out?: string;
}

interface EnrollOptions extends TargetOptions {
  device: string;
  user: string;
  imap?: string;
  smtp?: string;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

export function registerFakeDeviceCommands(program: Command): void {
  const fake = program
    .command('fake-device')
    .description('rehearse a policy with fake devices: reporter keys, signed reports, enrolment');

  fake
    .command('keys')
    .description('make a reporter key pair (or, with --idp, an identity provider key pair for OAuth rehearsals)')
    .requiredOption('--out <dir>', 'folder for the private key and the public JWKS')
    .option('--kid <kid>', 'key id', 'fake-reporter')
    .option('--alg <alg>', 'signature algorithm (must be in reports.algorithms)', 'ES256')
    .option('--idp', 'an IdP key pair (idp.jwks.json) instead of a reporter key pair')
    .action(async (opts: KeysOptions) => {
      const make = opts.idp ? makeIdpKeys : makeReporterKeys;
      const { files } = await make({ kid: opts.kid, alg: opts.alg, outDir: opts.out });
      const jwks = path.resolve(files!.jwks);
      print(`private key: ${path.resolve(files!.privateKey)} (keep it secret)`);
      print(`public keys: ${jwks}`);
      print('next:');
      if (opts.idp) {
        print(`  add an oauth identity source with jwksFile: ${jwks} to mailwarden.yaml`);
      } else {
        print(`  set reports.jwksFile: ${jwks} in mailwarden.yaml (and ${opts.alg} in reports.algorithms)`);
        print(
          `  mailwarden fake-device report --key ${path.resolve(files!.privateKey)} --device DEVICE --user USER ` +
            '--platform ios --os 17.4 --app com.zhiliaoapp.musically --push http://127.0.0.1:8025 --token TOKEN',
        );
      }
    });

  fake
    .command('report')
    .description('sign a device report; print it, write it to a file, or push it to the admin API')
    .requiredOption('--key <file>', 'private JWK from "fake-device keys"')
    .requiredOption('--device <id>', 'device id', keyName('deviceId'))
    .requiredOption('--user <user>', 'mail login name of the device owner', keyName('user'))
    .requiredOption('--platform <platform>', 'ios, ipados, android, macos, windows, linux, ...')
    .requiredOption('--os <version>', 'OS version, e.g. 17.4')
    .option('--app <id>', 'an installed app id (repeat for several)', collect, [])
    .option('--no-inventory', 'leave the app list out: inventory not visible to the reporter')
    .option('--unmanaged', 'the device is not managed by the MDM')
    .option('--reported-at <time>', 'RFC 3339 time the state was observed (default: now)')
    .option('--push <url>', 'admin API base URL to POST the report to, e.g. http://127.0.0.1:8025')
    .option('--token <token>', 'admin token for --push (default: $MAILWARDEN_ADMIN_TOKEN)')
    .option('--out <file>', 'write the compact JWS to this file')
    .action(async (opts: ReportOptions) => {
      if (opts.push !== undefined && opts.out !== undefined) throw new UsageError('give --push or --out, not both');
      const report = buildReport({
        deviceId: opts.device,
        user: opts.user,
        platform: opts.platform,
        osVersion: opts.os,
        managed: !opts.unmanaged,
        ...(opts.inventory ? { apps: opts.app } : {}),
        ...(opts.reportedAt === undefined ? {} : { reportedAt: opts.reportedAt }),
      });
      const jws = await signReport(report, await readPrivateJwk(opts.key));
      if (opts.push !== undefined) {
        const token = opts.token ?? process.env.MAILWARDEN_ADMIN_TOKEN;
        if (!token) throw new UsageError('--push needs --token TOKEN (or $MAILWARDEN_ADMIN_TOKEN)');
        const result = await pushReport(opts.push, token, jws);
        if (!result.ok) throw new CliError(`report rejected: ${result.message}`, EXIT.refused);
        print(result.stored ? `stored: report for device ${result.deviceId}` : `not stored: a newer report for ${result.deviceId} is already stored`);
        print('next:');
        print(`  mailwarden fake-device enroll --url ${opts.push} --token TOKEN --device ${opts.device} --user ${opts.user}`);
      } else if (opts.out !== undefined) {
        await fs.writeFile(opts.out, `${jws}\n`);
        print(`wrote ${opts.out}`);
        print('next:');
        print(`  mailwarden device report ${opts.out}   (or: curl -H 'Content-Type: application/jose' --data-binary @${opts.out} ...)`);
      } else {
        print(jws);
      }
    });

  withAdminOptions(fake.command('enroll'))
    .description('issue an app password for the device and print how to log in as it')
    .requiredOption('--device <id>', 'device id', keyName('deviceId'))
    .requiredOption('--user <user>', 'mail login name of the device owner', keyName('user'))
    .option('--imap <host:port>', 'mailwarden IMAP listener to show in the login details')
    .option('--smtp <host:port>', 'mailwarden SMTP listener to show in the login details')
    .action(async (opts: EnrollOptions) => {
      const target = await resolveAdminTarget(opts);
      const issued = await enrollDevice(target.baseUrl, target.token, { user: opts.user, deviceId: opts.device });
      const details = loginDetails({ user: opts.user, deviceId: opts.device, appPassword: issued.password, imap: opts.imap, smtp: opts.smtp });
      print(`enrolled: app password ${issued.credentialId} (shown once; only its hash is stored)`);
      process.stdout.write(details.text);
    });
}
