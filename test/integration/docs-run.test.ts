// Docs that run: every Dovecot, Postfix and nginx configuration block in docs/ (fences tagged
// `dovecot`, `postfix-main.cf`, `postfix-master.cf`, `nginx`; conventions in docs/README.md) is
// pasted into the real daemon. A block that does not start it, makes it warn, or does not give the
// behaviour the page describes fails. Only the example addresses, ports and /etc paths are swapped
// for the test's loopback addresses, free ports and temp files.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import path from 'node:path';
import { startDovecot, type DovecotServer } from '../harness/dovecot';
import { startPostfix, type PostfixServer } from '../harness/postfix';
import { findProgram, freePort, tempDir, waitForPort, stopProcess } from '../harness/ports';
import { spawn, type ChildProcess } from 'node:child_process';

const DOCS = path.resolve(__dirname, '../../docs');
const KINDS = ['dovecot', 'postfix-main.cf', 'postfix-master.cf', 'nginx'] as const;
type Kind = (typeof KINDS)[number];

interface DocBlock {
  readonly page: string;
  readonly line: number;
  readonly kind: Kind;
  readonly text: string;
}

/**
 * Every fenced block of docs/*.md with its info string and first line, and the NAME of a
 * `<!-- mailwarden-test: NAME -->` line right before it (such a block is read by the test that
 * names it, with the setup its page describes: the gateway-hook tests, docs/hooks.md).
 */
function fencedBlocks(): { page: string; line: number; info: string; text: string; marker?: string }[] {
  const out: { page: string; line: number; info: string; text: string; marker?: string }[] = [];
  for (const page of fs.readdirSync(DOCS).filter((f) => f.endsWith('.md')).sort()) {
    const lines = fs.readFileSync(path.join(DOCS, page), 'utf8').split('\n');
    for (let i = 0; i < lines.length; i++) {
      const open = /^(\s*)```(\S*)\s*$/.exec(lines[i]);
      if (!open) continue;
      const indent = open[1].length;
      const body: string[] = [];
      let j = i + 1;
      for (; j < lines.length && !/^\s*```\s*$/.test(lines[j]); j++) body.push(lines[j].slice(indent));
      const marker = /^<!-- mailwarden-test: ([\w-]+) -->$/.exec(lines[i - 1] ?? '')?.[1];
      out.push({ page, line: i + 1, info: open[2], text: `${body.join('\n')}\n`, ...(marker ? { marker } : {}) });
      i = j;
    }
  }
  return out;
}

const blocks: DocBlock[] = fencedBlocks()
  .filter((b): b is typeof b & { info: Kind } => (KINDS as readonly string[]).includes(b.info))
  .map((b) => ({ page: b.page, line: b.line, kind: b.info, text: b.text }));
const where = (b: DocBlock): string => `docs/${b.page}:${b.line}`;

/** The docs' example values (docs/README.md) → the test's; `spool` stands for /var/spool/postfix. */
function substitute(text: string, files: string, spool = path.join(files, 'spool')): string {
  return text
    .replace(/\/var\/spool\/postfix/g, spool)
    .replace(/\b10\.0\.0\.5\b/g, '127.0.0.1')
    .replace(/\b10\.0\.0\.1\b/g, '127.0.0.1')
    .replace(/\/etc\/(dovecot|postfix|nginx|mailwarden)\/([\w.-]+)/g, (_m, _d: string, name: string) => path.join(files, name));
}

