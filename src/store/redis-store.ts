// The Redis device store (ioredis 6; standalone, Sentinel or Cluster). The key layout is a public
// interface an MDM may write directly: docs/redis-layout.md. Every call fails fast: any error or
// timeout becomes StoreUnavailableError within commandTimeoutMs, never a queued wait.
import { Cluster, Redis, type ClusterNode, type RedisOptions } from 'ioredis';
import type { RedisConfig } from '../core/config-types';
import { silentLogger, type Logger } from '../core/log';
import {
  KILL_SWITCH_FLAG,
  StoreUnavailableError,
  type AppPasswordCredential,
  type AuditEntry,
  type ChangeEvent,
  type DeviceLookup,
  type DeviceRecord,
  type DeviceStore,
  type Exemption,
  type ExemptionScope,
  type StoredFacts,
} from './device-store';
import {
  checkCredential,
  checkDeviceRecord,
  checkExemption,
  decodeChangeEvent,
  decodeCredential,
  decodeDeviceRecord,
  decodeExemption,
  decodeFirstSeen,
  flagChangeEvent,
  guardListener,
  isoToMs,
  killSwitchOn,
  ttlToMs,
} from './record-codec';

/**
 * Key names (docs/redis-layout.md). Everything about one device carries the hash tag `{deviceId}`,
 * so a device's multi-key writes land in one Cluster slot; per-user keys carry `{user}`.
 */
export function redisKeys(prefix: string) {
  const glob = prefix.replace(/[*?[\]\\]/g, '\\$&');
  return {
    device: (deviceId: string) => `${prefix}device:{${deviceId}}`,
    /** SCAN patterns for listDevices / listExemptions, and the device id back out of a record key. */
    devicePattern: `${glob}device:{*}`,
    exemptionPattern: `${glob}exemption:*`,
    deviceIdOf: (key: string) => key.slice(`${prefix}device:{`.length, -1),
    firstSeen: (deviceId: string) => `${prefix}firstseen:{${deviceId}}`,
    exemption: (scope: ExemptionScope, subject: string) => `${prefix}exemption:${scope}:{${subject}}`,
    deviceAppPasswords: (deviceId: string) => `${prefix}apppws:{${deviceId}}`,
    userDevices: (user: string) => `${prefix}user:{${user}}:devices`,
    appPassword: (credentialId: string) => `${prefix}apppw:${credentialId}`,
    flag: (name: string) => `${prefix}flag:${name}`,
    audit: `${prefix}audit`,
    changes: `${prefix}changes`,
  };
}

/**
 * ISO-8601 → ms epoch in Lua, for the same format record-codec accepts (the script must compare
 * reportedAt of a record an MDM may have written itself). Days from civil date: H. Hinnant's algorithm.
 */
const LUA_ISO_MS = `
local function iso_ms(s)
  if type(s) ~= 'string' then return nil end
  local y, mo, d, h, mi, sec, rest = string.match(s, '^(%d%d%d%d)%-(%d%d)%-(%d%d)[Tt](%d%d):(%d%d):(%d%d)(.*)$')
  if not y then return nil end
  y, mo, d, h, mi, sec = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(sec)
  if mo < 1 or mo > 12 or d < 1 or d > 31 or h > 23 or mi > 59 or sec > 60 then return nil end
  local frac = 0
  local f = string.match(rest, '^%.(%d+)')
  if f then
    frac = tonumber(string.sub(f .. '000', 1, 3))
    rest = string.sub(rest, #f + 2)
  end
  local off = 0
  if rest ~= 'Z' and rest ~= 'z' then
    local sign, oh, om = string.match(rest, '^([%+%-])(%d%d):(%d%d)$')
    if not sign then return nil end
    off = (tonumber(oh) * 60 + tonumber(om)) * 60000
    if sign == '+' then off = -off end
  end
  if mo <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local doy = math.floor((153 * ((mo + 9) % 12) + 2) / 5) + d - 1
  local days = era * 146097 + yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy - 719468
  return ((days * 24 + h) * 60 + mi) * 60000 + sec * 1000 + frac + off
end
`;

