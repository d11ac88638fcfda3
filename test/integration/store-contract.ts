// The DeviceStore contract as jest cases, run against every adapter: memory (test/unit/store-memory.test.ts)
// and Redis (test/integration/store-redis.test.ts). Not a *.test.ts file: the suites import it.
import {
  KILL_SWITCH_FLAG,
  type ChangeEvent,
  type DeviceRecord,
  type DeviceStore,
  type Exemption,
} from '../../src/store/device-store';

export interface ContractHarness {
  /** A fresh, empty store (its own key space). */
  open(): Promise<DeviceStore>;
  /** The store's clock (ms epoch). */
  now(): number;
  /** Lets `ms` pass for the store (a fake clock, or a real wait for Redis TTLs). */
  advance(ms: number): Promise<void>;
  /** The auditMaxLen the stores were opened with. */
  readonly auditMaxLen: number;
  /** Extra entries an approximately capped stream may keep beyond auditMaxLen (Redis MAXLEN ~). */
  readonly auditSlack: number;
  /** Record TTL used by the expiry cases (short for Redis: it really waits). */
  readonly shortTtlSeconds: number;
  /** Writes raw text where the record of `deviceId` lives (adapters with an external layout only). */
  writeRawRecord?: (store: DeviceStore, deviceId: string, text: string) => Promise<void>;
}

/** A record; receivedAt is a second after an overridden reportedAt, as ingest would store it. */
export function record(deviceId: string, overrides: Partial<DeviceRecord> = {}): DeviceRecord {
  const reportedMs = Date.parse(overrides.reportedAt ?? '') || Date.parse('2026-01-10T10:00:00.000Z');
  return {
    deviceId,
    user: 'alice@example.com',
    platform: 'ios',
    osVersion: '17.4',
    managed: true,
    apps: ['com.apple.mobilemail', 'com.zhiliaoapp.musically'],
    reportedAt: '2026-01-10T10:00:00.000Z',
    source: 'mdm-1',
    receivedAt: new Date(reportedMs + 1000).toISOString(),
    ...overrides,
  };
}

function exemption(h: ContractHarness, overrides: Partial<Exemption> = {}): Exemption {
  return {
    scope: 'device',
    subject: 'dev-1',
    expiresAt: new Date(h.now() + 3600_000).toISOString(),
    note: 'CEO travelling, ticket 4711',
    createdBy: 'ops@example.com',
    createdAt: new Date(h.now()).toISOString(),
    ...overrides,
  };
}

/** Resolves with the first event matching `match`, or rejects after timeoutMs. */
export function nextEvent(store: DeviceStore, match: (event: ChangeEvent) => boolean, timeoutMs = 3000): Promise<ChangeEvent> {
  return new Promise((resolve, reject) => {
    let unsubscribe: (() => Promise<void>) | null = null;
    const timer = setTimeout(() => {
      void unsubscribe?.();
      reject(new Error('no matching change event'));
    }, timeoutMs);
    void store
      .subscribe((event) => {
        if (!match(event)) return;
        clearTimeout(timer);
        void unsubscribe?.();
        resolve(event);
      })
      .then((off) => (unsubscribe = off));
  });
}

/** Waits for a subscription to be active: publishes probes until one comes back. */
export async function subscribed(store: DeviceStore): Promise<void> {
  const version = `probe-${Math.random()}`;
  const seen = nextEvent(store, (e) => e.kind === 'policy' && e.version === version, 5000);
  const timer = setInterval(() => void store.publish({ kind: 'policy', version }).catch(() => undefined), 50);
  try {
    await seen;
  } finally {
    clearInterval(timer);
  }
}

