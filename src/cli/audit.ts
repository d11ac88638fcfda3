// `mailwarden audit tail`: the newest audit events as JSON lines, optionally following new ones
// (polling the admin API until Ctrl-C).
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import type { AuditEntry } from '../store/device-store';
import type { TargetOptions } from '../admin/client';
import { adminClient, print, withAdminOptions } from './device';

const positiveInt = (name: string, max: number) => (raw: string): number => {
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > max) throw new Error(`${name} must be an integer from 1 to ${max} (got "${raw}")`);
  return Number(raw);
};

export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('the decision and admin-action log (through the admin API)');

  withAdminOptions(audit.command('tail'))
    .description('print the newest audit events as JSON lines')
    .option('-n, --count <n>', 'how many of the newest events', positiveInt('--count', 1000), 20)
    .option('-f, --follow', 'keep printing new events until Ctrl-C')
    .option('--interval <ms>', 'poll interval with --follow', positiveInt('--interval', 60_000), 1000)
    .action(async (opts: TargetOptions & { count: number; follow?: boolean; interval: number }) => {
      const client = await adminClient(opts);
      const show = (entries: readonly AuditEntry[]) => entries.forEach((e) => print(JSON.stringify({ id: e.id, ...e.event })));
      let { entries, next } = await client.readAudit({ last: opts.count });
      show(entries);
      if (!opts.follow) return;
      const stop = new AbortController();
      const onInterrupt = () => stop.abort();
      process.once('SIGINT', onInterrupt);
      try {
        while (!stop.signal.aborted) {
          await sleep(opts.interval, undefined, { signal: stop.signal }).catch(() => undefined);
          if (stop.signal.aborted) break;
          ({ entries, next } = await client.readAudit({ after: next, count: 1000 }));
          show(entries);
        }
      } finally {
        process.off('SIGINT', onInterrupt);
      }
    });
}