test('configuration blocks in docs/ are tagged, so this test runs them', () => {
  // A Dovecot/Postfix/nginx block without its tag would silently escape this test.
  const looksLikeDaemonConfig = /^\s*(passdb|userdb|service|protocol)\s*\{|^\s*(login_trusted_networks|auth_master_user_separator|smtpd_\w+|mynetworks)\s*=|^\d+\s+inet\s|^\s*(mail|auth_http|proxy_pass)\b.*[{;]\s*$/m;
  const untagged = fencedBlocks().filter((b) => !b.marker && !(KINDS as readonly string[]).includes(b.info) && !['yaml', 'sh', 'json', 'xml'].includes(b.info) && looksLikeDaemonConfig.test(b.text));
  expect(untagged.map((b) => `docs/${b.page}:${b.line}`)).toEqual([]);
  expect(blocks.filter((b) => b.kind === 'dovecot').length).toBeGreaterThanOrEqual(2);
  expect(blocks.filter((b) => b.kind === 'postfix-main.cf').length).toBeGreaterThanOrEqual(1);
  expect(blocks.filter((b) => b.kind === 'postfix-master.cf').length).toBeGreaterThanOrEqual(1);
});

test('every block marked for a named test is read by that test', () => {
  const tests = fs
    .readdirSync(__dirname)
    .filter((f) => f.endsWith('.ts'))
    .map((f) => fs.readFileSync(path.join(__dirname, f), 'utf8'))
    .join('\n');
  const marked = fencedBlocks().filter((b) => b.marker);
  expect(marked.length).toBeGreaterThanOrEqual(1);
  expect(marked.filter((b) => !tests.includes(`docBlock('${b.marker}'`)).map((b) => `docs/${b.page}:${b.line} (${b.marker})`)).toEqual([]);
});

// ---------------------------------------------------------------- Dovecot

const MASTER_PASSWORD = 'docs-master-pw';

/**
 * The files a Dovecot block names, made as its page tells the operator: the master-users line is
 * the page's own `echo "mailwarden:$(doveadm pw -s SCHEME -p '…')…" > /etc/dovecot/master-users`.
 */
function dovecotFiles(block: DocBlock, dir: string, text: string): void {
  if (!text.includes('master-users')) return;
  const page = fs.readFileSync(path.join(DOCS, block.page), 'utf8');
  const recipe = /echo "mailwarden:\$\(doveadm pw -s ([\w-]+) -p '[^']*'\)([^"]*)" > \/etc\/dovecot\/master-users/.exec(page);
  if (!recipe) throw new Error(`docs/${block.page} names /etc/dovecot/master-users but does not show how to write it`);
  const hash = spawnSync('doveadm', ['pw', '-s', recipe[1], '-p', MASTER_PASSWORD], { encoding: 'utf8' }).stdout.trim();
  expect(hash).toMatch(/^\{[\w-]+\}\S+$/);
  fs.writeFileSync(path.join(dir, 'master-users'), `mailwarden:${hash}${substitute(recipe[2], dir)}\n`);
}

