// Issue 11 item 5, the per-connector metrics a sync feeds: API errors by status and throttling waits
// come from the HTTP client as it meets them (here a fake Fleet answering 429 with Retry-After, then
// 503), items skipped and syncs by result from the report.
import { Registry } from 'prom-client';
import { createConnectorMetrics } from '../../src/admin/connector-metrics';
import { HttpClient } from '../../src/connectors/http';
import { fleetConnector } from '../../src/connectors/fleet';
import { staticToken } from '../../src/connectors/tokens';
import { SyncEngine } from '../../src/connectors/sync';
import { MemoryConnectorState } from '../../src/store/memory-connector-state';
import { silentLogger } from '../../src/core/log';
import { deviceMap } from './connector-fakes';
import { startFakeFleet, fleetHost, type FakeFleet } from '../fakes/fleet';
import { on } from '../fakes/fake-http';

let fake: FakeFleet;
beforeEach(async () => {
  fake = await startFakeFleet({ hosts: [fleetHost(1), fleetHost(2, { user: 'bob@example.com' }), { ...fleetHost(3), device_mapping: [] }] });
});
afterEach(() => fake.stop());

test('a 429 with Retry-After and a 503 are counted by status, the wait in seconds; a skipped item and the sync by result', async () => {
  const registry = new Registry();
  const metrics = createConnectorMetrics(registry);
  const http = new HttpClient({ requestTimeoutMs: 2000, observer: metrics.observer('fleet'), sleep: async () => undefined, random: () => 0.5 });
  fake.server.fail(on(/hosts$/), { status: 429, headers: { 'retry-after': '2' }, body: { message: 'slow down' } });
  fake.server.fail(on(/hosts$/), { status: 503, body: { message: 'unavailable' } });
  const engine = new SyncEngine({
    connector: fleetConnector({ name: 'fleet', http, token: staticToken(fake.token), baseUrl: fake.url, deviceId: 'udid' }),
    state: new MemoryConnectorState(deviceMap()),
    settings: () => ({ removeAfterAbsentSyncs: 3, recordTtlSeconds: 86400, syncTimeoutMs: 10_000, maxRemovedPercent: 10, maxInventoryLostPercent: 10 }),
    blastRadius: () => ({ maxNewlyDeniedPercent: 100, maxNewlyDeniedCount: 100 }),
    isDenied: async () => false,
    log: silentLogger(),
  });
  const report = await engine.sync();
  metrics.onSync('fleet', report);
  expect(report.result).toBe('applied');
  const text = await registry.metrics();
  expect(text).toMatch(/^mailwarden_connector_api_errors_total\{connector="fleet",status="429"\} 1$/m);
  expect(text).toMatch(/^mailwarden_connector_api_errors_total\{connector="fleet",status="503"\} 1$/m);
  // Only the 429 is throttling; its wait is the Retry-After (the 503's backoff is not a throttle wait).
  expect(text).toMatch(/^mailwarden_connector_throttle_waits_total\{connector="fleet"\} 1$/m);
  expect(text).toMatch(/^mailwarden_connector_throttle_wait_seconds_total\{connector="fleet"\} 2$/m);
  expect(text).toMatch(/^mailwarden_connector_skipped_items_total\{connector="fleet"\} 1$/m);
  expect(text).toMatch(/^mailwarden_connector_syncs_total\{connector="fleet",result="applied"\} 1$/m);
});