/** SADD to a user index and keep the index alive at least as long as the record just stored. */
const LUA_INDEX_ADD = `
local function index_add(key, member, ttl)
  redis.pcall('SADD', key, member)
  local left = redis.pcall('PTTL', key)
  if type(left) == 'number' and left < ttl then redis.pcall('PEXPIRE', key, ttl) end
end
`;

/**
 * putDevice, atomically: ignore a report older than the stored one, else store the record with its
 * TTL, align the first-seen hash's TTL, index the device under its user, publish the change.
 * KEYS: record, first-seen hash, [user index — omitted in Cluster, where it lives in another slot].
 * ARGV: record JSON, reportedAt ms, TTL ms, device id, change channel, change event JSON.
 * Returns {1|0, previous user or ''}.
 */
const LUA_PUT_DEVICE = `${LUA_ISO_MS}${LUA_INDEX_ADD}
local old = redis.pcall('GET', KEYS[1])
local old_user = ''
if type(old) == 'string' then
  local ok, rec = pcall(cjson.decode, old)
  if ok and type(rec) == 'table' then
    local old_ms = iso_ms(rec.reportedAt)
    if old_ms and old_ms > tonumber(ARGV[2]) then return {0, ''} end
    if type(rec.user) == 'string' then old_user = rec.user end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
if KEYS[3] then index_add(KEYS[3], ARGV[4], tonumber(ARGV[3])) end
redis.call('PUBLISH', ARGV[5], ARGV[6])
return {1, old_user}
`;

/** Cluster only: the user-index half of putDevice, in the user's slot. KEYS: index. ARGV: device id, TTL ms. */
const LUA_INDEX_DEVICE = `${LUA_INDEX_ADD}
index_add(KEYS[1], ARGV[1], tonumber(ARGV[2]))
return 1
`;

/**
 * markFirstSeenNoncompliant: HSETNX, and give the hash the record's remaining TTL (or a fallback
 * when there is no record) so first-seen times do not outlive the device.
 * KEYS: first-seen hash, record. ARGV: check id, ms epoch, fallback TTL ms. Returns the stored value.
 */
const LUA_MARK_FIRST_SEEN = `
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
if redis.call('PTTL', KEYS[1]) < 0 then
  local ttl = redis.call('PTTL', KEYS[2])
  if ttl <= 0 then ttl = tonumber(ARGV[3]) end
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return redis.call('HGET', KEYS[1], ARGV[1])
`;

interface Scripts {
  mwPutDevice(numKeys: number, ...keysAndArgs: (string | number)[]): Promise<[number, string]>;
  mwMarkFirstSeen(...keysAndArgs: (string | number)[]): Promise<string>;
  mwIndexDevice(...keysAndArgs: (string | number)[]): Promise<number>;
}

type Client = Redis | Cluster;
type Cmd = [string, ...(string | number)[]];
interface Reply {
  readonly err: Error | null;
  readonly value: unknown;
}

/** Someone stored another Redis type at one of our keys: that is bad data, not an outage. */
class WrongType {
  constructor(readonly detail: string) {}
}

export interface RedisStoreOptions {
  readonly redis: RedisConfig;
  /** Approximate cap of the audit stream (XADD MAXLEN ~). */
  readonly auditMaxLen: number;
  /** Lifetime of first-seen times of a device that has no record (with a record they follow its TTL). */
  readonly firstSeenTtlSeconds?: number;
  readonly log?: Logger;
  /** Clock for exemption expiry checks (Redis TTLs do the rest). */
  readonly now?: () => number;
}

/** Pipelines larger than this are sent in chunks (listDevices over a big fleet). */
const BATCH_CHUNK = 1000;
const SCAN_COUNT = 1000;

export class RedisDeviceStore implements DeviceStore {
  readonly kind = 'redis' as const;
  private readonly client: Client;
  private readonly cluster: boolean;
  private readonly keys: ReturnType<typeof redisKeys>;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly auditMaxLen: number;
  private readonly firstSeenTtlMs: number;
  private readonly connectTimeoutMs: number;
  private readonly changeListeners = new Set<(event: ChangeEvent) => void>();
  private readonly reconnectListeners = new Set<() => void>();
  private subscriber: Client | null = null;
  private subscriberStarted: Promise<void> | null = null;
  /** After the first subscription (or a start without one), every new subscription means events may have been lost. */
  private resubscribeMeansLoss = false;
  private closed = false;
  /** Audit events waiting for the batch in flight to finish (appendAudit). */
  private readonly auditQueue: { readonly json: string; resolve(id: string): void; reject(err: unknown): void }[] = [];
  private auditInFlight = false;

