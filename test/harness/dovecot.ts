// Starts a real Dovecot 2.3 as the upstream IMAP server for integration tests and benchmarks:
// passwd-file users, a master user, maildir in a temp dir, plain IMAP on a free loopback port.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findProgram, freePort, tempDir, waitForPort, stopProcess } from './ports';

export interface DovecotUser {
  readonly user: string;
  readonly password: string;
}

export interface DovecotOptions {
  /** Default: alice@example.com / alice-pw and bob@example.com / bob-pw. */
  readonly users?: readonly DovecotUser[];
  /** Master user (`user*master` logins, or AUTHENTICATE PLAIN with authzid). */
  readonly master?: DovecotUser;
  /** Extra lines appended to dovecot.conf (e.g. service limits for the benchmark). */
  readonly extraConfig?: string;
  /** Certificate and key (PEM files): enables STARTTLS on `port` and implicit TLS on `tlsPort`. */
  readonly tls?: { readonly cert: string; readonly key: string };
  /**
   * `login_trusted_networks` (default 127.0.0.1: the proxy's x-originating-ip is honoured and no auth
   * penalty applies to it). Empty = Dovecot's default: every login from the proxy shares its address,
   * and Dovecot's per-IP auth penalty (2 s after a failure, doubling to 15 s) applies to all of them.
   */
  readonly trustedNetworks?: string;
}

export interface DovecotServer {
  readonly host: string;
  readonly port: number;
  /** Implicit-TLS port when started with `tls`, else null. */
  readonly tlsPort: number | null;
  readonly dir: string;
  readonly users: readonly DovecotUser[];
  readonly master: DovecotUser;
  readonly logFile: string;
  readonly pid: number | undefined;
  /** Stop it (SIGTERM to the PID we started), e.g. to simulate an outage. */
  stop(): Promise<void>;
  /** Start it again on the same port. */
  start(): Promise<void>;
  /** Stop and remove the temp dir. */
  cleanup(): Promise<void>;
  /** Deliver messages straight into the user's maildir (fast; Dovecot indexes them on next access). */
  fillMailbox(user: string, messages: readonly (string | Buffer)[]): void;
}

export const DEFAULT_USERS: readonly DovecotUser[] = [
  { user: 'alice@example.com', password: 'alice-pw' },
  { user: 'bob@example.com', password: 'bob-pw' },
];
export const DEFAULT_MASTER: DovecotUser = { user: 'mwmaster', password: 'master-pw' };

/**
 * Which accounts Dovecot runs as. As root (CI), Dovecot refuses uid 0 for mail processes, so mail is
 * owned by `nobody` and the internal/login users are Debian's `dovecot`/`dovenull`; as an ordinary
 * user, everything runs as that user.
 */
function accounts(): { internal: string; login: string; uid: number; gid: number } {
  const me = os.userInfo();
  if (me.uid !== 0) return { internal: me.username, login: me.username, uid: me.uid, gid: me.gid };
  const passwd = fs.readFileSync('/etc/passwd', 'utf8');
  const has = (name: string): boolean => passwd.split('\n').some((l) => l.startsWith(`${name}:`));
  return {
    internal: has('dovecot') ? 'dovecot' : 'nobody',
    login: has('dovenull') ? 'dovenull' : 'nobody',
    uid: 65534,
    gid: 65534,
  };
}