/** One IMAP exchange on a raw socket: lines in, every line out until `L OK|NO|BAD`. */
function imapExchange(port: number, commands: string, localAddress = '127.0.0.1'): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress });
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no tagged answer from Dovecot:\n${text}`));
    }, 10_000);
    socket.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.startsWith('* OK') && !text.includes('\r\nI ') && !socket.writableEnded && commands) {
        socket.write(commands);
        commands = '';
      }
      if (/^L (OK|NO|BAD)/m.test(text)) {
        clearTimeout(timer);
        socket.end('Z LOGOUT\r\n');
        resolve(text);
      }
    });
    socket.on('error', reject);
  });
}

const dovecotBlocks = blocks.filter((b) => b.kind === 'dovecot');
describe.each(dovecotBlocks.map((b) => [where(b), b] as const))('Dovecot block %s', (_where, block) => {
  let dovecot: DovecotServer;
  let files: string;
  beforeAll(async () => {
    files = tempDir('docs-dovecot');
    fs.chmodSync(files, 0o755);
    fs.mkdirSync(path.join(files, 'spool', 'private'), { recursive: true });
    const text = substitute(block.text, files);
    dovecotFiles(block, files, text);
    dovecot = await startDovecot({ extraConfig: `# ${where(block)}\n${text}` });
  });
  afterAll(async () => {
    if (process.env.DOCS_RUN_KEEP_LOG) fs.copyFileSync(dovecot.logFile, `${process.env.DOCS_RUN_KEEP_LOG}-${block.page}-${block.line}.log`);
    await dovecot?.cleanup();
    fs.rmSync(files, { recursive: true, force: true });
  });

  test('Dovecot starts with it and doveconf -n has no warning', () => {
    const conf = spawnSync('doveconf', ['-n', '-c', path.join(dovecot.dir, 'dovecot.conf')], { encoding: 'utf8' });
    expect({ status: conf.status, stderr: conf.stderr.trim() }).toEqual({ status: 0, stderr: '' });
  });

  const masterPassdb = /passdb\s*\{[\s\S]*?master\s*=\s*yes/.test(block.text);
  // A check that does not apply to this block (no master user, no trusted networks) is not registered.
  if (masterPassdb) test('mailwarden logs in as the user with the master user it defines (AUTHENTICATE PLAIN, authzid = user)', async () => {
    const plain = Buffer.from(`alice@example.com\0mailwarden\0${MASTER_PASSWORD}`).toString('base64');
    const reply = await imapExchange(dovecot.port, `I ID ("x-originating-ip" "203.0.113.7" "x-originating-port" "51234")\r\nL AUTHENTICATE PLAIN ${plain}\r\n`);
    expect(reply).toMatch(/^L OK/m);
    const wrong = Buffer.from(`alice@example.com\0mailwarden\0not-the-password`).toString('base64');
    expect(await imapExchange(dovecot.port, `L AUTHENTICATE PLAIN ${wrong}\r\n`)).toMatch(/^L NO/m);
  });

  if (masterPassdb) test('the master user works only from mailwarden\'s own address (127.0.0.2 is refused)', async () => {
    const plain = Buffer.from(`alice@example.com\0mailwarden\0${MASTER_PASSWORD}`).toString('base64');
    expect(await imapExchange(dovecot.port, `L AUTHENTICATE PLAIN ${plain}\r\n`, '127.0.0.2')).toMatch(/^L NO/m);
  });

  const trusted = /login_trusted_networks\s*=/.test(block.text);
  if (trusted) test('x-originating-ip from mailwarden is honoured (login_trusted_networks): Dovecot logs the client address', async () => {
    const plain = Buffer.from(`\0alice@example.com\0alice-pw`).toString('base64');
    expect(await imapExchange(dovecot.port, `I ID ("x-originating-ip" "203.0.113.9" "x-originating-port" "40000")\r\nL AUTHENTICATE PLAIN ${plain}\r\n`)).toMatch(/^L OK/m);
    const deadline = Date.now() + 5000;
    let log = '';
    while (Date.now() < deadline && !/Login: user=<alice@example.com>.*rip=203\.0\.113\.9/.test(log)) {
      await new Promise((r) => setTimeout(r, 100));
      log = fs.readFileSync(dovecot.logFile, 'utf8');
    }
    expect(log).toMatch(/Login: user=<alice@example.com>.*rip=203\.0\.113\.9/);
  });
});

// ---------------------------------------------------------------- Postfix

function swaks(args: string[]): { status: number | null; output: string } {
  const run = spawnSync('swaks', ['--timeout', '15', ...args], { encoding: 'utf8', timeout: 30_000 });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

/** master.cf service ports (`10587 inet …`, `127.0.0.1:10587 inet …`) → free ports, in order. */
async function freeServicePorts(text: string): Promise<{ text: string; ports: number[] }> {
  const ports: number[] = [];
  const lines: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^((?:[\d.]+:)?)(\d+)(\s+inet\s.*)$/.exec(line);
    if (m) {
      const port = await freePort();
      ports.push(port);
      lines.push(`127.0.0.1:${port}${m[3]}`);
    } else lines.push(line);
  }
  return { text: lines.join('\n'), ports };
}