  constructor(options: RedisStoreOptions) {
    const config = options.redis;
    if (/[{}]/.test(config.keyPrefix)) throw new RangeError(`redis.keyPrefix must not contain { or } (they are Cluster hash tags): "${config.keyPrefix}"`);
    this.keys = redisKeys(config.keyPrefix);
    this.log = options.log ?? silentLogger();
    this.now = options.now ?? Date.now;
    this.auditMaxLen = options.auditMaxLen;
    this.firstSeenTtlMs = (options.firstSeenTtlSeconds ?? 30 * 86400) * 1000;
    this.connectTimeoutMs = config.connectTimeoutMs;
    this.cluster = config.mode === 'cluster';
    this.client = connect(config, 'mailwarden');
    this.client.defineCommand('mwPutDevice', { lua: LUA_PUT_DEVICE });
    this.client.defineCommand('mwMarkFirstSeen', { lua: LUA_MARK_FIRST_SEEN, numberOfKeys: 2 });
    this.client.defineCommand('mwIndexDevice', { lua: LUA_INDEX_DEVICE, numberOfKeys: 1 });
    watchConnection(this.client, 'redis', this.log, () => this.closed);
  }

  /** Resolves true once Redis answers, false if it did not within timeoutMs (it keeps trying). */
  async waitReady(timeoutMs: number): Promise<boolean> {
    return this.client.status === 'ready' || (await onceWithin(this.client, 'ready', timeoutMs));
  }

  async loadFacts(deviceId: string | null, user: string, checkIds: readonly string[]): Promise<StoredFacts> {
    const k = this.keys;
    const userExemptionKey = k.exemption('user', user);
    const deviceExemptionKey = k.exemption('device', deviceId ?? '');
    const cmds: Cmd[] = [
      ['get', k.flag(KILL_SWITCH_FLAG)],
      ['get', userExemptionKey],
    ];
    if (deviceId !== null) {
      cmds.push(['get', k.device(deviceId)], ['get', deviceExemptionKey]);
      if (checkIds.length > 0) cmds.push(['hmget', k.firstSeen(deviceId), ...checkIds]);
    }
    // One pipeline: one round trip (in Cluster, one per node, sent in parallel).
    const replies = await this.batch('loadFacts', cmds);
    const [flag, userExemption, record, deviceExemption, seen] = replies.map((reply) => replyValue(reply, 'loadFacts'));
    const firstSeen: Record<string, number> = {};
    if (seen !== undefined) {
      checkIds.forEach((checkId, i) => {
        // A first-seen hash of the wrong type counts as "first seen long ago" (grace over), never as a fresh start.
        const at = seen instanceof WrongType ? '0' : (seen as (string | null)[])[i];
        if (at !== null && at !== undefined) firstSeen[checkId] = decodeFirstSeen(at);
      });
    }
    return {
      device: deviceId === null ? null : this.decodeDevice(record, deviceId),
      exemptions: this.decodeExemptions([
        [deviceExemptionKey, deviceExemption],
        [userExemptionKey, userExemption],
      ]),
      firstSeen,
      killSwitch: typeof flag === 'string' && killSwitchOn(flag),
    };
  }

  async getDevice(deviceId: string): Promise<DeviceLookup> {
    return (await this.getDevices([deviceId]))[0]!;
  }

  async getDevices(deviceIds: readonly string[]): Promise<DeviceLookup[]> {
    const replies = await this.batch('getDevices', deviceIds.map((id): Cmd => ['get', this.keys.device(id)]));
    return replies.map((reply, i) => this.decodeDevice(replyValue(reply, 'getDevices'), deviceIds[i]!));
  }

