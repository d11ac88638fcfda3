// One Redis connection (standalone, Sentinel or Cluster) that fails fast: every error or timeout is
// a StoreUnavailableError within commandTimeoutMs, never a queued wait; cluster-safe batches and writes.
import { Cluster, Redis, type ClusterNode, type RedisOptions } from 'ioredis';
import type { RedisConfig } from '../../core/config-types';
import type { Logger } from '../../core/log';
import { StoreUnavailableError } from '../device-store';

export type Client = Redis | Cluster;
export type Cmd = [string, ...(string | number)[]];
export interface Reply {
  readonly err: Error | null;
  readonly value: unknown;
}

/** Someone stored another Redis type at one of our keys: that is bad data, not an outage. */
export class WrongType {
  constructor(readonly detail: string) {}
}

/** Pipelines larger than this are sent in chunks (listDevices over a big fleet). */
const BATCH_CHUNK = 1000;
const SCAN_COUNT = 1000;

export class RedisConnection {
  readonly client: Client;
  readonly cluster: boolean;
  private closed = false;

  constructor(
    private readonly config: RedisConfig,
    private readonly log: Logger,
  ) {
    this.cluster = config.mode === 'cluster';
    this.client = connect(config, 'mailwarden');
    watchConnection(this.client, 'redis', log, () => this.closed);
  }

  /** A second connection to the same Redis (a subscribed connection cannot serve commands). */
  duplicate(name: string): Client {
    const copy: Client = this.client instanceof Cluster ? this.client.duplicate() : this.client.duplicate();
    watchConnection(copy, name, this.log, () => this.closed);
    return copy;
  }

  get connectTimeoutMs(): number {
    return this.config.connectTimeoutMs;
  }

  /** Resolves true once Redis answers, false if it did not within timeoutMs (it keeps trying). */
  async waitReady(timeoutMs: number): Promise<boolean> {
    return this.client.status === 'ready' || (await onceWithin(this.client, 'ready', timeoutMs));
  }

  close(): void {
    this.closed = true;
    this.client.disconnect();
  }

  /** Any error or timeout from Redis → StoreUnavailableError (the caller tempfails). */
  async run<T>(op: string, fn: () => Promise<T>): Promise<T> {
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
  async batch(op: string, cmds: readonly Cmd[]): Promise<Reply[]> {
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
  async write(op: string, cmds: readonly Cmd[]): Promise<unknown[]> {
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
  async scan(match: string): Promise<string[]> {
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
}

/** Fail-fast connection options (docs/redis-layout.md, "Failure behaviour"). */
export function connect(config: RedisConfig, connectionName: string): Client {
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

export function replyValue(reply: Reply, op: string): unknown {
  if (!reply.err) return reply.value;
  if (reply.err.message.startsWith('WRONGTYPE')) return new WrongType(`wrong Redis type: ${reply.err.message}`);
  throw unavailable(op, reply.err);
}

export function unavailable(op: string, err: unknown): StoreUnavailableError {
  if (err instanceof StoreUnavailableError) return err;
  return new StoreUnavailableError(`redis ${op} failed: ${(err as Error)?.message ?? String(err)}`, { cause: err });
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

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
