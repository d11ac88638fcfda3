// `mailwarden connector list|status|sync NAME [--dry-run]|apply NAME --force`: the inventory
// connectors of a running instance, through the admin API (docs/connectors.md).
import type { Command } from 'commander';
import { createAdminClient, resolveAdminTarget, type TargetOptions } from '../admin/client';
import type { ConnectorSummary } from '../admin/routes/connectors';
import { formatSyncReport, type SyncReport } from '../connectors/sync';
import { EXIT, UsageError } from '../core/exit-codes';
import { print, table, withAdminOptions } from './device';

/** A sync waits for the whole inventory: allow as long as the longest syncTimeoutSeconds (30 min). */
const SYNC_CLIENT_TIMEOUT_MS = 1800_000 + 30_000;

/** Exit status of a sync: 0 applied or previewed, 77 held by a guard, 69 the source could not be read. */
export function syncExitStatus(report: SyncReport): number {
  if (report.result === 'held') return EXIT.refused;
  if (report.result === 'failed') return EXIT.unreachable;
  return EXIT.ok;
}

function statusState(c: ConnectorSummary): string {
  if (!c.enabled) return 'disabled';
  if (!c.status) return 'never synced';
  if (c.stale) return `STALE (${c.onStaleSource})`;
  if (c.held) return 'HELD';
  return c.status.result === 'failed' ? 'last sync failed' : 'ok';
}

async function client(opts: TargetOptions, timeoutMs?: number) {
  return createAdminClient(await resolveAdminTarget(opts), timeoutMs ? { timeoutMs } : {});
}

/** The connectors to print as a table: none when --json printed them or there are none (said so). */
async function listed(opts: TargetOptions & { json?: boolean }): Promise<ConnectorSummary[]> {
  const { connectors } = await (await client(opts)).connectors();
  if (opts.json) print(JSON.stringify(connectors, null, 2));
  else if (connectors.length === 0) print('no connectors configured (connectors: in mailwarden.yaml)');
  return opts.json ? [] : connectors;
}

export function registerConnectorCommands(program: Command): void {
  const connector = program.command('connector').description('MDM inventory connectors of a running instance (through the admin API)');

  withAdminOptions(connector.command('list'))
    .description('the configured connectors and their settings')
    .option('--json', 'print the API answer as JSON')
    .action(async (opts: TargetOptions & { json?: boolean }) => {
      const connectors = await listed(opts);
      if (connectors.length === 0) return;
      const rows = connectors.map((c) => [c.name, c.type, c.enabled ? 'yes' : 'no', `${c.intervalSeconds} s`, `${c.staleAfterSeconds} s`, c.onStaleSource]);
      for (const line of table([['NAME', 'TYPE', 'ENABLED', 'INTERVAL', 'STALE AFTER', 'ON STALE SOURCE'], ...rows])) print(line);
    });

  withAdminOptions(connector.command('status'))
    .description('the last sync of each connector (shared by every instance): when, result, devices, staleness')
    .option('--json', 'print the API answer as JSON')
    .action(async (opts: TargetOptions & { json?: boolean }) => {
      const connectors = await listed(opts);
      if (connectors.length === 0) return;
      const rows = connectors.map((c) => [
        c.name,
        statusState(c),
        c.status?.lastSuccessAt ?? '-',
        c.status?.result ?? '-',
        String(c.status?.devicesSeen ?? '-'),
        String(c.status?.skipped ?? '-'),
        c.status ? `${c.status.durationSeconds.toFixed(1)} s` : '-',
        c.status?.error ?? '',
      ]);
      for (const line of table([['NAME', 'STATE', 'LAST COMPLETE SYNC', 'LAST RESULT', 'DEVICES', 'SKIPPED', 'DURATION', 'ERROR'], ...rows])) print(line);
    });

  withAdminOptions(connector.command('sync'))
    .description('sync a connector now and print the diff per platform; --dry-run computes it and writes nothing')
    .argument('<name>')
    .option('--dry-run', 'compute the diff and judge it with the guards; write nothing')
    .option('--json', 'print the report as JSON')
    .action(async (name: string, opts: TargetOptions & { dryRun?: boolean; json?: boolean }) => {
      const { report } = await (await client(opts, SYNC_CLIENT_TIMEOUT_MS)).syncConnector(name, { dryRun: opts.dryRun ?? false });
      print(opts.json ? JSON.stringify(report, null, 2) : formatSyncReport(report));
      process.exitCode = syncExitStatus(report);
    });

  withAdminOptions(connector.command('apply'))
    .description('apply the sync a guard held, exactly as it was computed (needs --force)')
    .argument('<name>')
    .option('--force', 'yes, apply the diff the guard held')
    .option('--json', 'print the report as JSON')
    .action(async (name: string, opts: TargetOptions & { force?: boolean; json?: boolean }) => {
      if (!opts.force) throw new UsageError(`a held sync tripped a guard on purpose: read it with \`mailwarden connector sync ${name} --dry-run\`, then give --force to apply it`);
      const { report } = await (await client(opts, SYNC_CLIENT_TIMEOUT_MS)).applyHeldSync(name);
      print(opts.json ? JSON.stringify(report, null, 2) : formatSyncReport(report));
    });
}