  async putDevice(record: DeviceRecord, ttlSeconds: number): Promise<boolean> {
    const clean = checkDeviceRecord(record);
    const ttlMs = ttlToMs(ttlSeconds);
    const k = this.keys;
    const userIndex = k.userDevices(clean.user);
    const keys = [k.device(clean.deviceId), k.firstSeen(clean.deviceId), ...(this.cluster ? [] : [userIndex])];
    const event: ChangeEvent = { kind: 'device', deviceId: clean.deviceId, user: clean.user };
    const [accepted, previousUser] = await this.run('putDevice', () =>
      this.scripts.mwPutDevice(keys.length, ...keys, JSON.stringify(clean), isoToMs(clean.reportedAt)!, ttlMs, clean.deviceId, k.changes, JSON.stringify(event)),
    );
    if (accepted !== 1) return false;
    // Cluster: the user index is in the user's slot, so it is written after the record (documented
    // trade-off: it may briefly lack the device; readers prune entries whose record is gone).
    if (this.cluster) {
      await this.run('putDevice', () => this.scripts.mwIndexDevice(userIndex, clean.deviceId, ttlMs));
    }
    if (previousUser !== '' && previousUser !== clean.user) {
      await this.run('putDevice', () => this.client.srem(k.userDevices(previousUser), clean.deviceId));
    }
    return true;
  }

  async deleteDevice(deviceId: string): Promise<void> {
    const k = this.keys;
    const current = await this.getDevice(deviceId);
    const user = current.state === 'found' ? current.record.user : undefined;
    const event: ChangeEvent = user === undefined ? { kind: 'device', deviceId } : { kind: 'device', deviceId, user };
    await this.write('deleteDevice', [
      ['del', k.device(deviceId), k.firstSeen(deviceId)],
      ['publish', k.changes, JSON.stringify(event)],
    ]);
    if (user !== undefined) await this.run('deleteDevice', () => this.client.srem(k.userDevices(user), deviceId));
  }

  async listUserDevices(user: string): Promise<string[]> {
    const index = this.keys.userDevices(user);
    const ids = (await this.run('listUserDevices', () => this.client.smembers(index))).sort();
    const lookups = await this.getDevices(ids);
    const gone = ids.filter((_, i) => {
      const lookup = lookups[i]!;
      return lookup.state === 'missing' || (lookup.state === 'found' && lookup.record.user !== user);
    });
    if (gone.length > 0) await this.run('listUserDevices', () => this.client.srem(index, ...gone));
    return ids.filter((id) => !gone.includes(id));
  }

  async listDevices(): Promise<DeviceRecord[]> {
    const ids = (await this.scan(this.keys.devicePattern)).map(this.keys.deviceIdOf);
    const lookups = await this.getDevices(ids);
    return lookups.flatMap((lookup) => (lookup.state === 'found' ? [lookup.record] : []));
  }

  async getExemptions(deviceId: string | null, user: string): Promise<Exemption[]> {
    const keys = [...(deviceId === null ? [] : [this.keys.exemption('device', deviceId)]), this.keys.exemption('user', user)];
    return this.readExemptions('getExemptions', keys);
  }

  async putExemption(exemption: Exemption): Promise<void> {
    const clean = checkExemption(exemption, this.now());
    const event: ChangeEvent = { kind: 'exemption', scope: clean.scope, subject: clean.subject };
    await this.write('putExemption', [
      ['set', this.keys.exemption(clean.scope, clean.subject), JSON.stringify(clean), 'PXAT', isoToMs(clean.expiresAt)!],
      ['publish', this.keys.changes, JSON.stringify(event)],
    ]);
  }

  async removeExemption(scope: ExemptionScope, subject: string): Promise<void> {
    const event: ChangeEvent = { kind: 'exemption', scope, subject };
    await this.write('removeExemption', [
      ['del', this.keys.exemption(scope, subject)],
      ['publish', this.keys.changes, JSON.stringify(event)],
    ]);
  }

  async listExemptions(): Promise<Exemption[]> {
    const keys = await this.scan(this.keys.exemptionPattern);
    return this.readExemptions('listExemptions', keys.sort());
  }

  async getFirstSeenNoncompliant(deviceId: string, checkId: string): Promise<number | null> {
    const value = await this.run('getFirstSeen', () => this.client.hget(this.keys.firstSeen(deviceId), checkId));
    return value === null ? null : decodeFirstSeen(value);
  }