export function describeStoreContract(name: string, h: ContractHarness): void {
  describe(`DeviceStore contract: ${name}`, () => {
    let store: DeviceStore;
    beforeEach(async () => {
      store = await h.open();
    });
    afterEach(async () => {
      await store.close();
    });

    test('putDevice then getDevice returns the record as stored', async () => {
      expect(await store.putDevice(record('dev-1'), 3600)).toBe(true);
      expect(await store.getDevice('dev-1')).toEqual({ state: 'found', record: record('dev-1') });
      expect(await store.getDevice('dev-unknown')).toEqual({ state: 'missing' });
      const many = await store.getDevices(['dev-unknown', 'dev-1']);
      expect(many.map((l) => l.state)).toEqual(['missing', 'found']);
    });

    test('connector fields (display names, ownership) are kept', async () => {
      const withNames = record('dev-1', { apps: [], appNames: ['Outlook', 'TikTok'], ownership: 'company' });
      await store.putDevice(withNames, 3600);
      expect(await store.getDevice('dev-1')).toEqual({ state: 'found', record: withNames });
    });

    test('a report older than the stored one is ignored; an equal or newer one replaces it', async () => {
      await store.putDevice(record('dev-1', { reportedAt: '2026-01-10T10:00:00.000Z', osVersion: '17.4' }), 3600);
      expect(await store.putDevice(record('dev-1', { reportedAt: '2026-01-10T09:59:59.999Z', osVersion: '16.0' }), 3600)).toBe(false);
      let got = await store.getDevice('dev-1');
      expect(got.state === 'found' && got.record.osVersion).toBe('17.4');
      expect(await store.putDevice(record('dev-1', { reportedAt: '2026-01-10T10:00:00.000Z', osVersion: '17.5' }), 3600)).toBe(true);
      // Zone offsets compare by instant: 12:30+02:00 is 10:30Z, newer than 10:00Z but older than 11:00Z.
      expect(await store.putDevice(record('dev-1', { reportedAt: '2026-01-10T12:30:00+02:00', osVersion: '17.6' }), 3600)).toBe(true);
      expect(await store.putDevice(record('dev-1', { reportedAt: '2026-01-10T11:00:00Z', osVersion: '17.7' }), 3600)).toBe(true);
      expect(await store.putDevice(record('dev-1', { reportedAt: '2026-01-10T12:59:00+02:00', osVersion: '9' }), 3600)).toBe(false);
      got = await store.getDevice('dev-1');
      expect(got.state === 'found' && got.record.osVersion).toBe('17.7');
    });

    test('reports are ordered by reportedAt clamped to receivedAt: one dated ahead does not outrank the next', async () => {
      const ahead = record('dev-1', { reportedAt: '2026-01-10T10:04:50.000Z', receivedAt: '2026-01-10T10:00:00.000Z', apps: [] });
      expect(await store.putDevice(ahead, 3600)).toBe(true);
      expect(await store.putDevice(record('dev-1', { reportedAt: '2026-01-10T10:00:10.000Z' }), 3600)).toBe(true);
      const got = await store.getDevice('dev-1');
      expect(got.state === 'found' && got.record.apps).toEqual(record('dev-1').apps);
      expect(await store.putDevice(record('dev-1', { reportedAt: '2026-01-10T09:59:00.000Z' }), 3600)).toBe(false);
    });

    test('a stored record from the future (2099) does not hold back the next report', async () => {
      expect(await store.putDevice(record('dev-1', { reportedAt: '2099-01-01T00:00:00.000Z', apps: [] }), 3600)).toBe(true);
      const now = new Date(h.now()).toISOString();
      expect(await store.putDevice(record('dev-1', { reportedAt: now, receivedAt: now }), 3600)).toBe(true);
      const got = await store.getDevice('dev-1');
      expect(got.state === 'found' && got.record.apps).toEqual(record('dev-1').apps);
    });

    test.each([
      ['platform', { platform: 'ios ' }],
      ['platform', { platform: 'iphoneos' }],
      ['apps', { apps: ['com.zhiliaoapp.musically\u0000'] }],
      ['deviceId', { deviceId: '{dev-2}' }],
      ['appNames', { apps: [], appNames: ['TikTok\u200b'] }],
      ['ownership', { ownership: 'corporate' as never }],
      ['reportedAt', { reportedAt: '2026-01-10T11:00:00.000Z', receivedAt: '2026-01-10T10:00:00.000Z' }],
    ])('a record with a bad %s value is refused', async (field, overrides) => {
      await expect(store.putDevice(record('dev-1', overrides), 3600)).rejects.toThrow(new RegExp(field));
      expect(await store.getDevice('dev-1')).toEqual({ state: 'missing' });
    });

    test('an invalid record is refused with a message naming the field, and nothing is stored', async () => {
      const bad = { ...record('dev-1'), platform: '' };
      await expect(store.putDevice(bad, 3600)).rejects.toThrow(/platform/);
      await expect(store.putDevice(record('dev-1', { reportedAt: 'yesterday' }), 3600)).rejects.toThrow(/reportedAt/);
      await expect(store.putDevice(record('dev-1'), 0)).rejects.toThrow(/ttl/i);
      expect(await store.getDevice('dev-1')).toEqual({ state: 'missing' });
    });

    test('a record expires after its TTL and then counts as missing everywhere', async () => {
      await store.putDevice(record('dev-1'), h.shortTtlSeconds);
      await store.putDevice(record('dev-2'), 3600);
      expect((await store.getDevice('dev-1')).state).toBe('found');
      await h.advance(h.shortTtlSeconds * 1000 + 150);
      expect(await store.getDevice('dev-1')).toEqual({ state: 'missing' });
      expect((await store.loadFacts('dev-1', 'alice@example.com', [])).device).toEqual({ state: 'missing' });
      expect((await store.listDevices()).map((r) => r.deviceId)).toEqual(['dev-2']);
      expect(await store.listUserDevices('alice@example.com')).toEqual(['dev-2']);
    });

    test('the per-user index follows the record, including a device changing hands', async () => {
      await store.putDevice(record('dev-1'), 3600);
      await store.putDevice(record('dev-2'), 3600);
      await store.putDevice(record('dev-3', { user: 'bob@example.com' }), 3600);
      expect(await store.listUserDevices('alice@example.com')).toEqual(['dev-1', 'dev-2']);
      await store.putDevice(record('dev-2', { user: 'bob@example.com', reportedAt: '2026-01-11T10:00:00Z' }), 3600);
      expect(await store.listUserDevices('alice@example.com')).toEqual(['dev-1']);
      expect(await store.listUserDevices('bob@example.com')).toEqual(['dev-2', 'dev-3']);
      await store.deleteDevice('dev-1');
      expect(await store.listUserDevices('alice@example.com')).toEqual([]);
      expect(await store.getDevice('dev-1')).toEqual({ state: 'missing' });
      expect((await store.listDevices()).map((r) => r.deviceId).sort()).toEqual(['dev-2', 'dev-3']);
    });

    test('exemptions: device and user ones are returned until they expire, and can be removed', async () => {
      const forDevice = exemption(h, { expiresAt: new Date(h.now() + h.shortTtlSeconds * 1000).toISOString() });
      const forUser = exemption(h, { scope: 'user', subject: 'alice@example.com', checks: ['banned-apps'], note: '' });
      await store.putExemption(forDevice);
      await store.putExemption(forUser);
      expect(await store.getExemptions('dev-1', 'alice@example.com')).toEqual([forDevice, forUser]);
      expect((await store.loadFacts('dev-1', 'alice@example.com', [])).exemptions).toEqual([forDevice, forUser]);
      expect((await store.loadFacts(null, 'alice@example.com', [])).exemptions).toEqual([forUser]);
      expect(await store.getExemptions('dev-2', 'bob@example.com')).toEqual([]);
      await h.advance(h.shortTtlSeconds * 1000 + 150);
      expect(await store.getExemptions('dev-1', 'alice@example.com')).toEqual([forUser]);
      expect(await store.listExemptions()).toEqual([forUser]);
      await store.removeExemption('user', 'alice@example.com');
      expect(await store.listExemptions()).toEqual([]);
    });

    test('an exemption that has already ended is refused', async () => {
      await expect(store.putExemption(exemption(h, { expiresAt: new Date(h.now() - 1000).toISOString() }))).rejects.toThrow(/expiresAt/);
      await expect(store.putExemption({ ...exemption(h), scope: 'group' as 'user' })).rejects.toThrow(/scope/);
      expect(await store.listExemptions()).toEqual([]);
    });

    test('first-seen-noncompliant is set only once (NX), read back in loadFacts, and cleared', async () => {
      await store.putDevice(record('dev-1'), 3600);
      expect(await store.getFirstSeenNoncompliant('dev-1', 'banned-apps')).toBeNull();
      expect(await store.markFirstSeenNoncompliant('dev-1', 'banned-apps', 1_700_000_000_000)).toBe(1_700_000_000_000);
      expect(await store.markFirstSeenNoncompliant('dev-1', 'banned-apps', 1_800_000_000_000)).toBe(1_700_000_000_000);
      expect(await store.markFirstSeenNoncompliant('dev-1', 'min-os', 1_750_000_000_000)).toBe(1_750_000_000_000);
      expect(await store.getFirstSeenNoncompliant('dev-1', 'banned-apps')).toBe(1_700_000_000_000);
      const facts = await store.loadFacts('dev-1', 'alice@example.com', ['banned-apps', 'platforms', 'min-os']);
      expect(facts.firstSeen).toEqual({ 'banned-apps': 1_700_000_000_000, 'min-os': 1_750_000_000_000 });
      await store.clearFirstSeenNoncompliant('dev-1', 'banned-apps');
      expect(await store.getFirstSeenNoncompliant('dev-1', 'banned-apps')).toBeNull();
      expect(await store.markFirstSeenNoncompliant('dev-1', 'banned-apps', 1_900_000_000_000)).toBe(1_900_000_000_000);
    });

    test('loadFacts gathers record, exemptions, first-seen and the kill switch', async () => {
      await store.putDevice(record('dev-1'), 3600);
      await store.markFirstSeenNoncompliant('dev-1', 'banned-apps', 1234);
      let facts = await store.loadFacts('dev-1', 'alice@example.com', ['banned-apps']);
      expect(facts).toEqual({ device: { state: 'found', record: record('dev-1') }, exemptions: [], firstSeen: { 'banned-apps': 1234 }, killSwitch: false });
      await store.setFlag(KILL_SWITCH_FLAG, '1');
      facts = await store.loadFacts(null, 'alice@example.com', ['banned-apps']);
      expect(facts).toEqual({ device: null, exemptions: [], firstSeen: {}, killSwitch: true });
    });

    test('flags: set, read, cleared; only 1/true/on switch the kill switch on', async () => {
      expect(await store.getFlag('maintenance')).toBeNull();
      await store.setFlag('maintenance', 'yes');
      expect(await store.getFlag('maintenance')).toBe('yes');
      await store.setFlag('maintenance', null);
      expect(await store.getFlag('maintenance')).toBeNull();
      await store.setFlag(KILL_SWITCH_FLAG, 'banana');
      expect((await store.loadFacts(null, 'u', [])).killSwitch).toBe(false);
      await store.setFlag(KILL_SWITCH_FLAG, 'on');
      expect((await store.loadFacts(null, 'u', [])).killSwitch).toBe(true);
    });

    test('app passwords: stored by credential id, removed per device', async () => {
      const cred = (credentialId: string, deviceId: string) => ({
        credentialId,
        user: 'alice@example.com',
        deviceId,
        hash: 'ab'.repeat(32),
        createdAt: '2026-01-10T10:00:00Z',
      });
      await store.putAppPassword(cred('c1', 'dev-1'));
      await store.putAppPassword(cred('c2', 'dev-1'));
      await store.putAppPassword(cred('c3', 'dev-2'));
      expect(await store.getAppPassword('c2')).toEqual(cred('c2', 'dev-1'));
      expect(await store.getAppPassword('nope')).toBeNull();
      expect(await store.removeAppPasswords('dev-1')).toBe(2);
      expect(await store.getAppPassword('c1')).toBeNull();
      expect(await store.getAppPassword('c2')).toBeNull();
      expect(await store.getAppPassword('c3')).toEqual(cred('c3', 'dev-2'));
      expect(await store.removeAppPasswords('dev-1')).toBe(0);
      await expect(store.putAppPassword({ ...cred('c4', 'dev-1'), hash: '' })).rejects.toThrow(/hash/);
    });

    test('the audit stream is capped and reads in order, after an id and from the end', async () => {
      const total = h.auditMaxLen + h.auditSlack + 50;
      const ids: string[] = [];
      for (let i = 0; i < total; i++) ids.push(await store.appendAudit({ n: i, action: 'allow' }));
      const all = await store.readAudit('0', total + 10);
      expect(all.length).toBeGreaterThanOrEqual(h.auditMaxLen);
      expect(all.length).toBeLessThanOrEqual(h.auditMaxLen + h.auditSlack);
      expect(all[all.length - 1]).toEqual({ id: ids[total - 1], event: { n: total - 1, action: 'allow' } });
      const after = await store.readAudit(ids[total - 3]!, 10);
      expect(after.map((e) => e.event.n)).toEqual([total - 2, total - 1]);
      expect((await store.readAuditLast!(3)).map((e) => e.event.n)).toEqual([total - 3, total - 2, total - 1]);
      expect(await store.readAudit('0', 0)).toEqual([]);
      await expect(store.readAudit('not-an-id', 1)).rejects.toThrow(/audit id/);
    });

    test('change events reach subscribers: device, exemption, kill switch, published ones', async () => {
      const events: ChangeEvent[] = [];
      const off = await store.subscribe((e) => events.push(e));
      await subscribed(store);
      await store.putDevice(record('dev-1'), 3600);
      await store.putExemption(exemption(h, { scope: 'user', subject: 'bob@example.com' }));
      await store.setFlag(KILL_SWITCH_FLAG, '1');
      await store.publish({ kind: 'policy', version: 'v2' });
      await waitUntil(() => events.some((e) => e.kind === 'policy' && e.version === 'v2'));
      const seen = events.filter((e) => !(e.kind === 'policy' && e.version.startsWith('probe-')));
      expect(seen).toEqual([
        { kind: 'device', deviceId: 'dev-1', user: 'alice@example.com' },
        { kind: 'exemption', scope: 'user', subject: 'bob@example.com' },
        { kind: 'kill-switch', on: true },
        { kind: 'policy', version: 'v2' },
      ]);
      await off();
      const before = events.length;
      const v3 = nextEvent(store, (e) => e.kind === 'policy' && e.version === 'v3');
      await store.publish({ kind: 'policy', version: 'v3' });
      await v3;
      expect(events.length).toBe(before);
    });

    test('a listener that throws does not stop the others', async () => {
      const got: ChangeEvent[] = [];
      await store.subscribe(() => {
        throw new Error('buggy listener');
      });
      await store.subscribe((e) => got.push(e));
      await subscribed(store);
      await store.publish({ kind: 'policy', version: 'after-throw' });
      await waitUntil(() => got.some((e) => e.kind === 'policy' && e.version === 'after-throw'));
    });

    if (h.writeRawRecord) {
      const writeRaw = h.writeRawRecord;
      test('malformed stored data is reported as malformed, never as a record', async () => {
        const cases: [string, string, RegExp][] = [
          ['dev-json', '{"deviceId": "dev-json", ', /invalid JSON/],
          ['dev-missing', JSON.stringify({ ...record('dev-missing'), platform: undefined }), /platform: missing/],
          ['dev-type', JSON.stringify({ ...record('dev-type'), managed: 'yes' }), /managed/],
          ['dev-apps', JSON.stringify({ ...record('dev-apps'), apps: 'com.zhiliaoapp.musically' }), /apps/],
          ['dev-other', JSON.stringify(record('dev-someone-else')), /deviceId/],
          ['dev-array', '[1,2,3]', /not a JSON object/],
        ];
        for (const [id, text, detail] of cases) {
          await writeRaw(store, id, text);
          const got = await store.getDevice(id);
          expect(got.state).toBe('malformed');
          expect(got.state === 'malformed' && got.detail).toMatch(detail);
          expect((await store.loadFacts(id, 'alice@example.com', [])).device).toEqual(got);
        }
        expect(await store.listDevices()).toEqual([]);
        // A valid report replaces the garbage.
        expect(await store.putDevice(record('dev-json'), 3600)).toBe(true);
        expect((await store.getDevice('dev-json')).state).toBe('found');
      });
    }
  });
}

export async function waitUntil(condition: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
