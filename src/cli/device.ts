// `mailwarden device show|list|report|enroll|unenroll|exempt|unexempt` and `mailwarden kill-switch`:
// ops commands that talk to a running instance through the admin API (src/admin/client.ts).
import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { Argument, InvalidArgumentError, Option, type Command } from 'commander';
import {
  AdminApiError,
  createAdminClient,
  resolveAdminTarget,
  type AdminClient,
  type DeviceView,
  type TargetOptions,
} from '../admin/client';
import type { ExemptionScope, Exemption } from '../store/device-store';
import type { KillSwitchState } from '../policy/brake';
import { CliError, EXIT, UsageError } from '../core/exit-codes';
import { validateKeyName } from '../core/identifiers';

export const DEFAULT_CONFIG = 'config/mailwarden.yaml';

/** --config / --url / --token on a command that talks to the admin API (also used by src/cli/audit.ts). */
export function withAdminOptions(command: Command): Command {
  return command
    .option('-c, --config <file>', 'configuration file (its admin section)', DEFAULT_CONFIG)
    .option('--url <url>', 'admin API base URL (default: from admin.listen in the config)')
    .option('--token <token>', 'admin token (default: $MAILWARDEN_ADMIN_TOKEN, else admin.tokens[0])');
}

export async function adminClient(options: TargetOptions): Promise<AdminClient> {
  return createAdminClient(await resolveAdminTarget(options));
}

/**
 * Commander parser for a device id or user name: the grammar the server enforces
 * (src/core/identifiers.ts), checked before any request so the error names the argument.
 */
export const keyName = (field: 'deviceId' | 'user') => (value: string): string => {
  const problem = validateKeyName(value, field);
  if (problem) throw new InvalidArgumentError(problem);
  return value;
};
const deviceIdArg = keyName('deviceId');
const userArg = keyName('user');

export const print = (line = ''): void => void process.stdout.write(`${line}\n`);

/** Left-aligned columns, two spaces apart. */
export function table(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ').trimEnd());
}


interface ExemptOptions extends TargetOptions {
  user?: string;
  hours?: string;
  until?: string;
  note?: string;
  check: string[];
}

/** Exactly one of a device id argument or --user. */
function exemptionSubject(deviceId: string | undefined, user: string | undefined): { scope: ExemptionScope; subject: string } {
  if ((deviceId === undefined) === (user === undefined)) throw new UsageError('give either a device id or --user USER (not both)');
  return deviceId !== undefined ? { scope: 'device', subject: deviceId } : { scope: 'user', subject: user as string };
}

