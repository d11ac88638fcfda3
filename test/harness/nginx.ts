// Starts a real nginx mail proxy (nginx 1.22 + libnginx-mod-mail) for integration tests and
// benchmarks: non-daemon, its own prefix, pid file and error log in a temp dir, loopback ports.
// The caller supplies the `mail { }` block (docs/hooks.md's block with the test's ports filled in).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { findProgram, freePort, tempDir, waitForPort, stopProcess } from './ports';

/** Debian's libnginx-mod-mail puts the dynamic module here (`nginx -V`: --modules-path). */
export const MAIL_MODULE = '/usr/lib/nginx/modules/ngx_mail_module.so';

export interface NginxOptions {
  /**
   * Builds the `mail { }` block from the free ports the harness picked (one per name in `ports`)
   * and the temp dir (for certificate paths and the like).
   */
  readonly mail: (ports: Readonly<Record<string, number>>, dir: string) => string;
  /** Names of the listening ports to pick, e.g. ['imap', 'smtp']; the first is waited for. */
  readonly ports: readonly string[];
  /** worker_processes (default 1). */
  readonly workers?: number;
}

export interface NginxServer {
  readonly host: string;
  readonly ports: Readonly<Record<string, number>>;
  readonly dir: string;
  readonly errorLog: string;
  readonly pid: number | undefined;
  /** The error log so far. */
  log(): string;
  stop(): Promise<void>;
  cleanup(): Promise<void>;
}

export function nginxConfig(dir: string, mailBlock: string, workers: number): string {
  return `# written by test/harness/nginx.ts
load_module ${MAIL_MODULE};
daemon off;
master_process on;
worker_processes ${workers};
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events {
    worker_connections 1024;
}
${mailBlock}
`;
}

export async function startNginx(options: NginxOptions): Promise<NginxServer> {
  const bin = findProgram('nginx');
  if (!bin) throw new Error('nginx not found: apt-get install nginx libnginx-mod-mail');
  if (!fs.existsSync(MAIL_MODULE)) throw new Error(`${MAIL_MODULE} missing: apt-get install libnginx-mod-mail`);
  const ports: Record<string, number> = {};
  for (const name of options.ports) ports[name] = await freePort();
  const dir = tempDir('nginx');
  const conf = path.join(dir, 'nginx.conf');
  fs.writeFileSync(conf, nginxConfig(dir, options.mail(ports, dir), options.workers ?? 1));
  const errorLog = path.join(dir, 'error.log');
  const readLog = (): string => (fs.existsSync(errorLog) ? fs.readFileSync(errorLog, 'utf8') : '');

  // -p: its own prefix (relative paths, temp files); -e: the startup error log before `error_log` applies.
  const child: ChildProcess = spawn(bin, ['-p', dir, '-e', errorLog, '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  try {
    await Promise.race([
      Promise.all(Object.values(ports).map((port) => waitForPort(port, '127.0.0.1', 10000))),
      new Promise((_, reject) => child.once('exit', (code) => reject(new Error(`nginx exited ${code}: ${stderr}`)))),
    ]);
  } catch (err) {
    await stopProcess(child);
    throw new Error(`${(err as Error).message}\n${readLog().slice(-2000)}`);
  }
  let running: ChildProcess | null = child;
  const stop = async (): Promise<void> => {
    const c = running;
    running = null;
    // SIGTERM to the master is nginx's fast shutdown; the workers exit with it.
    await stopProcess(c);
  };
  return {
    host: '127.0.0.1',
    ports,
    dir,
    errorLog,
    get pid() {
      return running?.pid;
    },
    log: readLog,
    stop,
    cleanup: async () => {
      await stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
