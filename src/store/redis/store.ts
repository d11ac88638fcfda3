// The Redis device store's port methods (ioredis 6; standalone, Sentinel or Cluster) over the key
// layout of layout.ts, the fail-fast connection of connection.ts and the change feed of change-feed.ts.
import type { RedisConfig } from '../../core/config-types';
import { silentLogger, type Logger } from '../../core/log';
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
} from '../device-store';
import {
  checkCredential,
  checkDeviceRecord,
  checkExemption,
  decodeCredential,
  decodeDeviceRecord,
  decodeExemption,
  decodeFirstSeen,
  flagChangeEvent,
  isoToMs,
  reportOrderMs,
  killSwitchOn,
  ttlToMs,
} from '../record-codec';
import { RedisChangeFeed } from './change-feed';
import { RedisConnection, replyValue, unavailable, WrongType, type Client, type Cmd, type Reply } from './connection';
import { createFailureCounters, type FailureCounters } from '../failure-counters';
import { LUA_INDEX_DEVICE, LUA_MARK_FIRST_SEEN, LUA_PUT_DEVICE, redisKeys, type Scripts } from './layout';

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

/**
 * How long an audit event waits for a device lookup to share its write (appendAudit). At 50 logins/s
 * and more a lookup nearly always comes within it; an event never waits longer than this.
 */
const AUDIT_RIDE_MS = 10;

interface QueuedAudit {
  readonly json: string;
  resolve(id: string): void;
  reject(err: unknown): void;
}

/** Each queued audit event gets its XADD's reply: its stream id, or the store's error. */
function settleAudit(queued: readonly QueuedAudit[], replies: readonly Reply[]): void {
  replies.forEach((reply, i) => (reply.err ? queued[i]!.reject(unavailable('appendAudit', reply.err)) : queued[i]!.resolve(String(reply.value))));
}

export class RedisDeviceStore implements DeviceStore {
  readonly kind = 'redis' as const;
  private readonly connection: RedisConnection;
  private readonly feed: RedisChangeFeed;
  private readonly keys: ReturnType<typeof redisKeys>;
  private readonly keyPrefix: string;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly auditMaxLen: number;
  private readonly firstSeenTtlMs: number;
  /** Audit events not yet sent (appendAudit): they ride along with the next lookup or leave on a timer. */
  private readonly auditQueue: QueuedAudit[] = [];
  private auditInFlight = false;
  private auditTimer: NodeJS.Timeout | null = null;

  constructor(options: RedisStoreOptions) {
    const config = options.redis;
    if (/[{}]/.test(config.keyPrefix)) throw new RangeError(`redis.keyPrefix must not contain { or } (they are Cluster hash tags): "${config.keyPrefix}"`);
    this.keys = redisKeys(config.keyPrefix);
    this.keyPrefix = config.keyPrefix;
    this.log = options.log ?? silentLogger();
    this.now = options.now ?? Date.now;
    this.auditMaxLen = options.auditMaxLen;
    this.firstSeenTtlMs = (options.firstSeenTtlSeconds ?? 30 * 86400) * 1000;
    this.connection = new RedisConnection(config, this.log);
    this.feed = new RedisChangeFeed(this.connection, this.keys.changes, this.log);
    this.client.defineCommand('mwPutDevice', { lua: LUA_PUT_DEVICE });
    this.client.defineCommand('mwMarkFirstSeen', { lua: LUA_MARK_FIRST_SEEN, numberOfKeys: 2 });
    this.client.defineCommand('mwIndexDevice', { lua: LUA_INDEX_DEVICE, numberOfKeys: 1 });
  }

  /** Resolves true once Redis answers, false if it did not within timeoutMs (it keeps trying). */
  waitReady(timeoutMs: number): Promise<boolean> {
    return this.connection.waitReady(timeoutMs);
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
    // One pipeline: one round trip (in Cluster, one per node, sent in parallel). Audit events waiting
    // to be sent go in the same write (not in Cluster: the stream may live on another node).
    const riders = this.cluster || this.auditInFlight ? [] : this.auditQueue.splice(0);
    const all = await this.batch('loadFacts', [...cmds, ...riders.map((e) => this.xadd(e.json))]).catch((err: unknown) => {
      for (const e of riders) e.reject(err);
      throw err;
    });
    settleAudit(riders, all.slice(cmds.length));
    const replies = all.slice(0, cmds.length);
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
      this.scripts.mwPutDevice(keys.length, ...keys, JSON.stringify(clean), reportOrderMs(clean), ttlMs, clean.deviceId, k.changes, JSON.stringify(event), this.now()),
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
   * Audit events are sent together: each waits up to AUDIT_RIDE_MS for a device lookup (loadFacts) to
   * ride along with — under login load the next login's lookup is that soon, so the XADD costs no
   * write and no reply read of its own — else they leave in one pipeline of their own. While a batch
   * is on its way, later events wait for it, so they reach Redis (one connection) in call order.
   */
  appendAudit(event: Record<string, unknown>): Promise<string> {
    const json = JSON.stringify(event);
    return new Promise((resolve, reject) => {
      this.auditQueue.push({ json, resolve, reject });
      if (!this.auditInFlight && !this.auditTimer) {
        this.auditTimer = setTimeout(() => {
          this.auditTimer = null;
          void this.flushAudit();
        }, AUDIT_RIDE_MS);
      }
    });
  }

  private xadd(json: string): Cmd {
    return ['xadd', this.keys.audit, 'MAXLEN', '~', this.auditMaxLen, '*', 'event', json];
  }

  private async flushAudit(): Promise<void> {
    this.auditInFlight = true;
    while (this.auditQueue.length > 0) {
      const queued = this.auditQueue.splice(0, this.auditQueue.length);
      try {
        settleAudit(queued, await this.connection.batch('appendAudit', queued.map((e) => this.xadd(e.json))));
      } catch (err) {
        for (const e of queued) e.reject(err);
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

  publish(event: ChangeEvent): Promise<void> {
    return this.feed.publish(event);
  }

  subscribe(listener: (event: ChangeEvent) => void): Promise<() => Promise<void>> {
    return this.feed.subscribe(listener);
  }

  onReconnect(listener: () => void): () => void {
    return this.feed.onReconnect(listener);
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

  /** Keys `<keyPrefix>login-failures:<key>` and `<keyPrefix>login-known:<key>` (docs/redis-layout.md). */
  loginFailureCounters(windowSeconds: number): FailureCounters {
    return createFailureCounters({ windowSeconds, redis: { client: this.client, keyPrefix: this.keyPrefix } });
  }

  async close(): Promise<void> {
    // Audit events still waiting for a lookup to ride along with are sent before the connection goes.
    if (this.auditTimer) clearTimeout(this.auditTimer);
    this.auditTimer = null;
    if (!this.auditInFlight) await this.flushAudit();
    this.feed.close();
    this.connection.close();
  }

  private get scripts(): Scripts {
    return this.client as unknown as Scripts;
  }

  private get client(): Client {
    return this.connection.client;
  }

  private get cluster(): boolean {
    return this.connection.cluster;
  }

  private run<T>(op: string, fn: () => Promise<T>): Promise<T> {
    return this.connection.run(op, fn);
  }

  private batch(op: string, cmds: readonly Cmd[]): Promise<Reply[]> {
    return this.connection.batch(op, cmds);
  }

  private write(op: string, cmds: readonly Cmd[]): Promise<unknown[]> {
    return this.connection.write(op, cmds);
  }

  private scan(match: string): Promise<string[]> {
    return this.connection.scan(match);
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