export function registerDeviceCommands(program: Command): void {
  const device = program.command('device').description('inspect, enrol and exempt devices (through the admin API)');

  withAdminOptions(device.command('show'))
    .description('a device: its record, exemptions, and the decision it would get now, check by check')
    .argument('<deviceId>', 'device id', deviceIdArg)
    .addOption(new Option('--protocol <protocol>', 'login protocol to decide for').choices(['imap', 'smtp']).default('imap'))
    .option('--json', 'print the API answer as JSON')
    .action(async (deviceId: string, opts: TargetOptions & { protocol: 'imap' | 'smtp'; json?: boolean }) => {
      const view = await (await adminClient(opts)).showDevice(deviceId, opts.protocol);
      if (opts.json) print(JSON.stringify(view, null, 2));
      else printDeviceView(view);
    });

  withAdminOptions(device.command('list'))
    .description('stored device records')
    .option('--user <user>', 'only this user’s devices', userArg)
    .option('--json', 'one JSON record per line')
    .action(async (opts: TargetOptions & { user?: string; json?: boolean }) => {
      const client = await adminClient(opts);
      const rows = [['DEVICE', 'USER', 'PLATFORM', 'OS', 'MANAGED', 'APPS', 'REPORTED']];
      let after: string | undefined;
      // Bounded: 10,000 pages of 1,000 devices.
      for (let page = 0; page < 10_000; page++) {
        const { devices, next } = await client.listDevices({ user: opts.user, after, limit: 1000 });
        for (const r of devices) {
          if (opts.json) print(JSON.stringify(r));
          else rows.push([r.deviceId, r.user, r.platform, r.osVersion, r.managed ? 'yes' : 'no', r.apps ? String(r.apps.length) : '-', r.reportedAt]);
        }
        if (next === null) break;
        after = next;
      }
      if (!opts.json) table(rows).forEach((line) => print(line));
    });

  withAdminOptions(device.command('report'))
    .description('send a signed device report (a compact JWS; "-" reads it from stdin)')
    .argument('<file>')
    .action(async (file: string, opts: TargetOptions) => {
      const jws = (file === '-' ? await readStdin() : await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
        throw new CliError(`cannot read ${file}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`, EXIT.usage);
      })).trim();
      const client = await adminClient(opts);
      const outcome = await client.postReport(jws).catch((err: unknown) => {
        if (err instanceof AdminApiError && err.status >= 400 && err.status < 500) throw new CliError(`report rejected: ${err.message}`, EXIT.refused);
        throw err;
      });
      if (outcome.stored) print(`stored: report for device ${outcome.deviceId}`);
      else print(`not stored: ${outcome.reason} (device ${outcome.deviceId})`);
    });

  withAdminOptions(device.command('enroll'))
    .description('issue a device-bound app password (printed once; only its hash is stored)')
    .argument('<deviceId>', 'device id', deviceIdArg)
    .requiredOption('--user <user>', 'the mail login name the device uses', userArg)
    .option('--json', 'print { password, credentialId, user, deviceId } as JSON')
    .option('--force', 'also when the device has no stored report for that user (admin token only; audited)')
    .action(async (deviceId: string, opts: TargetOptions & { user: string; json?: boolean; force?: boolean }) => {
      const issued = await (await adminClient(opts)).issueAppPassword(deviceId, opts.user, { force: opts.force ?? false });
      if (opts.json) {
        print(JSON.stringify(issued));
        return;
      }
      print(`App password for ${issued.user} on device ${issued.deviceId} (credential ${issued.credentialId}):`);
      print();
      print(`  ${issued.password}`);
      print();
      print('It is shown only this once: put it in the device’s mail account profile now.');
    });

  withAdminOptions(device.command('unenroll'))
    .description('remove every app password of a device')
    .argument('<deviceId>', 'device id', deviceIdArg)
    .action(async (deviceId: string, opts: TargetOptions) => {
      const { removed } = await (await adminClient(opts)).removeAppPasswords(deviceId);
      print(`removed ${removed} app password(s) of device ${deviceId}`);
    });

  withAdminOptions(device.command('exempt'))
    .description('exempt a device (or --user) from every check, or from --check C, for a while')
    .argument('[deviceId]', 'device id', deviceIdArg)
    .option('--user <user>', 'exempt every device of this user instead', userArg)
    .option('--hours <n>', 'how long, in hours')
    .option('--until <time>', 'or until this ISO-8601 time')
    .option('--note <text>', 'why, and who asked (required)')
    .option('--check <checkId>', 'only this check (repeatable)', (value: string, previous: string[]) => [...previous, value], [])
    .action(async (deviceId: string | undefined, opts: ExemptOptions) => {
      const { scope, subject } = exemptionSubject(deviceId, opts.user);
      if ((opts.hours === undefined) === (opts.until === undefined)) throw new UsageError('give --hours N or --until TIME');
      if (!opts.note) throw new UsageError('--note is required: say why, and who asked');
      const hours = opts.hours === undefined ? undefined : Number(opts.hours);
      if (hours !== undefined && !(hours > 0)) throw new UsageError(`--hours must be a positive number (got "${opts.hours}")`);
      const { exemption } = await (await adminClient(opts)).putExemption(scope, subject, {
        ...(hours !== undefined ? { hours } : { expiresAt: opts.until }),
        note: opts.note,
        ...(opts.check.length > 0 ? { checks: opts.check } : {}),
        createdBy: operatorName(),
      });
      print(`exempted ${describeExemption(exemption)}`);
    });

  withAdminOptions(device.command('unexempt'))
    .description('end the exemption of a device (or --user) now')
    .argument('[deviceId]', 'device id', deviceIdArg)
    .option('--user <user>', 'the user exemption instead', userArg)
    .action(async (deviceId: string | undefined, opts: TargetOptions & { user?: string }) => {
      const { scope, subject } = exemptionSubject(deviceId, opts.user);
      await (await adminClient(opts)).removeExemption(scope, subject);
      print(`exemption of ${scope} ${subject} removed`);
    });

  // Top-level, not under `device`: registered here so src/cli/index.ts needs no change.
  withAdminOptions(program.command('kill-switch'))
    .description('every check in report mode on every instance within seconds (on), back to the policy (off), or show which it is (status)')
    .addArgument(new Argument('<state>', 'on, off or status').choices(['on', 'off', 'status']))
    .option('--note <text>', 'why (shown by status, kept in the audit log)')
    .option('--json', 'status: print the API answer')
    .action(async (state: 'on' | 'off' | 'status', opts: TargetOptions & { note?: string; json?: boolean }) => {
      const client = await adminClient(opts);
      if (state === 'status') {
        const now = await client.killSwitch();
        print(opts.json ? JSON.stringify(now) : describeKillSwitch(now));
        return;
      }
      const { on } = await client.setKillSwitch(state === 'on', { by: operatorName(), ...(opts.note !== undefined && { note: opts.note }) });
      print(on ? 'kill switch ON: every check is in report mode on every instance' : 'kill switch off: the policy is enforced as configured');
    });
}

