// Inventory connectors (GET /v1/connectors, POST /v1/connectors/:name/sync, POST
// /v1/connectors/:name/apply): their status, a sync or dry run on demand, and applying a held diff.
import type { SyncReport } from '../../connectors/sync';
import { AdminError } from '../errors';
import { adminAudit, badRequest, readJson, type Route } from '../route';
import type { AdminServices } from '../services';

/** The last sync attempt as every instance shares it (the connector state port's status). */
export interface ConnectorStatusView {
  readonly connector: string;
  readonly lastSuccessAt?: string;
  readonly lastAttemptAt: string;
  readonly result: SyncReport['result'];
  readonly error?: string;
  readonly durationSeconds: number;
  readonly devicesSeen: number;
  readonly skipped: number;
  readonly instance?: string;
}

/** One configured connector as `GET /v1/connectors` lists it. */
export interface ConnectorSummary {
  readonly name: string;
  readonly type: string;
  readonly enabled: boolean;
  readonly intervalSeconds: number;
  readonly staleAfterSeconds: number;
  readonly onStaleSource: string;
  /** No complete sync within staleAfterSeconds. */
  readonly stale: boolean;
  /** A sync is held by its guard (apply it with `connector apply NAME --force`). */
  readonly held: boolean;
  /** The last sync attempt, shared by every instance; null = never synced. */
  readonly status: ConnectorStatusView | null;
}

/** What the runtime offers the admin API about its connectors (src/app/connectors.ts). */
export interface ConnectorOperations {
  list(): Promise<ConnectorSummary[]>;
  /** One sync now; null when a sync of this connector is already running (here or on another instance). */
  sync(name: string, options: { dryRun: boolean }): Promise<SyncReport | null>;
  /** Applies the held diff as computed; null when a sync of this connector is running. */
  applyHeld(name: string): Promise<SyncReport | null>;
}

const busy = (name: string) =>
  new AdminError('CONNECTOR_BUSY', `a sync of connector ${name} is running (on this or another instance); try again when it has finished`);

export function connectorRoutes(services: AdminServices): Route[] {
  const audit = adminAudit(services);
  const ops = services.connectors;

  /** The named connector's summary, or 404. */
  async function find(name: string): Promise<ConnectorSummary> {
    const all = (await ops?.list()) ?? [];
    const found = all.find((c) => c.name === name);
    if (!found) {
      const known = all.map((c) => c.name).join(', ') || 'none configured';
      throw new AdminError('CONNECTOR_NOT_FOUND', `no connector named "${name}" (connectors: ${known})`);
    }
    return found;
  }

  return [
    {
      method: 'GET',
      path: ['v1', 'connectors'],
      handle: async () => ({ status: 200, body: { connectors: (await ops?.list()) ?? [] } }),
    },
    {
      method: 'POST',
      path: ['v1', 'connectors', ':', 'sync'],
      handle: async (ctx) => {
        const [name] = ctx.params;
        const { dryRun = false } = await readJson(ctx.req);
        if (typeof dryRun !== 'boolean') throw badRequest('"dryRun" must be true or false');
        await find(name!);
        const report = await ops!.sync(name!, { dryRun });
        if (!report) throw busy(name!);
        if (!dryRun) await audit(ctx, 'connector-sync', { connector: name, result: report.result, ...report.total });
        return { status: 200, body: { report } };
      },
    },
    {
      method: 'POST',
      path: ['v1', 'connectors', ':', 'apply'],
      handle: async (ctx) => {
        const [name] = ctx.params;
        const { force } = await readJson(ctx.req);
        // The held diff tripped a guard on purpose: applying it is a decision, said out loud.
        if (force !== true) throw badRequest('applying a held sync needs "force": true (it tripped a guard; read `connector sync NAME --dry-run` first)');
        const summary = await find(name!);
        if (!summary.held) throw new AdminError('NO_HELD_SYNC', `connector ${name} has no held sync to apply`);
        const report = await ops!.applyHeld(name!);
        if (!report) throw busy(name!);
        await audit(ctx, 'connector-apply-held', { connector: name, result: report.result, ...report.total });
        return { status: 200, body: { report } };
      },
    },
  ];
}
