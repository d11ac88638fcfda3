// Starts a real 3-master Redis Cluster (redis-server --cluster-enabled yes) on free loopback ports
// with temp dirs, joined by `redis-cli --cluster create`, for integration tests.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { findProgram, freePort, stopProcess, tempDir, waitForPort } from './ports';

export interface RedisCluster {
  readonly nodes: readonly { host: string; port: number }[];
  stop(): Promise<void>;
}

const run = promisify(execFile);

export async function startRedisCluster(masters = 3): Promise<RedisCluster> {
  const server = findProgram('redis-server');
  const cli = findProgram('redis-cli');
  if (!server || !cli) throw new Error('redis-server/redis-cli not found: apt-get install redis-server');
  const dir = tempDir('redis-cluster');
  const children: ChildProcess[] = [];
  const nodes: { host: string; port: number }[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(children.map(stopProcess));
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < masters; i++) {
      const port = await freePort();
      // The bus port is chosen explicitly (cluster-port, Redis 7): port+10000 may be taken or > 65535.
      const busPort = await freePort();
      const nodeDir = path.join(dir, String(i));
      fs.mkdirSync(nodeDir);
      const args = ['--port', String(port), '--cluster-port', String(busPort), '--bind', '127.0.0.1', '--dir', nodeDir];
      args.push('--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--save', '', '--appendonly', 'no');
      children.push(spawn(server, args, { stdio: 'ignore' }));
      nodes.push({ host: '127.0.0.1', port });
    }
    await Promise.all(nodes.map((n) => waitForPort(n.port)));
    await run(cli, ['--cluster', 'create', ...nodes.map((n) => `${n.host}:${n.port}`), '--cluster-replicas', '0', '--cluster-yes']);
    // Every node must agree the cluster is up before clients connect.
    const deadline = Date.now() + 15000;
    for (const node of nodes) {
      for (;;) {
        const { stdout } = await run(cli, ['-p', String(node.port), 'cluster', 'info']);
        if (stdout.includes('cluster_state:ok')) break;
        if (Date.now() > deadline) throw new Error(`cluster not ok on ${node.port}: ${stdout}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { nodes, stop };
}