  async markFirstSeenNoncompliant(deviceId: string, checkId: string, atMs: number): Promise<number> {
    const k = this.keys;
    const stored = await this.run('markFirstSeen', () =>
      this.scripts.mwMarkFirstSeen(k.firstSeen(deviceId), k.device(deviceId), checkId, Math.trunc(atMs), this.firstSeenTtlMs),
    );
    return decodeFirstSeen(stored);
  }

  async clearFirstSeenNoncompliant(deviceId: string, checkId: string): Promise<void> {
    await this.run('clearFirstSeen', () => this.client.hdel(this.keys.firstSeen(deviceId), checkId));
  }

  async putAppPassword(credential: AppPasswordCredential): Promise<void> {
    const clean = checkCredential(credential);
    // Index first: in Cluster (no common slot) a failure in between leaves an index entry without a
    // credential (harmless), never a credential that removeAppPasswords cannot find.
    await this.write('putAppPassword', [
      ['sadd', this.keys.deviceAppPasswords(clean.deviceId), clean.credentialId],
      ['set', this.keys.appPassword(clean.credentialId), JSON.stringify(clean)],
    ]);
  }

  async getAppPassword(credentialId: string): Promise<AppPasswordCredential | null> {
    const raw = await this.run('getAppPassword', () => this.client.get(this.keys.appPassword(credentialId)));
    const credential = decodeCredential(raw);
    if (raw !== null && credential === null) this.log.warn('malformed app-password credential in the store: ignored', { credentialId });
    return credential;
  }

  async removeAppPasswords(deviceId: string): Promise<number> {
    const index = this.keys.deviceAppPasswords(deviceId);
    const ids = await this.run('removeAppPasswords', () => this.client.smembers(index));
    if (ids.length === 0) return 0;
    // SREM of exactly these ids (not DEL): a credential enrolled meanwhile stays findable.
    const results = await this.write('removeAppPasswords', [
      ...ids.map((id): Cmd => ['del', this.keys.appPassword(id)]),
      ['srem', index, ...ids],
    ]);
    return results.slice(0, ids.length).reduce<number>((sum, n) => sum + Number(n), 0);
  }

  /**
   * Audit events go out one batch at a time: while a batch is on its way, new events wait and then
   * leave together in one pipeline (one write, one reply read on both sides) — under login load that
   * is several XADDs per round trip instead of one each; a lone caller waits for nothing extra.
   */
  appendAudit(event: Record<string, unknown>): Promise<string> {
    const json = JSON.stringify(event);
    return new Promise((resolve, reject) => {
      this.auditQueue.push({ json, resolve, reject });
      if (!this.auditInFlight) void this.flushAudit();
    });
  }

  private async flushAudit(): Promise<void> {
    this.auditInFlight = true;
    while (this.auditQueue.length > 0) {
      const batch = this.auditQueue.splice(0, BATCH_CHUNK);
      const xadd = (json: string): Cmd => ['xadd', this.keys.audit, 'MAXLEN', '~', this.auditMaxLen, '*', 'event', json];
      try {
        // One key, one slot: a plain pipeline also in Cluster.
        const replies = await this.run('appendAudit', () => this.pipeline(batch.map((e) => xadd(e.json))));
        replies.forEach((reply, i) => (reply.err ? batch[i]!.reject(unavailable('appendAudit', reply.err)) : batch[i]!.resolve(String(reply.value))));
      } catch (err) {
        for (const e of batch) e.reject(err);
      }
    }
    this.auditInFlight = false;
  }

  async readAudit(afterId: string, count: number): Promise<AuditEntry[]> {
    if (!/^\d+(-\d+)?$/.test(afterId)) throw new RangeError(`audit id: expected a stream id like 1700000000000-0, got "${afterId}"`);
    if (count <= 0) return [];
    const start = afterId === '0' ? '-' : `(${afterId}`;
    const entries = await this.run('readAudit', () => this.client.xrange(this.keys.audit, start, '+', 'COUNT', count));
    return entries.map(decodeAuditEntry);
  }

