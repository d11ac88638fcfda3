// The diff's content hash is a stored format: the owned-devices hash in Redis is compared with it
// on every sync, so a change of its input (key order, fields) would make every device "changed"
// once after an upgrade and rewrite the whole fleet. These values were computed by the version
// that first stored them (contentHash over the mapped device without lastSeenAt).
import { contentHash, toRecord } from '../../src/connectors/diff';
import type { SourceDevice } from '../../src/connectors/contract';

const corporate: SourceDevice = { deviceId: 'iphone-1', user: 'alice@example.com', platform: 'ios', osVersion: '17.5.1', managed: true, ownership: 'company', apps: ['com.zhiliaoapp.musically'], appNames: ['TikTok'], lastSeenAt: '2026-11-30T08:12:44.000Z' };
const personal: SourceDevice = { deviceId: 'byod-1', user: 'carol@example.com', platform: 'ios', osVersion: '17.5.1', managed: true, ownership: 'personal', lastSeenAt: '2026-11-30T08:12:44.000Z' };

test('the content hash of a device is the one stored by earlier versions, and ignores lastSeenAt', () => {
  expect(contentHash(corporate)).toBe('5sBk2FUrQXvCk3rW0juLIx');
  expect(contentHash(personal)).toBe('720BWWkVCHnjjPIvDq5ftz');
  expect(contentHash({ ...corporate, lastSeenAt: '2026-12-01T00:00:00.000Z' })).toBe('5sBk2FUrQXvCk3rW0juLIx');
  expect(contentHash({ ...corporate, appNames: ['TikTok', 'Outlook'] })).not.toBe('5sBk2FUrQXvCk3rW0juLIx');
});

test('a record carries the lists only when the source could see them, and never lastSeenAt', () => {
  const at = '2026-12-08T00:00:00.000Z';
  const { lastSeenAt: _seen, ...mapped } = corporate;
  expect(toRecord(corporate, 'connector:intune', at)).toStrictEqual({ ...mapped, reportedAt: at, receivedAt: at, source: 'connector:intune' });
  const record = toRecord(personal, 'connector:intune', at);
  expect('apps' in record || 'appNames' in record || 'lastSeenAt' in record).toBe(false);
});
