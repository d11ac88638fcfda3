// The safe sync against a fake Intune: computed in full then applied as one diff; a failed sync
// writes nothing; absence removes only after N complete syncs; the guards hold a sync that would
// deny or remove too much or wipe the app inventories, and `apply --force` applies the held diff.
import { HttpClient } from '../../src/connectors/http';
import { intuneConnector } from '../../src/connectors/intune';
import { clientCredentialsToken } from '../../src/connectors/tokens';
import { MemoryConnectorState } from '../../src/store/memory-connector-state';
import { SyncEngine, formatSyncReport, type SyncSettings } from '../../src/connectors/sync';
import type { DeviceRecord } from '../../src/store/device-store';
import { deviceMap } from './connector-fakes';
import { silentLogger } from '../../src/core/log';
import { graphDevice, startFakeIntune, type FakeIntune } from '../fakes/intune';

type Stored = DeviceRecord & { appNames?: string[] };


const isDenied = async (record: DeviceRecord | null) =>
  record === null || ((record as Stored).appNames ?? []).some((n) => n.toLowerCase() === 'tiktok');

let fake: FakeIntune;
let devices: ReturnType<typeof deviceMap<Stored>>;
let state: MemoryConnectorState;
let alerts: unknown[];
let settings: SyncSettings;

function engine() {
  const http = new HttpClient({ requestTimeoutMs: 2000, retry: { maxAttempts: 2, baseMs: 1, maxMs: 1, maxRetryAfterMs: 1000 } });
  const token = clientCredentialsToken(http, { tokenUrl: fake.tokenUrl, clientId: fake.clientId, clientSecret: fake.clientSecret, scope: 'https://graph.microsoft.com/.default' });
  return new SyncEngine({
    connector: intuneConnector({ name: 'intune', http, token, graphUrl: fake.graphUrl, deviceId: 'mdm', userField: 'upn' }),
    state,
    settings: () => settings,
    blastRadius: () => ({ maxNewlyDeniedPercent: 20, maxNewlyDeniedCount: 500 }),
    isDenied,
    log: silentLogger(),
    alert: (kind, details) => alerts.push({ kind, details }),
  });
}

const FLEET = 20;
beforeEach(async () => {
  fake = await startFakeIntune({
    pageSize: 3,
    devices: Array.from({ length: FLEET }, (_, i) => graphDevice(`d${i}`, { userPrincipalName: `user${i}@example.com` })),
    apps: [
      { id: 'tiktok', displayName: 'TikTok', deviceIds: ['d0'] },
      { id: 'outlook', displayName: 'Outlook', deviceIds: Array.from({ length: FLEET }, (_, i) => `d${i}`) },
    ],
  });
  devices = deviceMap<Stored>();
  state = new MemoryConnectorState(devices);
  alerts = [];
  settings = { removeAfterAbsentSyncs: 3, recordTtlSeconds: 86400, syncTimeoutMs: 10000, maxRemovedPercent: 10, maxInventoryLostPercent: 10 };
});
afterEach(() => fake.stop());

test('first sync creates every record; an unchanged second sync writes nothing', async () => {
  const first = await engine().sync();
  expect(first.result).toBe('applied');
  expect(first.total).toMatchObject({ seen: FLEET, created: FLEET, changed: 0, newlyDenied: 0, removed: 0, skipped: 0 });
  expect(devices.records.get('d0')).toMatchObject({ source: 'connector:intune', appNames: ['Outlook', 'TikTok'], apps: [], ownership: 'company' });
  const writes = { ...state.writes };
  const second = await engine().sync();
  expect(second.total).toMatchObject({ seen: FLEET, created: 0, changed: 0 });
  expect(state.writes).toEqual(writes);
  expect((await state.getStatus('intune'))?.result).toBe('applied');
});

test('a 5xx on page 3 fails the sync and writes nothing but the status', async () => {
  await engine().sync();
  const before = new Map(devices.records);
  fake.apps[0]!.deviceIds = ['d1', 'd2'];
  fake.server.fail((r) => r.path.endsWith('/deviceManagement/managedDevices') && r.query.has('$skiptoken') && fake.server.count(/\/deviceManagement\/managedDevices$/) >= 3, { status: 503 }, 10);
  const report = await engine().sync();
  expect(report.result).toBe('failed');
  expect(report.error).toMatch(/HTTP 503/);
  expect(devices.records).toEqual(before);
  const status = await state.getStatus('intune');
  expect(status).toMatchObject({ result: 'failed' });
  expect(status?.lastSuccessAt).toBeDefined();
});

