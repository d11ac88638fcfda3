// Starts a real Postfix as the upstream submission server for integration tests: a private
// config_directory and queue in a temp dir, smtpd on a free loopback port, virtual maildirs for the
// test users, optional Dovecot SASL (for AUTH) and XCLIENT from loopback (for mailwarden).
// Needs root (master(8) drops privileges to the `postfix` account), as CI runs the tests.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { findProgram, freePort, tempDir, waitForPort, stopProcess } from './ports';

export interface PostfixOptions {
  /** Mailbox addresses in the virtual domain example.com (default alice@ and bob@). */
  readonly mailboxes?: readonly string[];
  /** Dovecot's auth socket (absolute path): enables AUTH through Dovecot SASL. */
  readonly saslSocket?: string;
  /** Clients allowed to send XCLIENT (smtpd_authorized_xclient_hosts). */
  readonly xclientHosts?: readonly string[];
  /** Server certificate and key (PEM files) for STARTTLS. */
  readonly tls?: { readonly cert: string; readonly key: string };
  /** Lines for main.cf (a documented block); a parameter set here replaces the harness's own line. */
  readonly extraMainCf?: string;
  /** Entries appended to master.cf (a documented service). */
  readonly extraMasterCf?: string;
  /** Start is complete when this port accepts too (an extra master.cf service). */
  readonly waitForPort?: number;
  /** Runs once the private folder (queue in `dir`/queue) exists, before Postfix starts (e.g. a SASL socket in it). */
  readonly beforeStart?: (dir: string) => Promise<void>;
}

export interface PostfixServer {
  readonly host: string;
  readonly port: number;
  readonly dir: string;
  readonly logFile: string;
  /** Messages delivered to a mailbox, oldest first. */
  delivered(address: string): Buffer[];
  /** Resolves once the mailbox holds at least `count` messages. */
  waitForDelivery(address: string, count: number, timeoutMs?: number): Promise<Buffer[]>;
  /** The mail log so far. */
  log(): string;
  stop(): Promise<void>;
  start(): Promise<void>;
  cleanup(): Promise<void>;
}

