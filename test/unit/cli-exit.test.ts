// The CLI's exit statuses (docs/errors.md#command-line), --version, `config show` and the audit views.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { main } from '../../src/cli/index';
import { auditMatches, auditRow, parseSince } from '../../src/cli/audit';
import { EXIT } from '../../src/core/exit-codes';
import { VERSION } from '../../src/core/version';
import { freePort, tempDir } from '../harness/ports';

let stdout: string[];
let stderr: string[];
beforeEach(() => {
  stdout = [];
  stderr = [];
  jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => stdout.push(String(chunk)) > 0);
  jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => stderr.push(String(chunk)) > 0);
});
afterEach(() => jest.restoreAllMocks());

const cli = (...args: string[]) => main(['node', 'mailwarden', ...args]);

/** An admin API that answers every request with this status and error code. */
async function answering(status: number, code: string): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer((_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { code, message: `answered ${status}` } }));
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

test('--version prints package.json version, status 0', async () => {
  expect(await cli('--version')).toBe(0);
  expect(stdout.join('')).toBe(`${JSON.parse(fs.readFileSync('package.json', 'utf8')).version}\n`);
  expect(VERSION).toMatch(/^\d+\.\d+\.\d+/);
});

test.each<[string, string[], number]>([
  ['an unknown option is a usage error', ['device', 'show', 'x', '--bogus'], EXIT.usage],
  ['an unknown command is a usage error', ['nope'], EXIT.usage],
  ['a bad option value is a usage error', ['audit', 'tail', '--count', '0', '--url', 'http://127.0.0.1:1', '--token', 't'], EXIT.usage],
  ['audit search without a criterion is a usage error', ['audit', 'search', '--url', 'http://127.0.0.1:1', '--token', 't'], EXIT.usage],
  ['a missing config file for the admin API is a configuration error', ['device', 'list', '--config', '/nonexistent/mailwarden.yaml'], EXIT.config],
])('%s', async (_name, args, status) => {
  expect(await cli(...args)).toBe(status);
});

