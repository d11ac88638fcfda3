// The console's audit feed under a long run (issue 8 item 12): the ring of newest entries stays
// within its configured size (console.auditScanEntries, 25 % slack) however many entries stream
// past, and the per-minute counts keep one day, not every minute ever seen.
import { silentLogger } from '../../src/core/log';
import { AuditFeed, type FeedSource } from '../../src/console/audit-feed';
import type { AuditEntry } from '../../src/store/device-store';

const MINUTE = 60_000;

/** A stream of decision events, one per `stepMs` of simulated time, read in pages as Redis XRANGE would. */
function stream(clock: { now: number }, stepMs = 1000): FeedSource & { written: number; write(count: number): void } {
  const entries: AuditEntry[] = [];
  return {
    written: 0,
    write(count) {
      for (let i = 0; i < count; i++) {
        clock.now += stepMs;
        this.written++;
        entries.push({ id: `${clock.now}-0`, event: { msg: 'decision', action: 'allow', at: new Date(clock.now).toISOString(), checks: [{ checkId: 'banned-apps', outcome: 'pass' }] } });
      }
    },
    async readAudit(afterId, count) {
      // Ids grow by stepMs per entry: the first one after `afterId` is found by arithmetic.
      const afterMs = Number(afterId.split('-')[0]);
      const firstMs = entries.length > 0 ? Number(entries[0]!.id.split('-')[0]) : 0;
      const from = Math.max(0, Math.floor((afterMs - firstMs) / stepMs) + 1);
      return entries.slice(from, from + count);
    },
  };
}

test('the ring holds at most 1.25 × auditScanEntries and always the newest, over 50 × that many entries', async () => {
  const clock = { now: Date.parse('2026-01-01T00:00:00Z') };
  const source = stream(clock);
  const feed = new AuditFeed(source, silentLogger(), () => 1000, () => clock.now);
  let largest = 0;
  for (let round = 0; round < 50; round++) {
    source.write(1000);
    await feed.refresh();
    largest = Math.max(largest, feed.newest().length);
    expect(feed.newest()[0]!.id).toBe(`${clock.now}-0`);
  }
  expect(source.written).toBe(50_000);
  expect(largest).toBeLessThanOrEqual(1250);
  expect(largest).toBeGreaterThanOrEqual(1000);
});

test('per-minute counts keep the last day only, over 30 simulated hours', async () => {
  const clock = { now: Date.parse('2026-01-01T00:00:00Z') };
  // One entry every 20 s: each minute holds entries, with few enough of them to stay fast.
  const source = stream(clock, 20_000);
  const feed = new AuditFeed(source, silentLogger(), () => 1000, () => clock.now);
  for (let hour = 0; hour < 30; hour++) {
    source.write(180);
    await feed.refresh();
  }
  const minutes = (feed as unknown as { minutes: Map<number, unknown> }).minutes;
  expect(minutes.size).toBeLessThanOrEqual(24 * 60 + 2);
  expect(Math.min(...minutes.keys())).toBeGreaterThanOrEqual(clock.now - 24 * 60 * MINUTE - 2 * MINUTE);
});

test('an event dated in the future is counted in the current minute, so no minute outlives the day', async () => {
  const clock = { now: Date.parse('2026-01-01T00:00:00Z') };
  const entries: AuditEntry[] = [{ id: `${clock.now}-0`, event: { msg: 'decision', action: 'allow', at: '2099-01-01T00:00:00Z', checks: [] } }];
  const source: FeedSource = { readAudit: async (after) => entries.filter((e) => Number(e.id.split('-')[0]) > Number(after.split('-')[0])) };
  const feed = new AuditFeed(source, silentLogger(), () => 1000, () => clock.now);
  await feed.refresh();
  const minutes = (feed as unknown as { minutes: Map<number, unknown> }).minutes;
  expect(Math.max(...minutes.keys())).toBeLessThanOrEqual(clock.now);
  // Two days later, the next entry's prune drops it.
  clock.now += 2 * 24 * 60 * MINUTE;
  entries.push({ id: `${clock.now}-0`, event: { msg: 'decision', action: 'allow', at: new Date(clock.now).toISOString(), checks: [] } });
  await feed.refresh();
  expect([...minutes.keys()]).toEqual([clock.now]);
});

test('a reference id the stream search missed is not searched for again within a minute, then is', async () => {
  const clock = { now: Date.UTC(2026, 11, 1) };
  const source = stream(clock);
  source.write(3000);
  let reads = 0;
  const counting: FeedSource = { readAudit: (after, count) => (reads++, source.readAudit(after, count)) };
  const feed = new AuditFeed(counting, silentLogger(), () => 1000, () => clock.now);
  await feed.refresh();
  const first = reads;
  expect(await feed.findRef('MW-ZZZZZZZZ')).toEqual({ entry: null, searchedStream: true });
  const searched = reads - first;
  expect(searched).toBeGreaterThan(1);
  expect(await feed.findRef('mw-zzzzzzzz')).toEqual({ entry: null, searchedStream: false });
  expect(reads - first - searched).toBe(1); // the refresh only
  clock.now += 61_000;
  expect((await feed.findRef('MW-ZZZZZZZZ')).searchedStream).toBe(true);
});
