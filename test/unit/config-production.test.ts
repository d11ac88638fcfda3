// Production footguns refused at load (issue 8 item 10): the built-in app-password key with a Redis
// store, change-me secrets in a production-looking setup, plaintext mail listeners off loopback.
// Each refusal names the file, line and key; `insecure` allows them explicitly; the example config
// and the container template still load.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfigFile } from '../../src/core/config';
import { ConfigError } from '../../src/core/errors';

const ROOT = path.resolve(__dirname, '../..');

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mw-production-'));
  fs.writeFileSync(path.join(dir, 'policy.yaml'), 'checks:\n  - plugin: require-device\n');
  fs.writeFileSync(path.join(dir, 'app-password.key'), 'k'.repeat(48));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const REDIS = 'store:\n  type: redis\n  redis: { host: 127.0.0.1, port: 6379 }\n';
const KEYED = 'identity:\n  sources:\n    - type: app-password\n      hmacKeyFile: app-password.key\n';

function configFile(text: string): string {
  const file = path.join(dir, 'mailwarden.yaml');
  fs.writeFileSync(file, text);
  return file;
}

/** The one issue of the refused load, as `line: key: message`. */
async function refusal(text: string): Promise<{ line: number | null; keyPath: string; message: string; file: string }> {
  const file = configFile(text);
  const error = await loadConfigFile(file).then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(ConfigError);
  const issues = (error as ConfigError).issues;
  expect(issues).toHaveLength(1);
  expect(issues[0]!.file).toBe(file);
  return issues[0]! as { line: number | null; keyPath: string; message: string; file: string };
}

test('the built-in app-password key with a Redis store is refused at the source, naming hmacKeyFile', async () => {
  const issue = await refusal(`${REDIS}identity:\n  sources:\n    - type: asserted\n    - type: app-password\n`);
  expect(issue).toMatchObject({ line: 7, keyPath: 'identity.sources[1].hmacKeyFile' });
  expect(issue.message).toMatch(/built-in key/);
  expect(issue.message).toMatch(/openssl rand -base64 48/);
  expect(issue.message).toMatch(/insecure: \[builtin-app-password-key\]/);
});

test('a change-me admin token with a Redis store is refused', async () => {
  const issue = await refusal(`${REDIS}${KEYED}admin:\n  listen: { host: 127.0.0.1, port: 8025 }\n  tokens: [good-token-31f9a2, change-me-admin-token]\n`);
  expect(issue).toMatchObject({ line: 10, keyPath: 'admin.tokens[1]' });
  expect(issue.message).toMatch(/placeholder/);
});

test('a change-me master password is refused when a mail listener is off loopback', async () => {
  const text = `tls: { cert: c.pem, key: k.pem }
imap:
  listeners: [{ host: 0.0.0.0, port: 993, tls: implicit }]
  upstream: { host: 127.0.0.1, port: 143, tls: none, login: master, masterUser: mw, masterPassword: Change-Me }
`;
  expect(await refusal(text)).toMatchObject({ line: 4, keyPath: 'imap.upstream.masterPassword' });
});

test('a change-me secret read from the environment is refused like one written inline', async () => {
  process.env.MW_TEST_NGINX_SECRET = 'change-me-nginx-secret';
  try {
    const text = `${REDIS}hooks:\n  nginx:\n    listen: { host: 127.0.0.1, port: 9300 }\n    secret: { env: MW_TEST_NGINX_SECRET }\n    backends: { smtp: { host: 127.0.0.1, port: 25 } }\n`;
    expect(await refusal(text)).toMatchObject({ line: 7, keyPath: 'hooks.nginx.secret' });
  } finally {
    delete process.env.MW_TEST_NGINX_SECRET;
  }
});

test('plaintext IMAP and SMTP listeners on non-loopback addresses are refused, each naming its tls key', async () => {
  const imap = await refusal(`imap:\n  listeners: [{ host: 127.0.0.1, port: 1143, tls: none }, { host: 0.0.0.0, port: 143, tls: none }]\n  upstream: { host: 127.0.0.1, port: 143, tls: none }\n`);
  expect(imap).toMatchObject({ line: 2, keyPath: 'imap.listeners[1].tls' });
  expect(imap.message).toMatch(/0\.0\.0\.0/);
  expect(imap.message).toMatch(/starttls|implicit/);
  const smtp = await refusal(`smtp:\n  listeners:\n    - { host: "::", port: 587, tls: none }\n  upstream: { host: 127.0.0.1, port: 25, tls: none }\n`);
  expect(smtp).toMatchObject({ line: 3, keyPath: 'smtp.listeners[0].tls' });
});

test('the same setups start with insecure: true, or with the one allowance named', async () => {
  const plaintext = `imap:\n  listeners: [{ host: 10.1.2.3, port: 143, tls: none }]\n  upstream: { host: 127.0.0.1, port: 143, tls: none }\n`;
  await expect(loadConfigFile(configFile(`insecure: [plaintext-listener]\n${plaintext}`))).resolves.toMatchObject({ insecure: ['plaintext-listener'] });
  const builtinKey = `${REDIS}identity:\n  sources:\n    - type: app-password\n`;
  await expect(loadConfigFile(configFile(`insecure: true\n${builtinKey}`))).resolves.toBeDefined();
  // One allowance does not allow the others.
  const issue = await refusal(`insecure: [plaintext-listener]\n${builtinKey}`);
  expect(issue.keyPath).toBe('identity.sources[0].hmacKeyFile');
});

test('a setup on loopback with the embedded store keeps its change-me placeholders (trying it out)', async () => {
  const text = `admin:\n  listen: { host: 127.0.0.1, port: 8025 }\n  tokens: [change-me-admin-token]\nimap:\n  listeners: [{ host: localhost, port: 1143, tls: none }, { host: "::1", port: 1144, tls: none }]\n  upstream: { host: 127.0.0.1, port: 143, tls: none, login: master, masterUser: mw, masterPassword: change-me }\n`;
  await expect(loadConfigFile(configFile(text))).resolves.toBeDefined();
});

test('the example configuration and the container template still load', async () => {
  await expect(loadConfigFile(path.join(ROOT, 'config/mailwarden.yaml'))).resolves.toMatchObject({ insecure: false });
  fs.copyFileSync(path.join(ROOT, 'deploy/container/mailwarden.yaml'), path.join(dir, 'mailwarden.yaml'));
  await expect(loadConfigFile(path.join(dir, 'mailwarden.yaml'))).resolves.toBeDefined();
});