  async readAuditLast(count: number): Promise<AuditEntry[]> {
    if (count <= 0) return [];
    const entries = await this.run('readAuditLast', () => this.client.xrevrange(this.keys.audit, '+', '-', 'COUNT', count));
    return entries.map(decodeAuditEntry).reverse();
  }

  async publish(event: ChangeEvent): Promise<void> {
    await this.run('publish', () => this.client.publish(this.keys.changes, JSON.stringify(event)));
  }

  /**
   * Subscribes on a dedicated connection (a subscribed connection cannot serve lookups). If Redis is
   * down, this resolves after connectTimeoutMs and the subscription is made once Redis is back
   * (onReconnect listeners fire then, since events were missed).
   */
  async subscribe(listener: (event: ChangeEvent) => void): Promise<() => Promise<void>> {
    const guarded = guardListener(listener, this.log);
    this.changeListeners.add(guarded);
    await this.startSubscriber();
    return async () => {
      this.changeListeners.delete(guarded);
    };
  }

  /** Fires when the change-channel connection is subscribed again after a loss (only once subscribe() was called). */
  onReconnect(listener: () => void): () => void {
    this.reconnectListeners.add(listener);
    return () => this.reconnectListeners.delete(listener);
  }

  async getFlag(name: string): Promise<string | null> {
    return this.run('getFlag', () => this.client.get(this.keys.flag(name)));
  }

  async setFlag(name: string, value: string | null): Promise<void> {
    const key = this.keys.flag(name);
    const event = flagChangeEvent(name, value);
    await this.write('setFlag', [
      value === null ? ['del', key] : ['set', key, value],
      ...(event ? [['publish', this.keys.changes, JSON.stringify(event)] as Cmd] : []),
    ]);
  }

  isConnected(): boolean {
    return this.client.status === 'ready';
  }

  async ping(): Promise<void> {
    await this.run('ping', () => this.client.ping());
  }

  async close(): Promise<void> {
    this.closed = true;
    this.changeListeners.clear();
    this.reconnectListeners.clear();
    this.subscriber?.disconnect();
    this.client.disconnect();
  }

  private get scripts(): Scripts {
    return this.client as unknown as Scripts;
  }

