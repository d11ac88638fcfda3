// The `workers` setting: the proxy in several processes (node:cluster) on the same listening sockets,
// so that a proxy-bound deployment uses every core as nginx's `worker_processes auto` does. The
// primary forks, forwards signals and relays brake trips; every worker runs the whole runtime.
// Devices, flags, the kill switch and the change feed are in Redis, so revocation and the kill switch
// reach each worker's own sessions as they reach another instance's (docs/performance.md, "Workers").
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from '../core/log';
import type { BrakeTrip } from '../policy/brake';

/** Environment a worker reads: how many workers the instance has, and which one this is (0 = first). */
const WORKERS_ENV = 'MAILWARDEN_WORKERS';
const INDEX_ENV = 'MAILWARDEN_WORKER_INDEX';
const READY = 'mailwarden:ready';
const BRAKE_TRIP = 'mailwarden:brake-trip';
/** More unexpected exits than this per worker in RESTART_WINDOW_MS: something is wrong, stop. */
const MAX_RESTARTS = 5;
const RESTART_WINDOW_MS = 60_000;
/** A worker that has not exited this long after SIGTERM (past its own drain time) is killed. */
const STOP_GRACE_MS = 5_000;

/** What a worker process uses to talk to the primary; null in a process that is not a worker. */
export interface WorkerLink {
  readonly workers: number;
  /** 0 for the first worker (the one that serves the admin API and console), 1.. for the others. */
  readonly index: number;
  /** Tells the primary this worker is serving (a worker that exits before this failed to start). */
  ready(): void;
  sendBrakeTrip(trip: BrakeTrip): void;
  onBrakeTrip(handler: (trip: BrakeTrip) => void): void;
}

interface Message {
  readonly type?: unknown;
  readonly trip?: BrakeTrip;
}

export function workerLink(): WorkerLink | null {
  if (!cluster.isWorker || !process.send) return null;
  const send = (message: object) => {
    if (process.connected) process.send!(message);
  };
  return {
    workers: Number(process.env[WORKERS_ENV] ?? 1),
    index: Number(process.env[INDEX_ENV] ?? 0),
    ready: () => send({ type: READY }),
    sendBrakeTrip: (trip) => send({ type: BRAKE_TRIP, trip }),
    onBrakeTrip: (handler) => {
      process.on('message', (m: Message) => {
        if (m?.type === BRAKE_TRIP && m.trip) handler(m.trip);
      });
    },
  };
}

/**
 * Runs the primary: forks `count` workers (the same command line), relays brake trips between them,
 * forwards SIGHUP (reload) and SIGTERM/SIGINT (drain and stop), and replaces a worker that dies.
 * Resolves with the exit status: 0 after a stop, a worker's status when one failed to start.
 */
export function runPrimary(count: number, log: Logger, drainMs: number): Promise<number> {
  // Node's default on Linux is round robin: the primary accepts and hands each connection to the next
  // worker (NODE_CLUSTER_SCHED_POLICY=none lets the workers accept themselves; measured in docs/performance.md).
  const byIndex = new Map<number, Worker>();
  const started = new Set<Worker>();
  const restarts: number[] = [];
  let stopping = false;
  let status = 0;
  let allServing = false;

  return new Promise<number>((resolve) => {
    const finishIfDone = () => {
      if (stopping && byIndex.size === 0) resolve(status);
    };
    const stopAll = (why: string) => {
      if (stopping) return;
      stopping = true;
      log.info('stopping the workers', { why, workers: byIndex.size });
      for (const worker of byIndex.values()) {
        worker.process.kill('SIGTERM');
        setTimeout(() => worker.process.kill('SIGKILL'), drainMs + STOP_GRACE_MS).unref();
      }
      finishIfDone();
    };
    const fork = (index: number) => {
      const worker = cluster.fork({ [WORKERS_ENV]: String(count), [INDEX_ENV]: String(index) });
      byIndex.set(index, worker);
      worker.on('message', (m: Message) => {
        if (m?.type === READY) {
          started.add(worker);
          // Until then the primary hands every connection to the workers already listening.
          if (started.size === count && !allServing) {
            allServing = true;
            log.info('every worker is serving', { workers: count });
          }
        }
        if (m?.type === BRAKE_TRIP) {
          for (const other of byIndex.values()) if (other !== worker && other.isConnected()) other.send(m);
        }
      });
      worker.on('exit', (code, signal) => {
        byIndex.delete(index);
        if (stopping) return finishIfDone();
        if (!started.has(worker)) {
          // A start that failed (configuration, store, a port in use): the others would fail alike.
          status = code ?? 1;
          log.error('a worker failed to start; stopping', { worker: index, code, signal });
          return stopAll('a worker failed to start');
        }
        const now = Date.now();
        restarts.push(now);
        while (restarts.length > 0 && restarts[0]! < now - RESTART_WINDOW_MS) restarts.shift();
        if (restarts.length > MAX_RESTARTS * count) {
          status = 1;
          log.error('workers keep exiting; stopping', { worker: index, code, signal, exitsInLastMinute: restarts.length });
          return stopAll('workers keep exiting');
        }
        log.error('a worker exited; starting another in its place', { worker: index, code, signal });
        fork(index);
      });
    };
    for (let i = 0; i < count; i++) fork(i);
    process.on('SIGHUP', () => {
      for (const worker of byIndex.values()) worker.process.kill('SIGHUP');
    });
    process.once('SIGTERM', () => stopAll('SIGTERM'));
    process.once('SIGINT', () => stopAll('SIGINT'));
    log.info('mailwarden primary started', { workers: count });
  });
}
