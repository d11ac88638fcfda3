// The connector runner's lease on one instance: a sync asked for while this instance's own sync of
// the same connector runs answers busy (it must not re-enter its own lease, hand back the running
// sync's report for a dry run, or release the lease under the running sync); applying a held diff
// takes the lease too. And a stale source (issue 11 item 4) as one connector fault.
import { ConnectorRunner } from '../../src/app/connectors';
import type { ConnectorConfig } from '../../src/core/config-types';
import { silentLogger } from '../../src/core/log';
import { MemoryConnectorState } from '../../src/store/memory-connector-state';
import { deviceMap } from './connector-fakes';
import { graphDevice, startFakeIntune, type FakeIntune } from '../fakes/intune';

const SECRET_ENV = 'MW_TEST_RUNNER_INTUNE_SECRET';


let fake: FakeIntune;
let state: MemoryConnectorState;
let runner: ConnectorRunner;

function intune(): ConnectorConfig {
  return {
    type: 'intune',
    name: 'intune',
    enabled: true,
    intervalSeconds: 900,
    requestTimeoutMs: 2000,
    syncTimeoutSeconds: 30,
    staleAfterSeconds: 3600,
    onStaleSource: 'last-known',
    removeAfterAbsentSyncs: 3,
    maxRemovedPercent: 10,
    maxInventoryLostPercent: 10,
    tenantId: fake.tenantId,
    clientId: fake.clientId,
    clientSecret: { env: SECRET_ENV },
    deviceId: 'mdm',
    userField: 'upn',
    graphUrl: fake.graphUrl,
    tokenUrl: fake.tokenUrl,
  };
}

beforeEach(async () => {
  fake = await startFakeIntune({
    pageSize: 2,
    devices: Array.from({ length: 6 }, (_, i) => graphDevice(`d${i}`, { userPrincipalName: `user${i}@example.com` })),
    apps: [{ id: 'outlook', displayName: 'Outlook', deviceIds: ['d0', 'd1', 'd2', 'd3', 'd4', 'd5'] }],
  });
  process.env[SECRET_ENV] = fake.clientSecret;
  state = new MemoryConnectorState(deviceMap());
  runner = new ConnectorRunner({
    connectors: () => [intune()],
    state,
    recordTtlSeconds: () => 86400,
    blastRadius: () => ({ maxNewlyDeniedPercent: 10, maxNewlyDeniedCount: 1 }),
    isDenied: async (record) => (record?.appNames ?? []).includes('TikTok'),
    log: silentLogger(),
    alert: () => undefined,
    instance: 'test',
  });
});
afterEach(async () => {
  await runner.stop();
  await fake.stop();
  delete process.env[SECRET_ENV];
});

/** Resolves once the fake has answered at least `n` Graph requests. */
async function graphRequests(n: number): Promise<void> {
  while (fake.server.count(/^\/v1\.0\//) < n) await new Promise((r) => setTimeout(r, 5));
}

test('a dry run asked for while this instance syncs the connector answers busy and leaves the lease alone', async () => {
  fake.server.latencyMs = 40;
  const scheduled = runner.syncWithLease('intune');
  await graphRequests(1);
  const dryRun = await runner.syncWithLease('intune', { dryRun: true });
  // Busy, not the running sync's report presented as a dry run.
  expect(dryRun).toBeNull();
  // The running sync still holds the lease: another instance cannot take it.
  expect(await state.acquireLease('intune', 'other-instance', 60_000)).toBe(false);
  const report = await scheduled;
  expect(report?.result).toBe('applied');
  // Released once the sync is over.
  expect(await state.acquireLease('intune', 'other-instance', 60_000)).toBe(true);
});

test('applying a held diff takes the lease: busy while a sync runs here or another instance holds it', async () => {
  await runner.syncWithLease('intune');
  // TikTok on every device: six newly denied, over the blast radius of one.
  fake.apps.push({ id: 'tiktok', displayName: 'TikTok', deviceIds: ['d0', 'd1', 'd2', 'd3', 'd4', 'd5'] });
  const held = await runner.syncWithLease('intune');
  expect(held?.result).toBe('held');

  fake.server.latencyMs = 40;
  const running = runner.syncWithLease('intune', { dryRun: true });
  await graphRequests(fake.server.count(/^\/v1\.0\//) + 1);
  expect(await runner.applyHeld('intune')).toBeNull();
  await running;
  fake.server.latencyMs = 0;

  expect(await state.acquireLease('intune', 'other-instance', 60_000)).toBe(true);
  expect(await runner.applyHeld('intune')).toBeNull();
  await state.releaseLease('intune', 'other-instance');

  const applied = await runner.applyHeld('intune');
  expect(applied?.result).toBe('applied');
  expect(await state.getHeld('intune')).toBeNull();
  expect(await state.acquireLease('intune', 'other-instance', 60_000)).toBe(true);
});

test('a source with no complete sync within staleAfterSeconds is one connector fault: one alert, the metric, a /readyz line, stale freshness; a success clears it', async () => {
  let nowMs = Date.parse('2026-12-07T12:00:00Z');
  const alerts: { kind: string; details: Readonly<Record<string, unknown>> }[] = [];
  const staleMetric: boolean[] = [];
  const watcher = new ConnectorRunner({
    connectors: () => [intune()],
    state,
    recordTtlSeconds: () => 86400,
    blastRadius: () => ({ maxNewlyDeniedPercent: 10, maxNewlyDeniedCount: 1 }),
    isDenied: async () => false,
    log: silentLogger(),
    alert: (kind, details) => alerts.push({ kind, details }),
    metrics: { observer: () => ({ onApiError: () => undefined, onThrottleWait: () => undefined }), onSync: () => undefined, onStatus: (_name, _status, stale) => staleMetric.push(stale) },
    instance: 'watcher',
    now: () => nowMs,
  });
  const status = (lastSuccessAt: string) => ({ connector: 'intune', lastSuccessAt, lastAttemptAt: lastSuccessAt, result: 'applied' as 'applied' | 'failed', durationSeconds: 1, devicesSeen: 6, skipped: 0 });
  // Synced 59 minutes ago: within the 3600 s bound.
  await state.putStatus(status(new Date(nowMs - 59 * 60_000).toISOString()));
  await watcher.views();
  expect(watcher.readiness()).toEqual({ intune: 'ok' });
  expect(alerts).toEqual([]);

  // Two hours without a complete sync (a failed attempt just now does not count): stale, said once.
  const lastSuccess = new Date(nowMs - 59 * 60_000).toISOString();
  nowMs += 61 * 60_000;
  await state.putStatus({ ...status(lastSuccess), lastAttemptAt: new Date(nowMs).toISOString(), result: 'failed', error: 'HTTP 503' });
  await watcher.views();
  await watcher.views();
  expect(alerts.map((a) => a.kind)).toEqual(['connector-stale']);
  expect(alerts[0]!.details).toMatchObject({ connector: 'intune', rule: 'last-known', lastError: 'HTTP 503' });
  expect(watcher.readiness().intune).toMatch(/^stale: no complete sync since .* \(last-known\)$/);
  expect(watcher.freshness('connector:intune')).toMatchObject({ stale: true, onStale: 'last-known' });
  expect(staleMetric.slice(-2)).toEqual([true, true]);

  await state.putStatus(status(new Date(nowMs).toISOString()));
  await watcher.views();
  expect(watcher.readiness()).toEqual({ intune: 'ok' });
  expect(watcher.freshness('connector:intune')).toMatchObject({ stale: false });
  expect(staleMetric.at(-1)).toBe(false);
  expect(alerts).toHaveLength(1);
  await watcher.stop();
});