  /** Any error or timeout from Redis → StoreUnavailableError (the caller tempfails). */
  private async run<T>(op: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw unavailable(op, err);
    }
  }

  /**
   * Several reads in one round trip: a pipeline (standalone, Sentinel), or — in Cluster, where a
   * pipeline must stay on one node — the same commands auto-pipelined per node in parallel.
   */
  private async batch(op: string, cmds: readonly Cmd[]): Promise<Reply[]> {
    const out: Reply[] = [];
    for (let i = 0; i < cmds.length; i += BATCH_CHUNK) {
      const chunk = cmds.slice(i, i + BATCH_CHUNK);
      out.push(...(await this.run(op, () => (this.cluster ? this.callEach(chunk) : this.pipeline(chunk)))));
    }
    return out;
  }

  private async pipeline(cmds: readonly Cmd[]): Promise<Reply[]> {
    const results = await this.client.pipeline(cmds.map((c) => [...c])).exec();
    if (!results) throw new Error('pipeline aborted');
    return results.map(([err, value]) => ({ err, value }));
  }

  private callEach(cmds: readonly Cmd[]): Promise<Reply[]> {
    return Promise.all(
      cmds.map(([name, ...args]) =>
        this.client.call(name, args).then(
          (value): Reply => ({ err: null, value }),
          (err: Error): Reply => ({ err, value: null }),
        ),
      ),
    );
  }

  /**
   * A write of several commands: MULTI/EXEC (standalone, Sentinel). In Cluster the keys may live in
   * different slots, so the commands run one after another in the order given (each call site
   * orders them so that a failure half-way leaves nothing unsafe behind).
   */
  private async write(op: string, cmds: readonly Cmd[]): Promise<unknown[]> {
    if (this.cluster) {
      const values: unknown[] = [];
      for (const [name, ...args] of cmds) values.push(await this.run(op, () => this.client.call(name, args)));
      return values;
    }
    const results = await this.run(op, () => this.client.multi(cmds.map((c) => [...c])).exec());
    if (!results) throw unavailable(op, new Error('transaction aborted'));
    return results.map(([err, value]) => {
      if (err) throw unavailable(op, err);
      return value;
    });
  }

  /** Keys matching a glob on every master (SCAN, so Redis is never blocked). */
  private async scan(match: string): Promise<string[]> {
    const nodes: Redis[] = this.client instanceof Cluster ? this.client.nodes('master') : [this.client];
    // A cluster that knows no master yet would otherwise look like an empty store (and, say, let the
    // blast-radius guard count zero devices).
    if (this.client.status !== 'ready' || nodes.length === 0) throw unavailable('scan', new Error(`not connected (${this.client.status})`));
    const found = new Set<string>();
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, keys] = await this.run('scan', () => node.scan(cursor, 'MATCH', match, 'COUNT', SCAN_COUNT));
        for (const key of keys) found.add(key);
        cursor = next;
      } while (cursor !== '0');
    }
    return [...found];
  }

  private decodeDevice(value: unknown, deviceId: string): DeviceLookup {
    if (value instanceof WrongType) return { state: 'malformed', detail: value.detail };
    return decodeDeviceRecord(value as string | null, deviceId);
  }

  private async readExemptions(op: string, keys: readonly string[]): Promise<Exemption[]> {
    const replies = await this.batch(op, keys.map((key): Cmd => ['get', key]));
    return this.decodeExemptions(replies.map((reply, i) => [keys[i]!, replyValue(reply, op)]));
  }

  /**
   * Unusable or expired exemptions, and ones whose scope/subject are not those of their key, are
   * left out (an exemption only ever loosens policy, so ignoring a bad one is the safe side).
   */
  private decodeExemptions(entries: readonly (readonly [string, unknown])[]): Exemption[] {
    const out: Exemption[] = [];
    for (const [key, value] of entries) {
      if (value === null || value === undefined) continue;
      let exemption = value instanceof WrongType ? value.detail : decodeExemption(value as string);
      if (typeof exemption !== 'string' && this.keys.exemption(exemption.scope, exemption.subject) !== key) {
        exemption = 'scope/subject do not match the key';
      }
      if (typeof exemption === 'string') this.log.warn('malformed exemption in the store: ignored', { key, detail: exemption });
      else if ((isoToMs(exemption.expiresAt) ?? 0) > this.now()) out.push(exemption);
    }
    return out;
  }

  private startSubscriber(): Promise<void> {
    if (this.subscriberStarted) return this.subscriberStarted;
    const sub: Client = this.client instanceof Cluster ? this.client.duplicate() : this.client.duplicate();
    this.subscriber = sub;
    watchConnection(sub, 'redis change channel', this.log, () => this.closed);
    sub.on('message', (channel: string, message: string) => {
      if (channel !== this.keys.changes) return;
      const event = decodeChangeEvent(message);
      if (!event) {
        this.log.warn('unreadable message on the change channel: ignored', { channel, bytes: message.length });
        return;
      }
      for (const listener of this.changeListeners) listener(event);
    });
    let firstSubscribed: () => void = () => undefined;
    const first = new Promise<void>((resolve) => (firstSubscribed = resolve));
    const subscribeNow = async (): Promise<void> => {
      try {
        await sub.subscribe(this.keys.changes);
      } catch (err) {
        this.log.warn('subscribing to the change channel failed; retrying on the next reconnect', { error: (err as Error).message });
        return;
      }
      if (this.resubscribeMeansLoss) this.fireReconnect();
      this.resubscribeMeansLoss = true;
      firstSubscribed();
    };
    // autoResubscribe is off (see connect()): we subscribe on every ready ourselves, so we know when.
    sub.on('ready', () => void subscribeNow());
    this.subscriberStarted = Promise.race([first, delay(this.connectTimeoutMs)]).then(() => {
      // Redis down at start: the subscription comes later, and whatever was published meanwhile is lost.
      this.resubscribeMeansLoss = true;
    });
    return this.subscriberStarted;
  }

  private fireReconnect(): void {
    this.log.info('change channel subscribed again: revalidating (events may have been missed)');
    for (const listener of this.reconnectListeners) {
      try {
        listener();
      } catch (err) {
        this.log.error('store reconnect listener failed', { error: (err as Error).message });
      }
    }
  }
}