/** One line: the state, since when and by whom, and the note. */
export function describeKillSwitch(s: KillSwitchState): string {
  const head = s.on ? 'kill switch ON: every check is in report mode on every instance' : 'kill switch off: the policy is enforced as configured';
  const when = s.since ? ` since ${s.since}` : '';
  const who = s.by ? ` by ${s.by}` : '';
  const note = s.note ? `: "${s.note}"` : '';
  return `${head}${when || who ? ` (${`${when}${who}`.trim()}${note})` : note}`;
}

function operatorName(): string {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return 'cli';
  }
}

function describeExemption(e: Exemption): string {
  const checks = e.checks ? `checks ${e.checks.join(', ')}` : 'every check';
  return `${e.scope} ${e.subject} from ${checks} until ${e.expiresAt}: "${e.note}" (by ${e.createdBy})`;
}

/** The answer to "why is this device blocked?" in a terminal. */
function printDeviceView(view: DeviceView): void {
  const r = view.record;
  if (!r) {
    print(`device ${view.deviceId}: the stored record is malformed (${view.detail ?? 'unreadable'}); it counts as unknown`);
  } else {
    table([
      ['device', r.deviceId],
      ['user', r.user],
      ['platform', `${r.platform} ${r.osVersion}, ${r.managed ? 'managed' : 'not managed'}`],
      ['apps', r.apps ? `${r.apps.length}${r.apps.length ? `: ${r.apps.join(', ')}` : ''}` : 'not visible to the reporter'],
      ['reported', `${r.reportedAt} by ${r.source} (received ${r.receivedAt})`],
    ]).forEach((line) => print(line));
  }
  print();
  if (view.exemptions.length === 0) print('exemptions: none');
  else view.exemptions.forEach((e) => print(`exemption: ${describeExemption(e)}`));
  const d = view.decision;
  if (!d) return;
  print();
  print(`decision now (${d.protocol} login): ${d.action.toUpperCase()} ${d.reasonCode}${d.decidedBy ? ` by check ${d.decidedBy}` : ''}, policy ${d.policyVersion}`);
  if (d.message) {
    print(`user sees: ${d.message}`);
    // This dry run made a fresh reference id: label it, so nobody takes it for the one the user quotes.
    if (d.refId) print(`           (${d.refId} is a preview id from this dry run; find the user's own with: mailwarden audit search --ref MW-…)`);
  }
  d.warnings.forEach((w) => print(`warning: ${w}`));
  if (d.checks.length === 0) return;
  print();
  const rows = [['CHECK', 'PLUGIN', 'MODE', 'OUTCOME', 'CODE', 'REASON']];
  for (const c of d.checks) {
    const mode = c.mode === c.effectiveMode ? c.mode : `${c.mode}→${c.effectiveMode}`;
    const reason = [c.reason, c.graceUntil ? `grace until ${c.graceUntil}` : ''].filter(Boolean).join('; ');
    rows.push([c.checkId, c.plugin, mode, c.outcome, c.code ?? '', reason]);
  }
  table(rows).forEach((line) => print(line));
}

export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