function writeConfig(
  dir: string,
  ports: { plain: number; tls: number | null },
  users: readonly DovecotUser[],
  master: DovecotUser,
  extra: string,
  tls: DovecotOptions['tls'],
  trustedNetworks: string,
): string {
  const port = ports.plain;
  const acc = accounts();
  fs.writeFileSync(path.join(dir, 'users'), users.map((u) => `${u.user}:{PLAIN}${u.password}\n`).join(''));
  fs.writeFileSync(path.join(dir, 'masters'), `${master.user}:{PLAIN}${master.password}\n`);
  const mail = path.join(dir, 'mail');
  fs.mkdirSync(mail, { recursive: true });
  fs.mkdirSync(path.join(dir, 'run'), { recursive: true });
  fs.chmodSync(dir, 0o755);
  fs.chownSync(mail, acc.uid, acc.gid);
  const conf = `# written by test/harness/dovecot.ts
base_dir = ${dir}/run
state_dir = ${dir}/state
instance_name = mailwarden-test-${port}
log_path = ${dir}/dovecot.log
listen = 127.0.0.1
protocols = imap
${tls ? `ssl = yes\nssl_cert = <${tls.cert}\nssl_key = <${tls.key}` : 'ssl = no'}
disable_plaintext_auth = no
auth_mechanisms = plain login
# x-originating-ip from the proxy is honoured only from trusted networks (and no auth penalty).
login_trusted_networks = ${trustedNetworks}
auth_master_user_separator = *
default_internal_user = ${acc.internal}
default_login_user = ${acc.login}
mail_location = maildir:${mail}/%u
imap_id_log = *
auth_verbose = yes
passdb {
  driver = passwd-file
  args = scheme=PLAIN ${dir}/masters
  master = yes
  pass = yes
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN ${dir}/users
}
userdb {
  driver = static
  args = uid=${acc.uid} gid=${acc.gid} home=${mail}/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = ${port}
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = ${ports.tls ?? 0}
    ssl = ${ports.tls ? 'yes' : 'no'}
  }
}
protocol imap {
  mail_max_userip_connections = 100000
}
${extra}
`;
  const file = path.join(dir, 'dovecot.conf');
  fs.writeFileSync(file, conf);
  return file;
}

export async function startDovecot(options: DovecotOptions = {}): Promise<DovecotServer> {
  const bin = findProgram('dovecot');
  if (!bin) throw new Error('dovecot not found: apt-get install dovecot-imapd');
  const users = options.users ?? DEFAULT_USERS;
  const master = options.master ?? DEFAULT_MASTER;
  const port = await freePort();
  const tlsPort = options.tls ? await freePort() : null;
  const dir = tempDir('dovecot');
  const conf = writeConfig(dir, { plain: port, tls: tlsPort }, users, master, options.extraConfig ?? '', options.tls, options.trustedNetworks ?? '127.0.0.1');
  const logFile = path.join(dir, 'dovecot.log');
  const acc = accounts();
  let child: ChildProcess | null = null;

  const start = async (): Promise<void> => {
    const c = spawn(bin, ['-F', '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = c;
    let stderr = '';
    c.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      await Promise.race([
        waitForPort(port, '127.0.0.1', 10000),
        new Promise((_, reject) => c.once('exit', (code) => reject(new Error(`dovecot exited ${code}: ${stderr}`)))),
      ]);
    } catch (err) {
      const log = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').slice(-2000) : '';
      throw new Error(`${(err as Error).message}\n${log}`);
    }
  };
  const stop = async (): Promise<void> => {
    const c = child;
    child = null;
    await stopProcess(c);
  };

  const fillMailbox = (user: string, messages: readonly (string | Buffer)[]): void => {
    const box = path.join(dir, 'mail', user);
    for (const sub of ['cur', 'new', 'tmp']) fs.mkdirSync(path.join(box, sub), { recursive: true });
    const stamp = Date.now();
    messages.forEach((m, i) => {
      const name = `${stamp}.M${i}P${process.pid}.mailwarden-test,S=${Buffer.byteLength(m)}:2,`;
      fs.writeFileSync(path.join(box, 'cur', name), m);
    });
    chownTree(path.join(dir, 'mail'), acc.uid, acc.gid);
  };

  await start();
  return {
    host: '127.0.0.1',
    port,
    tlsPort,
    dir,
    users,
    master,
    logFile,
    get pid() {
      return (child as ChildProcess | null)?.pid;
    },
    start,
    stop,
    cleanup: async () => {
      await stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
    fillMailbox,
  };
}

function chownTree(root: string, uid: number, gid: number): void {
  fs.chownSync(root, uid, gid);
  for (const entry of fs.readdirSync(root, { withFileTypes: true })) {
    const p = path.join(root, entry.name);
    if (entry.isDirectory()) chownTree(p, uid, gid);
    else fs.chownSync(p, uid, gid);
  }
}

/** A small RFC 5322 message of about `bytes` octets (CRLF line ends). */
export function makeMessage(subject: string, bytes = 200): string {
  const head = `From: sender@example.com\r\nTo: alice@example.com\r\nSubject: ${subject}\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <${subject.replace(/\W/g, '')}.${Math.random().toString(36).slice(2)}@example.com>\r\n\r\n`;
  const line = 'lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor\r\n';
  let body = '';
  while (head.length + body.length < bytes) body += line;
  return head + body;
}