const postfixPages = [...new Set(blocks.filter((b) => b.kind.startsWith('postfix-')).map((b) => b.page))];
describe.each(postfixPages)('Postfix blocks of docs/%s', (page) => {
  const of = (kind: Kind) => blocks.filter((b) => b.page === page && b.kind === kind);
  let postfix: PostfixServer;
  let dovecot: DovecotServer | null = null;
  let files: string;
  let submission: number;
  beforeAll(async () => {
    files = tempDir('docs-postfix');
    fs.chmodSync(files, 0o755);
    const main = of('postfix-main.cf').map((b) => `# ${where(b)}\n${substitute(b.text, files)}`).join('');
    const master = await freeServicePorts(of('postfix-master.cf').map((b) => `# ${where(b)}\n${substitute(b.text, files)}`).join(''));
    expect(master.ports.length).toBeGreaterThanOrEqual(1);
    submission = master.ports[0];
    // The sender map the page names: alice may send as alice@ (postmap builds the hash: table).
    if (main.includes('sender_login')) {
      fs.writeFileSync(path.join(files, 'sender_login'), 'alice@example.com alice@example.com\nbob@example.com bob@example.com\n');
      // postmap reads a main.cf; this machine's /etc/postfix may have none (the harness keeps its own).
      fs.mkdirSync(path.join(files, 'postmap'));
      fs.writeFileSync(path.join(files, 'postmap', 'main.cf'), 'compatibility_level = 3.6\n');
      const built = spawnSync('postmap', ['-c', path.join(files, 'postmap'), `hash:${path.join(files, 'sender_login')}`], { encoding: 'utf8' });
      expect({ status: built.status, stderr: built.stderr }).toEqual({ status: 0, stderr: '' });
    }
    const sasl = /smtpd_sasl_type\s*=\s*dovecot/.test(main);
    // Dovecot answers Postfix's SASL questions on the socket the page's Dovecot block creates,
    // inside Postfix's queue directory: it must be there before smtpd starts.
    const socketBlock = blocks.find((b) => b.page === page && b.kind === 'dovecot' && /unix_listener/.test(b.text));
    if (sasl && !socketBlock) throw new Error(`docs/${page}: smtpd_sasl_type = dovecot, but no Dovecot block with the unix_listener`);
    postfix = await startPostfix({
      extraMainCf: main,
      extraMasterCf: master.text,
      waitForPort: submission,
      beforeStart: async (dir) => {
        if (sasl) dovecot = await startDovecot({ extraConfig: substitute(socketBlock!.text, files, path.join(dir, 'queue')) });
      },
    });
  });
  afterAll(async () => {
    await Promise.all([postfix?.cleanup(), dovecot?.cleanup()]);
    fs.rmSync(files, { recursive: true, force: true });
  });

  test('Postfix starts with them; the submission service greets and offers XCLIENT and AUTH to mailwarden', () => {
    const ehlo = swaks(['--server', `127.0.0.1:${submission}`, '--quit-after', 'EHLO']);
    expect(ehlo.output).toMatch(/<- {2}220 /);
    expect(ehlo.output).toMatch(/<- {2}250-XCLIENT /);
    expect(ehlo.output).toMatch(/<- {2}250-AUTH /);
    expect(ehlo.status).toBe(0);
  });

  test('a message mailwarden relays with XCLIENT LOGIN= is delivered, authenticated as that user', async () => {
    const sent = swaks([
      '--server', `127.0.0.1:${submission}`, '--xclient-addr', '203.0.113.7', '--xclient-login', 'alice@example.com',
      '--from', 'alice@example.com', '--to', 'bob@example.com', '--h-Subject', 'docs-run',
    ]);
    expect(sent.output).toMatch(/<- {2}250 2\.0\.0 Ok: queued/);
    expect(sent.status).toBe(0);
    const [message] = await postfix.waitForDelivery('bob@example.com', 1);
    expect(message.toString()).toContain('Subject: docs-run');
    expect(postfix.log()).toMatch(/client=unknown\[203\.0\.113\.7\], sasl_method=XCLIENT, sasl_username=alice@example\.com/);
  });

  test('reject_sender_login_mismatch: alice may not send as bob', () => {
    const sent = swaks(['--server', `127.0.0.1:${submission}`, '--xclient-login', 'alice@example.com', '--from', 'bob@example.com', '--to', 'bob@example.com']);
    expect(sent.output).toMatch(/<\*\* 553 5\.7\.1 <bob@example\.com>: Sender address rejected: not owned by user alice@example\.com/);
  });

  test('no open relay: mailwarden\'s address without XCLIENT LOGIN or AUTH cannot relay', () => {
    const sent = swaks(['--server', `127.0.0.1:${submission}`, '--from', 'someone@elsewhere.example', '--to', 'someone@elsewhere.example']);
    expect(sent.output).toMatch(/<\*\* 554 5\.7\.1 <someone@elsewhere\.example>: Relay access denied/);
  });

  test('the mail log has no fatal error and no warning', () => {
    expect(postfix.log().split('\n').filter((l) => /(fatal|warning|panic|error):/.test(l))).toEqual([]);
  });
});