test('one device gains TikTok: one change, one newly denied, one write', async () => {
  await engine().sync();
  const puts = state.writes.put;
  fake.apps[0]!.deviceIds.push('d5');
  const report = await engine().sync();
  expect(report.result).toBe('applied');
  expect(report.total).toMatchObject({ changed: 1, newlyDenied: 1 });
  expect(report.newlyDenied).toEqual([{ deviceId: 'd5', user: 'user5@example.com', platform: 'ios' }]);
  expect(state.writes.put - puts).toBe(1);
  expect(devices.records.get('d5')?.appNames).toEqual(['Outlook', 'TikTok']);
});

test('an API that suddenly returns no apps for anyone is held: nothing written, alert, apply --force applies it', async () => {
  await engine().sync();
  const before = new Map(devices.records);
  fake.apps = [];
  const report = await engine().sync();
  expect(report.result).toBe('held');
  expect(report.heldBecause.join()).toMatch(/20 of 20 devices \(100.0%\) would lose their whole app inventory/);
  expect(devices.records).toEqual(before);
  expect(alerts).toEqual([{ kind: 'connector-sync-held', details: expect.objectContaining({ connector: 'intune', command: 'mailwarden connector apply intune --force' }) }]);
  expect(formatSyncReport(report)).toMatch(/sync HELD, nothing written/);
  // The source was read completely: it is not stale, only its changes wait.
  expect((await state.getStatus('intune'))?.result).toBe('held');

  const forced = await engine().applyHeld();
  expect(forced.result).toBe('applied');
  expect(devices.records.get('d3')?.appNames).toEqual([]);
  expect(await state.getHeld('intune')).toBeNull();
  await expect(engine().applyHeld()).rejects.toThrow(/no held sync/);
});

test('a sync that would newly deny more than the blast radius is held', async () => {
  await engine().sync();
  fake.apps[0]!.deviceIds = ['d0', 'd1', 'd2', 'd3', 'd4', 'd5'];
  const report = await engine().sync();
  expect(report.result).toBe('held');
  expect(report.heldBecause.join()).toMatch(/newly deny 5 of 20 devices \(25.0%\); the policy's blast-radius limit is 20% or 500 devices/);
  expect(devices.records.get('d5')?.appNames).toEqual(['Outlook']);
});

test('half the devices missing for one sync: nothing removed; a device absent N complete syncs is removed', async () => {
  await engine().sync();
  const all = fake.devices;
  fake.devices = all.slice(0, FLEET / 2);
  const report = await engine().sync();
  expect(report.result).toBe('applied');
  expect(report.total.removed).toBe(0);
  expect(devices.records.size).toBe(FLEET);

  fake.devices = all;
  await engine().sync(); // back: absence counts reset
  fake.devices = all.filter((d) => d.id !== 'd19');
  await engine().sync(); // d19 absent 1
  await engine().sync(); // absent 2
  expect(devices.records.has('d19')).toBe(true);
  const third = await engine().sync(); // absent 3 = removeAfterAbsentSyncs
  expect(third.total.removed).toBe(1);
  expect(devices.records.has('d19')).toBe(false);
});

test('removals over the share are held even after N syncs', async () => {
  settings = { ...settings, removeAfterAbsentSyncs: 1 };
  await engine().sync();
  fake.devices = fake.devices.slice(0, 15);
  const report = await engine().sync();
  expect(report.result).toBe('held');
  expect(report.heldBecause.join()).toMatch(/remove 5 of 20 devices \(25.0%\); the limit is 10%/);
  expect(devices.records.size).toBe(FLEET);
});

test('a malformed item is counted and skipped; a listed device that turns malformed loses its record', async () => {
  await engine().sync();
  fake.devices[4] = { ...fake.devices[4]!, osVersion: undefined };
  const report = await engine().sync();
  expect(report.result).toBe('applied');
  expect(report.total.skipped).toBe(1);
  expect(report.total.removed).toBe(1);
  expect(devices.records.has('d4')).toBe(false);
});

test('dry run computes the table and writes nothing', async () => {
  const report = await engine().sync({ dryRun: true });
  expect(report.result).toBe('dry-run');
  expect(report.total.created).toBe(FLEET);
  expect(devices.records.size).toBe(0);
  expect(await state.getStatus('intune')).toBeNull();
  const table = formatSyncReport(report);
  expect(table).toMatch(/dry run, nothing written/);
  expect(table).toMatch(/^ios\s+20\s+20\s+0\s+0\s+0\s+0$/m);
});

test('a sync that outlives its timeout fails and writes nothing', async () => {
  settings = { ...settings, syncTimeoutMs: 200 };
  fake.server.latencyMs = 100;
  const report = await engine().sync();
  expect(report.result).toBe('failed');
  expect(devices.records.size).toBe(0);
});

test('a personal phone with an empty app list stays unknown, never clean', async () => {
  fake.devices.push(graphDevice('byod', { managedDeviceOwnerType: 'personal' }));
  await engine().sync();
  const record = devices.records.get('byod')!;
  expect(record.apps).toBeUndefined();
  expect(record.appNames).toBeUndefined();
});