/** Fail-fast connection options (docs/redis-layout.md, "Failure behaviour"). */
function connect(config: RedisConfig, connectionName: string): Client {
  // Reconnect in the background forever, backing off to at most 2 s between attempts.
  const retryStrategy = (times: number): number => Math.min(50 * 2 ** times, 2000);
  const common: RedisOptions = {
    connectionName,
    username: config.username,
    password: config.password,
    db: config.db,
    tls: config.tls ? {} : undefined,
    commandTimeout: config.commandTimeoutMs,
    connectTimeout: config.connectTimeoutMs,
    maxRetriesPerRequest: 1,
    autoResendUnfulfilledCommands: false,
    autoResubscribe: false,
    enableReadyCheck: true,
    // Commands issued in one event-loop tick go out as one write: many concurrent logins and their
    // audit appends share round trips and syscalls (ioredis README: +35-50% throughput).
    enableAutoPipelining: true,
    // close() drops pending replies anyway; do not keep a dead socket (Redis down) open 2 s for it.
    disconnectTimeout: config.commandTimeoutMs,
    // After a failover the old master answers READONLY: reconnect so Sentinel/Cluster finds the new one.
    reconnectOnError: (err) => err.message.startsWith('READONLY'),
  };
  switch (config.mode) {
    case 'standalone':
      return new Redis({ ...common, host: config.host, port: config.port, enableOfflineQueue: false, retryStrategy });
    case 'sentinel':
      return new Redis({
        ...common,
        sentinels: (config.sentinels ?? []).map(({ host, port }) => ({ host, port })),
        name: config.name,
        enableOfflineQueue: false,
        retryStrategy,
        sentinelRetryStrategy: retryStrategy,
      });
    case 'cluster': {
      const nodes: ClusterNode[] = (config.nodes ?? []).map(({ host, port }) => ({ host, port }));
      const { db: _db, ...redisOptions } = common; // Cluster has a single database
      return new Cluster(nodes, {
        redisOptions,
        enableOfflineQueue: false,
        enableAutoPipelining: true,
        clusterRetryStrategy: retryStrategy,
        slotsRefreshTimeout: config.connectTimeoutMs,
      });
    }
  }
}

/** Logs each outage once (not every reconnect attempt) and its end. */
function watchConnection(client: Client, name: string, log: Logger, closing: () => boolean): void {
  let down = false;
  client.on('error', (err: Error) => {
    if (closing() || down) return;
    down = true;
    log.warn(`${name} unreachable: calls fail with STORE_UNAVAILABLE until it is back`, { error: err.message });
  });
  client.on('ready', () => {
    if (!down) return;
    down = false;
    log.info(`${name} reachable again`);
  });
}

function replyValue(reply: Reply, op: string): unknown {
  if (!reply.err) return reply.value;
  if (reply.err.message.startsWith('WRONGTYPE')) return new WrongType(`wrong Redis type: ${reply.err.message}`);
  throw unavailable(op, reply.err);
}

function unavailable(op: string, err: unknown): StoreUnavailableError {
  if (err instanceof StoreUnavailableError) return err;
  return new StoreUnavailableError(`redis ${op} failed: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}

/** An audit entry: the `event` field's JSON, or (written by someone else) the raw fields. */
function decodeAuditEntry([id, fields]: [string, string[]]): AuditEntry {
  const pairs: [string, string][] = [];
  for (let i = 0; i + 1 < fields.length; i += 2) pairs.push([fields[i]!, fields[i + 1]!]);
  // fromEntries defines own properties: a field named __proto__ cannot touch a prototype.
  const raw: Record<string, string> = Object.fromEntries(pairs);
  try {
    const event = JSON.parse(raw.event ?? '') as unknown;
    if (event !== null && typeof event === 'object' && !Array.isArray(event)) return { id, event: event as Record<string, unknown> };
  } catch {
    /* fall through: keep the raw fields */
  }
  return { id, event: raw };
}

function onceWithin(client: Client, event: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      client.off(event, onEvent);
      resolve(false);
    }, timeoutMs);
    const onEvent = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    client.once(event, onEvent);
  });
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
