// Records a connector vouches for are judged by the connector's last complete sync, not their own
// age; while the connector is stale they follow its rule (last known state, or stale).
import { classifyDevice, type SourceFreshness } from '../../src/policy/engine';
import type { DeviceRecord } from '../../src/store/device-store';

const NOW = new Date('2026-12-03T12:00:00Z');
const weekOld = '2026-11-26T12:00:00Z';
const record: DeviceRecord = { deviceId: 'd1', user: 'alice@example.com', platform: 'ios', osVersion: '17.5', managed: true, apps: [], reportedAt: weekOld, receivedAt: weekOld, source: 'connector:intune' };
const found = { state: 'found' as const, record };
const freshness = (f: Partial<SourceFreshness>) => (source: string) =>
  source === 'connector:intune' ? { syncedAt: '2026-12-03T11:50:00Z', stale: false, onStale: 'last-known' as const, ...f } : undefined;

test('without freshness a week-old record is stale (24 h bound)', () => {
  expect(classifyDevice(found, NOW, 24).status).toBe('stale');
});

test('a current connector vouches for its unchanged records, as of its last sync', () => {
  const result = classifyDevice(found, NOW, 24, freshness({}));
  expect(result.status).toBe('current');
  expect(result.device?.reportedAt).toBe('2026-12-03T11:50:00Z');
});

test('a stale connector: last-known keeps the state, stale turns every record stale', () => {
  expect(classifyDevice(found, NOW, 24, freshness({ stale: true, syncedAt: '2026-12-01T00:00:00Z' })).status).toBe('current');
  expect(classifyDevice(found, NOW, 24, freshness({ stale: true, onStale: 'stale', syncedAt: '2026-12-01T00:00:00Z' })).status).toBe('stale');
});

test('records of other sources, or newer than the sync, keep their own time', () => {
  const other = { state: 'found' as const, record: { ...record, source: 'mdm-1' } };
  expect(classifyDevice(other, NOW, 24, freshness({})).status).toBe('stale');
  const newer = { state: 'found' as const, record: { ...record, reportedAt: '2026-12-03T11:59:00Z', receivedAt: '2026-12-03T11:59:00Z' } };
  expect(classifyDevice(newer, NOW, 24, freshness({ stale: true, onStale: 'stale' })).device?.reportedAt).toBe('2026-12-03T11:59:00Z');
});
