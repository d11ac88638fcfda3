// `mailwarden audit tail|search`: the audit stream (decisions and admin operations) through the
// admin API, as columns for people or, with --json, as the raw JSON lines for scripts.
import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidArgumentError, type Command } from 'commander';
import type { AuditEntry } from '../store/device-store';
import type { AdminClient, TargetOptions } from '../admin/client';
import { UsageError } from '../core/exit-codes';
import { adminClient, keyName, print, table, withAdminOptions } from './device';

const positiveInt = (name: string, max: number) => (raw: string): number => {
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > max) throw new InvalidArgumentError(`${name} must be an integer from 1 to ${max} (got "${raw}")`);
  return Number(raw);
};

const HEADER = ['TIME', 'EVENT', 'PROTO', 'USER', 'DEVICE', 'REF'];
const text = (value: unknown): string => (typeof value === 'string' || typeof value === 'number' ? String(value) : '');

/** One audit event as a row: a decision shows action and reason code, an admin event its operation. */
export function auditRow(entry: AuditEntry): string[] {
  const e = entry.event as Record<string, unknown>;
  const at = text(e.at).replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  const event =
    e.msg === 'decision'
      ? `${text(e.action).toUpperCase()} ${text(e.reasonCode)}`.trim()
      : e.msg === 'admin'
        ? `admin ${text(e.operation)}`
        : text(e.msg) || text(e.operation) || '-';
  return [at || '-', event, text(e.protocol), text(e.user), text(e.deviceId) || text(e.subject), text(e.refId)];
}

function show(entries: readonly AuditEntry[], json: boolean | undefined, header: boolean): void {
  if (json) entries.forEach((e) => print(JSON.stringify({ id: e.id, ...e.event })));
  else if (entries.length > 0) table(header ? [HEADER, ...entries.map(auditRow)] : entries.map(auditRow)).forEach((line) => print(line));
}

/** `2h`, `30m`, `7d`, `90s` before now, or an ISO-8601 time. */
export function parseSince(raw: string, now = Date.now()): number {
  const relative = /^(\d+)([smhd])$/.exec(raw);
  if (relative) return now - Number(relative[1]) * { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[relative[2] as 's' | 'm' | 'h' | 'd'];
  const at = Date.parse(raw);
  if (Number.isNaN(at)) throw new InvalidArgumentError(`--since must be like 2h, 30m, 7d or an ISO-8601 time (got "${raw}")`);
  return at;
}

export interface AuditQuery {
  readonly ref?: string;
  readonly user?: string;
  readonly device?: string;
  /** Unix ms: only events at or after it. */
  readonly since?: number;
}

/** Does an audit event match every criterion given? The reference id is also found inside a sentence. */
export function auditMatches(entry: AuditEntry, query: AuditQuery): boolean {
  const e = entry.event as Record<string, unknown>;
  if (query.ref && e.refId !== query.ref && !JSON.stringify(e).includes(query.ref)) return false;
  if (query.user && text(e.user).toLowerCase() !== query.user.toLowerCase()) return false;
  if (query.device && e.deviceId !== query.device && e.subject !== query.device) return false;
  if (query.since !== undefined && !(Date.parse(text(e.at)) >= query.since)) return false;
  return true;
}

/** Reads the whole stream from the oldest entry (bounded: the stream is capped by store.auditMaxLen). */
async function searchAudit(client: AdminClient, query: AuditQuery, limit: number): Promise<AuditEntry[]> {
  const found: AuditEntry[] = [];
  let after = '0';
  // 1,000 pages of 1,000 entries: more than the default cap of the stream (100,000).
  for (let page = 0; page < 1000; page++) {
    const { entries, next } = await client.readAudit({ after, count: 1000 });
    found.push(...entries.filter((e) => auditMatches(e, query)));
    if (entries.length === 0 || next === after) break;
    after = next;
  }
  return found.slice(-limit);
}

export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('the decision and admin-action log (through the admin API)');

  withAdminOptions(audit.command('tail'))
    .description('the newest audit events, one per line in columns (--json: the raw JSON lines)')
    .option('-n, --count <n>', 'how many of the newest events', positiveInt('--count', 1000), 20)
    .option('-f, --follow', 'keep printing new events until Ctrl-C')
    .option('--interval <ms>', 'poll interval with --follow', positiveInt('--interval', 60_000), 1000)
    .option('--json', 'print each event as its JSON line')
    .action(async (opts: TargetOptions & { count: number; follow?: boolean; interval: number; json?: boolean }) => {
      const client = await adminClient(opts);
      let { entries, next } = await client.readAudit({ last: opts.count });
      show(entries, opts.json, true);
      if (!opts.follow) return;
      const stop = new AbortController();
      const onInterrupt = () => stop.abort();
      process.once('SIGINT', onInterrupt);
      try {
        while (!stop.signal.aborted) {
          await sleep(opts.interval, undefined, { signal: stop.signal }).catch(() => undefined);
          if (stop.signal.aborted) break;
          ({ entries, next } = await client.readAudit({ after: next, count: 1000 }));
          show(entries, opts.json, false);
        }
      } finally {
        process.off('SIGINT', onInterrupt);
      }
    });

  withAdminOptions(audit.command('search'))
    .description('audit events of a reference id a user quotes (MW-…), a user or a device, oldest first')
    .option('--ref <MW-id>', 'the reference id from the sentence the user saw')
    .option('--user <user>', "this user's events", keyName('user'))
    .option('--device <deviceId>', "this device's events", keyName('deviceId'))
    .option('--since <when>', 'only events since: 2h, 30m, 7d or an ISO-8601 time', (raw: string) => parseSince(raw))
    .option('--limit <n>', 'at most this many (the newest)', positiveInt('--limit', 100_000), 100)
    .option('--json', 'print each event as its JSON line')
    .action(async (opts: TargetOptions & AuditQuery & { limit: number; json?: boolean }) => {
      if (!opts.ref && !opts.user && !opts.device) throw new UsageError('give --ref MW-…, --user USER or --device DEVICE (they combine)');
      if (opts.ref && !/^MW-[0-9A-Z]{4,16}$/i.test(opts.ref)) throw new UsageError(`--ref must look like MW-XXXXXXXX (got "${opts.ref}")`);
      const found = await searchAudit(await adminClient(opts), { ref: opts.ref?.toUpperCase(), user: opts.user, device: opts.device, since: opts.since }, opts.limit);
      if (found.length === 0) process.stderr.write('no audit event matches\n');
      show(found, opts.json, true);
    });
}