function account(name: string): { uid: number; gid: number } {
  const line = fs
    .readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  if (!line) throw new Error(`no "${name}" account: apt-get install postfix`);
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

function groupId(name: string): number {
  const line = fs
    .readFileSync('/etc/group', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  if (!line) throw new Error(`no "${name}" group: apt-get install postfix`);
  return Number(line.split(':')[2]);
}

/** Postfix daemons used by submission to virtual mailboxes; chroot off (column 5 = n). */
const MASTER_CF = `cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
`;

/** The queue layout `postfix check` would create (postfix-files), made directly: much faster. */
function makeQueue(queue: string): void {
  const pf = account('postfix');
  const postdrop = groupId('postdrop');
  fs.mkdirSync(queue, { mode: 0o755 });
  for (const sub of ['active', 'bounce', 'corrupt', 'defer', 'deferred', 'flush', 'hold', 'incoming', 'private', 'saved', 'trace', 'pid']) {
    fs.mkdirSync(path.join(queue, sub), { mode: 0o700 });
    if (sub !== 'pid') fs.chownSync(path.join(queue, sub), pf.uid, 0);
  }
  for (const [sub, mode] of [
    ['maildrop', 0o730],
    ['public', 0o710],
  ] as const) {
    fs.mkdirSync(path.join(queue, sub));
    fs.chownSync(path.join(queue, sub), pf.uid, postdrop);
    fs.chmodSync(path.join(queue, sub), mode);
  }
}

function mainCf(dir: string, options: PostfixOptions, mailboxes: readonly string[]): string {
  const pf = account('postfix');
  const sasl = options.saslSocket
    ? `smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = ${options.saslSocket}
`
    : '';
  return `# written by test/harness/postfix.ts
compatibility_level = 3.6
queue_directory = ${dir}/queue
data_directory = ${dir}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = upstream.test
mydestination =
# Nothing is trusted by address: relaying needs SASL (or XCLIENT LOGIN from mailwarden).
mynetworks = 192.0.2.1/32
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
virtual_mailbox_domains = example.com
virtual_mailbox_base = ${dir}/mail
virtual_mailbox_maps = inline:{ ${mailboxes.map((m) => `${m}=${m}/`).join(', ')} }
virtual_uid_maps = static:${pf.uid}
virtual_gid_maps = static:${pf.gid}
smtpd_authorized_xclient_hosts = ${(options.xclientHosts ?? []).join(', ')}
${sasl}${options.tls ? `smtpd_tls_cert_file = ${options.tls.cert}\nsmtpd_tls_key_file = ${options.tls.key}\n` : ''}smtputf8_enable = yes
message_size_limit = 104857600
virtual_mailbox_limit = 0
maillog_file = ${dir}/maillog
maillog_file_prefixes = ${dir}
alias_maps =
alias_database =
`;
}

/** Appends `extra` to main.cf, dropping the harness's lines for parameters `extra` sets (Postfix warns about a parameter set twice). */
function withExtraMainCf(base: string, extra: string): string {
  const names = new Set([...extra.matchAll(/^([a-z_0-9]+)\s*=/gm)].map((m) => m[1]));
  const kept = base.split('\n').filter((line) => !names.has(/^([a-z_0-9]+)\s*=/.exec(line)?.[1] ?? ''));
  return `${kept.join('\n')}${extra}`;
}

export async function startPostfix(options: PostfixOptions = {}): Promise<PostfixServer> {
  const master = findProgram('postfix') ? '/usr/lib/postfix/sbin/master' : null;
  if (!master || !fs.existsSync(master)) throw new Error('postfix not found: apt-get install postfix');
  if (process.getuid?.() !== 0) throw new Error('a private Postfix needs root (master(8) switches to the postfix account)');
  const mailboxes = options.mailboxes ?? ['alice@example.com', 'bob@example.com'];
  const port = await freePort();
  const dir = tempDir('postfix');
  fs.chmodSync(dir, 0o755);
  const conf = path.join(dir, 'conf');
  fs.mkdirSync(conf);
  const pf = account('postfix');
  for (const sub of ['data', 'mail']) {
    fs.mkdirSync(path.join(dir, sub));
    fs.chownSync(path.join(dir, sub), pf.uid, pf.gid);
  }
  makeQueue(path.join(dir, 'queue'));
  fs.writeFileSync(path.join(conf, 'main.cf'), withExtraMainCf(mainCf(dir, options, mailboxes), options.extraMainCf ?? ''));
  fs.writeFileSync(path.join(conf, 'master.cf'), `127.0.0.1:${port} inet n - n - - smtpd\n${MASTER_CF}${options.extraMasterCf ?? ''}`);
  const logFile = path.join(dir, 'maillog');
  let child: ChildProcess | null = null;
  await options.beforeStart?.(dir);

  const start = async (): Promise<void> => {
    // -d: stay in the foreground, so the harness owns the PID and stops exactly this instance.
    const c = spawn(master, ['-c', conf, '-d'], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = c;
    let stderr = '';
    c.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      await Promise.race([
        waitForPort(port, '127.0.0.1', 15000).then(async () => {
          if (options.waitForPort) await waitForPort(options.waitForPort, '127.0.0.1', 15000);
        }),
        new Promise((_, reject) => c.once('exit', (code) => reject(new Error(`postfix master exited ${code}: ${stderr}`)))),
      ]);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').slice(-2000) : ''}`);
    }
  };
  const stop = async (): Promise<void> => {
    const c = child;
    child = null;
    await stopProcess(c);
  };
  const delivered = (address: string): Buffer[] => {
    const box = path.join(dir, 'mail', address);
    const files = ['new', 'cur'].flatMap((sub) => {
      const d = path.join(box, sub);
      return fs.existsSync(d) ? fs.readdirSync(d).map((f) => path.join(d, f)) : [];
    });
    // Maildir names start with the delivery time in seconds, then a unique part: sort by mtime.
    return files.sort((a, b) => fs.statSync(a).mtimeMs - fs.statSync(b).mtimeMs).map((f) => fs.readFileSync(f));
  };

  await start();
  return {
    host: '127.0.0.1',
    port,
    dir,
    logFile,
    delivered,
    async waitForDelivery(address, count, timeoutMs = 15000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const messages = delivered(address);
        if (messages.length >= count) return messages;
        if (Date.now() > deadline) throw new Error(`${address} has ${messages.length} messages, expected ${count}\n${fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').slice(-3000) : ''}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    log: () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : ''),
    start,
    stop,
    cleanup: async () => {
      await stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