test('an invalid configuration exits 78', async () => {
  const dir = tempDir('cli-exit');
  fs.writeFileSync(path.join(dir, 'mailwarden.yaml'), 'store: { type: nosuch }\n');
  expect(await cli('config', 'check', '--config', path.join(dir, 'mailwarden.yaml'))).toBe(EXIT.config);
  expect(await cli('config', 'show', '--config', path.join(dir, 'mailwarden.yaml'))).toBe(EXIT.config);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('start refuses a production footgun with 78, naming file, line and key (issue 8 item 10)', async () => {
  // 192.0.2.1 (RFC 5737, documentation only): never bindable here, so nothing listens beyond loopback.
  const dir = tempDir('cli-exit');
  fs.writeFileSync(path.join(dir, 'policy.yaml'), 'checks:\n  - plugin: require-device\n');
  const config = 'store: { type: memory }\nimap:\n  listeners: [{ host: 192.0.2.1, port: 1143, tls: none }]\n  upstream: { host: 127.0.0.1, port: 143, tls: none }\n';
  fs.writeFileSync(path.join(dir, 'mailwarden.yaml'), config);
  try {
    expect(await cli('start', '--config', path.join(dir, 'mailwarden.yaml'))).toBe(EXIT.config);
    expect(stderr.join('')).toMatch(/mailwarden\.yaml:3: imap\.listeners\[0\]\.tls: none on 192\.0\.2\.1:1143.*`insecure: \[plaintext-listener\]`/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('an admin API that cannot be reached exits 69; one that answers 503 too', async () => {
  const port = await freePort();
  expect(await cli('kill-switch', 'on', '--url', `http://127.0.0.1:${port}`, '--token', 't')).toBe(EXIT.unreachable);
  const api = await answering(503, 'STORE_UNAVAILABLE');
  expect(await cli('device', 'show', 'd1', '--url', api.url, '--token', 't')).toBe(EXIT.unreachable);
  await api.close();
});

test.each([
  [401, 'UNAUTHORIZED'],
  [404, 'DEVICE_NOT_FOUND'],
  [409, 'NO_APP_PASSWORD_SOURCE'],
])('an operation the instance refuses (%i %s) exits 77 with one line', async (status, code) => {
  const api = await answering(status, code);
  expect(await cli('device', 'show', 'd1', '--url', api.url, '--token', 't')).toBe(EXIT.refused);
  expect(stderr.join('')).toBe(`mailwarden: answered ${status} (${status} ${code})\n`);
  await api.close();
});

test('config show: the effective configuration with defaults, secrets masked', async () => {
  expect(await cli('config', 'show', '--config', 'config/mailwarden.yaml')).toBe(0);
  const text = stdout.join('');
  expect(text).toMatch(/^# effective configuration of config\/mailwarden\.yaml/);
  expect(text).toContain('outageLastKnownMaxSeconds: 300');
  expect(text).toContain('format: auto');
  expect(text).toMatch(/masterPassword: "\[redacted\]"/);
  expect(text).not.toContain('change-me-master-password');
  expect(text).not.toContain('change-me-admin-token');
  expect(text).toContain('id: no-tiktok-on-mobiles');
  stdout.length = 0;
  expect(await cli('config', 'show', '--config', 'config/mailwarden.yaml', '--json')).toBe(0);
  expect(JSON.parse(stdout.join('')).policy.version).toMatch(/^[0-9a-f]{12}$/);
});

test('config show masks the gateway hooks\' secrets (secret, apiKey, clientSecret, masterPassword)', async () => {
  const dir = tempDir('config-show-hooks');
  fs.copyFileSync('config/policy.yaml', path.join(dir, 'policy.yaml'));
  fs.writeFileSync(path.join(dir, 'doveadm.key'), 'doveadm-key-from-file\n');
  fs.writeFileSync(
    path.join(dir, 'mailwarden.yaml'),
    'hooks:\n' +
      '  nginx: { listen: { host: 127.0.0.1, port: 1 }, secret: nginx-shared-secret, backends: { imap: { host: 127.0.0.1, port: 143, masterUser: m, masterPassword: master-pw-42 } } }\n' +
      '  dovecot: { listen: { host: 127.0.0.1, port: 2 }, apiKey: dovecot-policy-key, passdb: { clientId: dovecot, clientSecret: introspection-secret },\n' +
      '             doveadm: { url: "http://127.0.0.1:8080/doveadm/v1", apiKey: { file: doveadm.key } } }\n',
  );
  try {
    expect(await cli('config', 'show', '--config', path.join(dir, 'mailwarden.yaml'))).toBe(0);
    const text = stdout.join('');
    expect(text).toContain('apiKeyHeader: X-API-Key');
    for (const secret of ['nginx-shared-secret', 'master-pw-42', 'dovecot-policy-key', 'introspection-secret', 'doveadm-key-from-file']) expect(text).not.toContain(secret);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

describe('audit views', () => {
  const decision = {
    id: '7',
    event: { msg: 'decision', at: '2026-12-03T08:22:46.039Z', action: 'deny', reasonCode: 'BANNED_APP', protocol: 'imap', user: 'alice@example.com', deviceId: 'iphone-1', refId: 'MW-CZAW75AG' },
  };
  const adminEvent = { id: '8', event: { msg: 'admin', at: '2026-12-03T09:00:00.000Z', operation: 'kill-switch', on: true } };

  test('a row per event: time, what, protocol, user, device, reference', () => {
    expect(auditRow(decision)).toEqual(['2026-12-03 08:22:46Z', 'DENY BANNED_APP', 'imap', 'alice@example.com', 'iphone-1', 'MW-CZAW75AG']);
    expect(auditRow(adminEvent)).toEqual(['2026-12-03 09:00:00Z', 'admin kill-switch', '', '', '', '']);
  });

  test('search criteria combine; --since keeps newer events only', () => {
    expect(auditMatches(decision, { ref: 'MW-CZAW75AG' })).toBe(true);
    expect(auditMatches(decision, { ref: 'MW-AAAAAAAA' })).toBe(false);
    expect(auditMatches(decision, { user: 'ALICE@example.com', device: 'iphone-1' })).toBe(true);
    expect(auditMatches(decision, { user: 'alice@example.com', device: 'iphone-2' })).toBe(false);
    const now = Date.parse('2026-12-03T09:00:00Z');
    expect(auditMatches(decision, { since: parseSince('1h', now) })).toBe(true);
    expect(auditMatches(decision, { since: parseSince('30m', now) })).toBe(false);
    expect(parseSince('2026-12-03T08:00:00Z')).toBe(Date.parse('2026-12-03T08:00:00Z'));
    expect(() => parseSince('yesterday')).toThrow(/--since must be like 2h/);
  });
});