// ---------------------------------------------------------------- nginx

/** `listen` ports of a mail block → free ports, with the protocol of the `server { }` each is in. */
async function freeListenPorts(text: string): Promise<{ text: string; listeners: { port: number; protocol: string; tls: boolean }[] }> {
  const listeners: { port: number; protocol: string; tls: boolean }[] = [];
  // Each server { } up to the next one: its `protocol` directive may come before or after `listen`.
  const servers = text.split(/(?=^\s*server\s*\{)/m);
  const out: string[] = [];
  for (const server of servers) {
    const protocol = /^\s*protocol\s+(\w+)\s*;/m.exec(server)?.[1] ?? 'imap';
    const lines: string[] = [];
    for (const line of server.split('\n')) {
      const m = /^(\s*listen\s+)(?:[\d.]+:)?(\d+)(.*)$/.exec(line);
      if (!m) {
        lines.push(line);
        continue;
      }
      const port = await freePort();
      // `listen 993 ssl`: TLS from the first byte (implicit TLS), the greeting comes inside it.
      listeners.push({ port, protocol, tls: /\sssl\b/.test(m[3]) });
      lines.push(`${m[1]}127.0.0.1:${port}${m[3]}`);
    }
    out.push(lines.join('\n'));
  }
  return { text: out.join(''), listeners };
}

const nginxBlocks = blocks.filter((b) => b.kind === 'nginx');
(nginxBlocks.length > 0 ? describe.each(nginxBlocks.map((b) => [where(b), b] as const)) : describe.skip.each([['none', null]]))('nginx block %s', (_where, block) => {
  let nginx: ChildProcess | null = null;
  let dir: string;
  let listeners: { port: number; protocol: string; tls: boolean }[] = [];
  beforeAll(async () => {
    dir = tempDir('docs-nginx');
    const mail = await freeListenPorts(substitute(block!.text, dir));
    listeners = mail.listeners;
    for (const name of ['cert.pem', 'key.pem']) if (mail.text.includes(path.join(dir, name))) makeSelfSigned(dir);
    fs.writeFileSync(
      path.join(dir, 'nginx.conf'),
      `load_module /usr/lib/nginx/modules/ngx_mail_module.so;\ndaemon off;\nworker_processes 1;\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log info;\nevents { worker_connections 64; }\n# ${where(block!)}\n${mail.text}`,
    );
  });
  afterAll(async () => {
    await stopProcess(nginx);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('nginx -t accepts it, nginx starts and greets on every listen', async () => {
    const bin = findProgram('nginx');
    if (!bin) throw new Error('nginx not found: apt-get install nginx libnginx-mod-mail');
    const check = spawnSync(bin, ['-t', '-p', dir, '-c', path.join(dir, 'nginx.conf')], { encoding: 'utf8' });
    expect({ status: check.status, output: check.stderr.split('\n').filter((l) => /\[(warn|emerg|alert|crit)\]/.test(l)) }).toEqual({ status: 0, output: [] });
    nginx = spawn(bin, ['-p', dir, '-c', path.join(dir, 'nginx.conf')], { stdio: 'ignore' });
    expect(listeners.length).toBeGreaterThanOrEqual(1);
    for (const l of listeners) {
      await waitForPort(l.port);
      const greeting = await new Promise<string>((resolve, reject) => {
        // The docs' certificate is the test's self-signed one: only the greeting is checked here.
        const socket = l.tls ? tls.connect({ port: l.port, host: '127.0.0.1', rejectUnauthorized: false }) : net.connect(l.port, '127.0.0.1');
        socket.once('data', (d: Buffer) => {
          socket.destroy();
          resolve(d.toString());
        });
        socket.once('error', reject);
      });
      expect({ port: l.port, greeting: greeting.slice(0, 4) }).toEqual({ port: l.port, greeting: { imap: '* OK', smtp: '220 ', pop3: '+OK ' }[l.protocol] });
    }
  });
});

function makeSelfSigned(dir: string): void {
  if (fs.existsSync(path.join(dir, 'cert.pem'))) return;
  const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=mail.example.com', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { encoding: 'utf8' });
  expect(made.status).toBe(0);
}
