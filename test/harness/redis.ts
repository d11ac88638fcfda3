// Starts a real redis-server on a free loopback port with a temp dir, for integration tests.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { findProgram, freePort, tempDir, waitForPort, stopProcess } from './ports';

export interface RedisServer {
  readonly host: string;
  readonly port: number;
  readonly dir: string;
  /** Stop it (SIGTERM to the PID we started), e.g. to simulate an outage. */
  stop(): Promise<void>;
  /** Start it again on the same port. */
  start(): Promise<void>;
}

export async function startRedis(): Promise<RedisServer> {
  const bin = findProgram('redis-server');
  if (!bin) throw new Error('redis-server not found: apt-get install redis-server');
  const port = await freePort();
  const dir = tempDir('redis');
  let child: ChildProcess | null = null;

  const start = async (): Promise<void> => {
    child = spawn(
      bin,
      ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--protected-mode', 'yes'],
      { stdio: 'ignore' },
    );
    await waitForPort(port);
  };
  const stop = async (): Promise<void> => {
    const c = child;
    child = null;
    await stopProcess(c);
  };
  await start();
  return {
    host: '127.0.0.1',
    port,
    dir,
    start,
    stop: async () => {
      await stop();
    },
  };
}

export async function cleanupRedis(server: RedisServer): Promise<void> {
  await server.stop();
  fs.rmSync(server.dir, { recursive: true, force: true });
}
