// `mailwarden start` (the built command) runs the gateway hooks its config enables, with secrets
// read from a file and an environment variable; a reload (SIGHUP) starts and stops them; SIGTERM
// stops everything. Clients: fetch for nginx's auth_http and Dovecot's policy request, a raw
// socket for Postfix's policy protocol.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { freePort, stopProcess, tempDir, waitForPort } from '../harness/ports';

jest.setTimeout(60000);
const CLI = path.resolve(__dirname, '../../dist/src/cli/index.js');
const SENTENCE = 'This mail app is not enrolled. Ref';

let dir: string;
let child: ChildProcess;
let output = '';
const ports = { nginx: 0, dovecot: 0, postfix: 0 };

function configYaml(postfixEnabled: boolean, dovecotEnabled: boolean): string {
  return `instanceName: hooks-start
store: { type: memory }
identity: { sources: [{ type: app-password }] }
hooks:
  nginx:
    listen: { host: 127.0.0.1, port: ${ports.nginx} }
    secret: { file: nginx.secret }
    backends: { imap: { host: 127.0.0.1, port: 143 } }
  dovecot:
    enabled: ${dovecotEnabled}
    listen: { host: 127.0.0.1, port: ${ports.dovecot} }
    apiKey: { env: HOOKS_START_DOVECOT_KEY }
  postfix:
    enabled: ${postfixEnabled}
    listen: { host: 127.0.0.1, port: ${ports.postfix} }
logging: { level: info }
`;
}

beforeAll(async () => {
  dir = tempDir('hooks-start');
  for (const name of Object.keys(ports) as (keyof typeof ports)[]) ports[name] = await freePort();
  fs.writeFileSync(path.join(dir, 'nginx.secret'), 'secret-from-a-file\n');
  fs.writeFileSync(
    path.join(dir, 'policy.yaml'),
    `unidentified:\n  action: deny\n  message: "${SENTENCE} {refId}."\nchecks: []\n`,
  );
  fs.writeFileSync(path.join(dir, 'mailwarden.yaml'), configYaml(true, false));
  child = spawn(process.execPath, [CLI, 'start', '--config', path.join(dir, 'mailwarden.yaml')], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, HOOKS_START_DOVECOT_KEY: 'key-from-the-environment' },
  });
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`mailwarden start exited ${code}:\n${output}`))));
  // Loading the whole CLI on a loaded machine can take several seconds.
  await Promise.race([Promise.all([waitForPort(ports.nginx, '127.0.0.1', 30000), waitForPort(ports.postfix, '127.0.0.1', 30000)]), exited]).catch((err: Error) => {
    throw new Error(`${err.message}\n${output}`);
  });
}, 40000);

afterAll(async () => {
  await stopProcess(child);
  fs.rmSync(dir, { recursive: true, force: true });
});

const nginxAsk = (secret: string) =>
  fetch(`http://127.0.0.1:${ports.nginx}/nginx/auth`, {
    headers: {
      'X-Mailwarden-Key': secret,
      'Auth-Method': 'plain',
      'Auth-User': 'alice@example.com',
      'Auth-Pass': 'her-own-password',
      'Auth-Protocol': 'imap',
      'Auth-Login-Attempt': '1',
      'Client-IP': '203.0.113.7',
    },
  });

function postfixAsk(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    socket.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.endsWith('\n\n')) {
        socket.end();
        resolve(text.trim());
      }
    });
    socket.on('error', reject);
    socket.write('request=smtpd_access_policy\nprotocol_state=RCPT\nsasl_username=alice@example.com\nclient_address=127.0.0.1\ninstance=1.1\n\n');
  });
}

const refused = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });

test('the nginx hook answers with the policy sentence, using the secret read from the file', async () => {
  const res = await nginxAsk('secret-from-a-file');
  expect(res.status).toBe(200);
  expect(res.headers.get('auth-status')).toContain(`[CONTACTADMIN] ${SENTENCE}`);
  const wrong = await nginxAsk('not-the-secret');
  expect(wrong.headers.get('auth-status')).not.toBe('OK');
  expect(wrong.status).toBe(401);
});

test('the Postfix hook answers 550 5.7.1 with the sentence; the disabled Dovecot hook does not listen', async () => {
  expect(await postfixAsk(ports.postfix)).toMatch(new RegExp(`^action=550 5\\.7\\.1 ${SENTENCE}`));
  expect(await refused(ports.dovecot)).toBe(true);
});

test('a reload (SIGHUP) stops the hook it disables and starts the one it enables, with its key from the environment', async () => {
  fs.writeFileSync(path.join(dir, 'mailwarden.yaml'), configYaml(false, true));
  child.kill('SIGHUP');
  await waitForPort(ports.dovecot);
  const ask = (key: string) =>
    fetch(`http://127.0.0.1:${ports.dovecot}/dovecot/policy?command=allow`, {
      method: 'POST',
      headers: { 'X-API-Key': key, 'content-type': 'application/json' },
      body: JSON.stringify({ login: 'alice@example.com', protocol: 'imap', remote: '203.0.113.7' }),
    }).then((r) => r.json());
  expect(await ask('key-from-the-environment')).toEqual({ status: -1, msg: expect.stringContaining(SENTENCE) });
  expect(await ask('wrong')).toEqual({ status: -1, msg: expect.stringMatching(/^\[UNAVAILABLE\]/) });
  expect(await refused(ports.postfix)).toBe(true);
  // The nginx hook was not moved: it keeps answering.
  expect((await nginxAsk('secret-from-a-file')).status).toBe(200);
});

test('SIGTERM stops the hooks and mailwarden exits 0', async () => {
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  expect(await exited).toBe(0);
  expect(await refused(ports.nginx)).toBe(true);
  expect(output).not.toMatch(/"level":"error"/);
});
