// The connectors' bookkeeping in Redis (docs/connectors.md, "Store keys"): per connector a hash
// of the devices it owns, its held diff, its last sync status and its sync lease, all under the
// hash tag {connector:<name>} so that each connector's keys share one Cluster slot. Device records
// themselves go through the device store (putDevice: record, user index and change event at once).
import type { Cluster, Redis } from 'ioredis';
import type { RedisConfig } from '../../core/config-types';
import type { ConnectorStatePort, ConnectorStatus, OwnedDevice } from '../../core/connector-state';
import type { DeviceStore } from '../device-store';
import { connect } from './connection';
import { redisKeys } from './layout';

type Client = Redis | Cluster;

/** Take the lease when it is free or already ours (SET … PX renews it); 1 = ours. */
const LUA_ACQUIRE = `
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0`;

const LUA_RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

const CHUNK = 500;

export function connectorKeys(prefix: string, connector: string) {
  const base = `${prefix}connector:{${connector}}`;
  return { owned: `${base}:owned`, held: `${base}:held`, status: `${base}:status`, lease: `${base}:lease` };
}

/** `hash|absent|writtenAtMs` — one short string per device. */
function encodeOwned(entry: OwnedDevice): string {
  return `${entry.hash}|${entry.absent}|${entry.writtenAtMs}`;
}

function decodeOwned(value: string): OwnedDevice | null {
  const [hash, absent, writtenAtMs] = value.split('|');
  if (!hash || !/^\d+$/.test(absent ?? '') || !/^\d+$/.test(writtenAtMs ?? '')) return null;
  return { hash, absent: Number(absent), writtenAtMs: Number(writtenAtMs) };
}

export class RedisConnectorState implements ConnectorStatePort {
  private readonly client: Client;
  private readonly prefix: string;
  private readonly deviceKey: (deviceId: string) => string;
  /** Resolves once connected, or after connectTimeoutMs (calls then fail as an outage). */
  private readonly connected: Promise<void>;

  /** Its own connection (same settings as the device store's); device writes go through `devices`. */
  constructor(
    config: RedisConfig,
    private readonly devices: Pick<DeviceStore, 'getDevices' | 'putDevice' | 'deleteDevice'>,
  ) {
    this.client = connect(config, 'mailwarden-connectors');
    // An outage is reported by the device store; here a failed call fails its sync.
    this.client.on('error', () => undefined);
    this.prefix = config.keyPrefix;
    this.deviceKey = redisKeys(config.keyPrefix).device;
    this.client.defineCommand('mwConnectorAcquire', { lua: LUA_ACQUIRE, numberOfKeys: 1 });
    this.client.defineCommand('mwConnectorRelease', { lua: LUA_RELEASE, numberOfKeys: 1 });
    this.connected = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, config.connectTimeoutMs);
      timer.unref();
      this.client.once('ready', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** The client, once the first connection attempt is over (the queue is off: fail fast). */
  private async redis(): Promise<Client> {
    await this.connected;
    return this.client;
  }

  async close(): Promise<void> {
    await this.client.quit().catch(() => this.client.disconnect());
  }

  getDevices(ids: readonly string[]) {
    return this.devices.getDevices(ids);
  }
  putDevice(...args: Parameters<DeviceStore['putDevice']>) {
    return this.devices.putDevice(...args);
  }
  deleteDevice(id: string) {
    return this.devices.deleteDevice(id);
  }

  async refreshDeviceTtl(ids: readonly string[], ttlSeconds: number): Promise<void> {
    const ms = Math.ceil(ttlSeconds * 1000);
    // One command per key (keys of different devices live in different Cluster slots); ioredis
    // auto-pipelining sends them together.
    const client = await this.redis();
    await Promise.all(ids.map((id) => client.pexpire(this.deviceKey(id), ms)));
  }

  async loadOwned(connector: string): Promise<Map<string, OwnedDevice>> {
    const key = connectorKeys(this.prefix, connector).owned;
    const out = new Map<string, OwnedDevice>();
    // HSCAN in pages: a 100,000-device HGETALL could outlive the command timeout.
    let cursor = '0';
    do {
      const [next, flat] = await (await this.redis()).hscan(key, cursor, 'COUNT', 1000);
      for (let i = 0; i + 1 < flat.length; i += 2) {
        const entry = decodeOwned(flat[i + 1]!);
        // An unreadable entry is forgotten: its device is "created" again and rewritten.
        if (entry) out.set(flat[i]!, entry);
      }
      cursor = next;
    } while (cursor !== '0');
    return out;
  }

  async saveOwned(connector: string, set: ReadonlyMap<string, OwnedDevice>, remove: readonly string[]): Promise<void> {
    const key = connectorKeys(this.prefix, connector).owned;
    const entries = [...set];
    for (let i = 0; i < entries.length; i += CHUNK) {
      await (await this.redis()).hset(key, ...entries.slice(i, i + CHUNK).flatMap(([id, e]) => [id, encodeOwned(e)]));
    }
    for (let i = 0; i < remove.length; i += CHUNK) await (await this.redis()).hdel(key, ...remove.slice(i, i + CHUNK));
  }

  async getHeld(connector: string): Promise<string | null> {
    return (await this.redis()).get(connectorKeys(this.prefix, connector).held);
  }

  async putHeld(connector: string, diffJson: string | null): Promise<void> {
    const key = connectorKeys(this.prefix, connector).held;
    if (diffJson === null) await (await this.redis()).del(key);
    else await (await this.redis()).set(key, diffJson);
  }

  async getStatus(connector: string): Promise<ConnectorStatus | null> {
    const raw = await (await this.redis()).get(connectorKeys(this.prefix, connector).status);
    if (raw === null) return null;
    try {
      const parsed = JSON.parse(raw) as ConnectorStatus;
      return parsed && typeof parsed === 'object' && parsed.connector === connector ? parsed : null;
    } catch {
      return null;
    }
  }

  async putStatus(status: ConnectorStatus): Promise<void> {
    await (await this.redis()).set(connectorKeys(this.prefix, status.connector).status, JSON.stringify(status));
  }

  async acquireLease(connector: string, holder: string, ttlMs: number): Promise<boolean> {
    const client = (await this.redis()) as unknown as { mwConnectorAcquire(key: string, holder: string, ttl: number): Promise<number> };
    return (await client.mwConnectorAcquire(connectorKeys(this.prefix, connector).lease, holder, Math.ceil(ttlMs))) === 1;
  }

  async releaseLease(connector: string, holder: string): Promise<void> {
    const client = (await this.redis()) as unknown as { mwConnectorRelease(key: string, holder: string): Promise<number> };
    await client.mwConnectorRelease(connectorKeys(this.prefix, connector).lease, holder);
  }
}
