// The loader on good configurations: the example config/ files, defaults, relative paths, line
// numbers, freezing, and the shape of ConfigError for callers that build their own issues.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadAll, loadConfigFile, loadPolicyFile, loadPolicyText } from '../../src/core/config';
import { ConfigError, displayPath, formatIssue, formatKeyPath } from '../../src/core/errors';
import { DEFAULT_CHECK_MESSAGE } from '../../src/core/config-schema';
import { runConfigCli } from '../fixtures/config/run-config-cli';

const ROOT = path.resolve(__dirname, '../..');
const EXAMPLE_CONFIG = path.join(ROOT, 'config/mailwarden.yaml');
const EXAMPLE_POLICY = path.join(ROOT, 'config/policy.yaml');

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mw-config-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const file = path.join(dir, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  return file;
}

async function failure(promise: Promise<unknown>): Promise<ConfigError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(ConfigError);
  return error as ConfigError;
}

/** 1-based line of the first line of `file` containing `text`. */
function lineContaining(file: string, text: string): number {
  return fs.readFileSync(file, 'utf8').split('\n').findIndex((l) => l.includes(text)) + 1;
}

const MIN_POLICY = 'checks:\n  - plugin: require-device\n';

describe('the example configuration', () => {
  test('loads with the documented defaults', async () => {
    const { config, policy } = await loadAll(EXAMPLE_CONFIG);
    expect(config.configFile).toBe(EXAMPLE_CONFIG);
    expect(config.policyFile).toBe(EXAMPLE_POLICY);
    expect(config.pluginDirs).toEqual([]);
    expect(config.store).toEqual({
      type: 'memory',
      recordTtlHours: 168,
      maxReportAgeHours: 24,
      auditMaxLen: 100000,
      cache: { maxEntries: 50000, maxAgeMs: 30000 },
      outageLastKnownMaxSeconds: 300,
      auditBufferMax: 10000,
    });
    expect(config.loginThrottle).toEqual({ enabled: true, baseDelayMs: 2000, maxDelayMs: 15000, windowSeconds: 900, knownAddressDays: 30 });
    expect(config.reports).toMatchObject({ algorithms: ['ES256', 'EdDSA'], maxAgeSeconds: 86400, maxSkewSeconds: 300, maxBodyBytes: 65536 });
    expect(config.reports.jwksFile).toBeUndefined(); // no reporter keys until ops configure them
    expect(config.imap).toMatchObject({
      blockStyle: 'refuse',
      maxLineBytes: 65536,
      maxLiteralBytes: 65536,
      maxBadCommands: 3,
      preAuthTimeoutMs: 60000,
      drainMs: 10000,
    });
    expect(config.imap?.upstream).toMatchObject({
      tls: 'none',
      rejectUnauthorized: true,
      connectTimeoutMs: 3000,
      login: 'passthrough',
      circuitBreaker: { failures: 5, resetMs: 10000 },
    });
    expect(config.smtp).toMatchObject({ maxMessageBytes: 52428800, hostname: 'mailwarden.localhost' });
    expect(config.smtp?.upstream.xclient).toBe(false);
    expect(config.identity.sources).toEqual([{ type: 'app-password' }, { type: 'asserted', separator: '+' }]);
    expect(config.groups).toEqual({ 'alice@example.com': ['pilot'] });
    expect(config.logging).toEqual({ level: 'info', format: 'auto' });
    expect(config.alerts).toEqual({ timeoutMs: 3000 });

    expect(policy.file).toBe(EXAMPLE_POLICY);
    expect(policy.version).toBe(createHash('sha256').update(fs.readFileSync(EXAMPLE_POLICY)).digest('hex').slice(0, 12));
    expect(policy.messages).toEqual({
      tempfail: "Mail is temporarily unavailable while your device's compliance is checked. Try again in a few minutes. Ref {refId}.",
      warnPrefix: 'Warning:',
    });
    expect(policy.checks.map((c) => [c.id, c.plugin, c.line])).toEqual([
      ['require-device', 'require-device', lineContaining(EXAMPLE_POLICY, '- id: require-device')],
      ['no-tiktok-on-mobiles', 'banned-apps', lineContaining(EXAMPLE_POLICY, '- id: no-tiktok-on-mobiles')],
    ]);
    expect(policy.checks[0]).toMatchObject({ onUnknown: 'fail', onError: 'tempfail', timeoutMs: 200, scope: {}, options: {}, graceHours: 0 });
    expect(policy.checks[1].onUnknown).toBe('pass');
  });

  test('is deeply frozen', async () => {
    const { config, policy } = await loadAll(EXAMPLE_CONFIG);
    expect(Object.isFrozen(config.store.cache)).toBe(true);
    expect(Object.isFrozen(policy.checks[1].options)).toBe(true);
    expect(() => {
      (config.imap!.listeners[0] as { port: number }).port = 1;
    }).toThrow(TypeError);
  });

  test('lineOf points at keys, list items, and the nearest ancestor of a missing key', async () => {
    const { source: policySource } = await loadPolicyFile(EXAMPLE_POLICY);
    expect(policySource.file).toBe(EXAMPLE_POLICY);
    expect(policySource.lineOf(['brake', 'minLogins'])).toBe(lineContaining(EXAMPLE_POLICY, 'minLogins:'));
    expect(policySource.lineOf(['checks', 1, 'options', 'apps', 'android'])).toBe(lineContaining(EXAMPLE_POLICY, 'android: ['));
    expect(policySource.lineOf(['checks', 1, 'options', 'nosuch', 3])).toBe(lineContaining(EXAMPLE_POLICY, 'options:'));
    expect(policySource.lineOf(['checks', 0])).toBe(lineContaining(EXAMPLE_POLICY, '- id: require-device'));
    expect(JSON.stringify(policySource)).not.toContain('TikTok'); // the parsed document stays private
  });

  test('mailwarden config check prints one OK line and exits 0', async () => {
    const { code, stdout, stderr } = await runConfigCli(['config', 'check', '--config', EXAMPLE_CONFIG]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const { policy } = await loadAll(EXAMPLE_CONFIG);
    expect(stdout).toBe(
      `config OK: ${displayPath(EXAMPLE_CONFIG)}, policy ${displayPath(EXAMPLE_POLICY)} (2 checks, version ${policy.version})\n`,
    );
  });
});

describe('mailwarden config check', () => {
  test('defaults to config/mailwarden.yaml', async () => {
    expect(path.resolve('config/mailwarden.yaml')).toBe(EXAMPLE_CONFIG); // jest runs from the repository root
    const { code, stdout } = await runConfigCli(['config', 'check']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^config OK: config\/mailwarden\.yaml, policy config\/policy\.yaml \(2 checks, version [0-9a-f]{12}\)\n$/);
  });

  test('--policy checks a candidate policy against the configuration', async () => {
    const candidate = write('candidate.yaml', 'checks:\n  - plugin: require-device\n    mode: enforced\n');
    const { code, stdout, stderr } = await runConfigCli(['config', 'check', '--config', EXAMPLE_CONFIG, '--policy', candidate]);
    expect(code).toBe(78);
    expect(stdout).toBe('');
    expect(stderr).toBe(`${displayPath(candidate)}:3: checks[0].mode: must be one of off, report, warn, enforce (got "enforced")\n`);
  });
});

describe('defaults and paths', () => {
  test('a minimal pair of files gets every default', async () => {
    write('policy.yaml', MIN_POLICY);
    const { config, policy } = await loadAll(write('mailwarden.yaml', 'logging: { level: debug }\n'));
    expect(config.instanceName).toBe(os.hostname());
    expect(config.policyFile).toBe(path.join(dir, 'policy.yaml'));
    expect(config.imap).toBeUndefined();
    expect(config.admin).toBeUndefined();
    expect(config.identity.sources).toEqual([]);
    expect(config.groups).toEqual({});
    expect(config.logging.level).toBe('debug');
    expect(config.workers).toBe(1);
    expect(policy).toMatchObject({
      reportOnly: false,
      helpdesk: 'your IT helpdesk',
      unidentified: { action: 'deny' },
      blastRadius: { maxNewlyDeniedPercent: 20, maxNewlyDeniedCount: 500, minNewlyDeniedCount: 0, inForceWindowHours: 24 },
      brake: { enabled: true, windowSeconds: 300, minLogins: 50, maxDeniedPercent: 30 },
    });
    expect(policy.unidentified.message).toMatch(/^This mail app is not enrolled.*Ref \{refId\}\.$/);
    expect(policy.checks[0]).toEqual({
      id: 'require-device',
      plugin: 'require-device',
      mode: 'enforce',
      action: 'deny',
      onUnknown: 'fail',
      onError: 'tempfail',
      timeoutMs: 200,
      scope: {},
      options: {},
      message: DEFAULT_CHECK_MESSAGE,
      graceHours: 0,
      line: 2,
    });
  });

  test('redis, TLS and file paths: defaults filled and paths resolved against the config folder', async () => {
    write('policies/p.yaml', MIN_POLICY);
    const file = write(
      'etc/mailwarden.yaml',
      [
        'instanceName: a',
        'policyFile: ../policies/p.yaml',
        'pluginDirs: [my-plugins, /opt/mw/plugins]',
        'tls: { cert: tls/cert.pem, key: tls/key.pem, clientCa: tls/mdm-ca.pem }',
        'store: { type: redis, redis: { host: redis.internal } }',
        'identity:',
        '  sources:',
        '    - { type: oauth, issuer: "https://idp/", audience: mail, jwksFile: idp.jwks }',
        '    - { type: app-password, hmacKeyFile: secrets/hmac.key }',
        '    - { type: certificate }',
        'smtp:',
        '  listeners: [{ host: 0.0.0.0, port: 465, tls: implicit }]',
        '  upstream: { host: mx, port: 25, login: master, masterUser: proxy, masterPassword: pw }',
        'logging: { file: ../log/mw.jsonl }',
        '',
      ].join('\n'),
    );
    const { config } = await loadAll(file);
    const etc = path.join(dir, 'etc');
    expect(config.policyFile).toBe(path.join(dir, 'policies/p.yaml'));
    expect(config.pluginDirs).toEqual([path.join(etc, 'my-plugins'), '/opt/mw/plugins']);
    expect(config.tls).toEqual({ cert: path.join(etc, 'tls/cert.pem'), key: path.join(etc, 'tls/key.pem'), clientCa: path.join(etc, 'tls/mdm-ca.pem') });
    expect(config.store.redis).toEqual({
      mode: 'standalone',
      host: 'redis.internal',
      port: 6379,
      keyPrefix: 'mw:',
      commandTimeoutMs: 200,
      connectTimeoutMs: 2000,
    });
    expect(config.identity.sources).toEqual([
      {
        type: 'oauth',
        issuer: 'https://idp/',
        audience: 'mail',
        jwksFile: path.join(etc, 'idp.jwks'),
        algorithms: ['RS256', 'ES256'],
        userClaim: 'email',
        deviceClaim: 'deviceid',
        clockToleranceSeconds: 30,
      },
      { type: 'app-password', hmacKeyFile: path.join(etc, 'secrets/hmac.key') },
      { type: 'certificate', deviceField: 'CN' },
    ]);
    expect(config.smtp?.hostname).toBe(os.hostname());
    expect(config.logging.file).toBe(path.join(dir, 'log/mw.jsonl'));
  });

  test('each load gets its own objects (defaults are not shared)', async () => {
    write('policy.yaml', MIN_POLICY);
    const file = write('mailwarden.yaml', 'instanceName: a\n');
    const [a, b] = await Promise.all([loadConfigFile(file), loadConfigFile(file)]);
    expect(a.store.cache).toEqual(b.store.cache);
    expect(a.store.cache).not.toBe(b.store.cache);
  });

  test('loadAll with a policy override checks that file instead', async () => {
    write('policy.yaml', MIN_POLICY);
    const other = write('candidate.yaml', 'checks: []\n');
    const { config, policy } = await loadAll(write('mailwarden.yaml', 'instanceName: a\n'), { policyFile: other });
    expect(config.policyFile).toBe(other);
    expect(policy.file).toBe(other);
    expect(policy.checks).toEqual([]);
    expect(Object.isFrozen(config)).toBe(true);
  });
});

describe('errors', () => {
  test('issues carry absolute file, line and key path; loadConfigFile alone ignores the policy', async () => {
    const file = write('mailwarden.yaml', 'instanceName: a\nstore:\n  type: redsi\n');
    const error = await failure(loadConfigFile(file));
    expect(error.issues).toEqual([{ file, line: 3, keyPath: 'store.type', message: 'must be one of memory, redis (got "redsi")' }]);
  });

  test('workers: more than one needs the Redis store, a wrong value names the key', async () => {
    const redis = 'store: { type: redis, redis: { mode: standalone, host: 127.0.0.1 } }\n';
    expect((await loadConfigFile(write('b.yaml', `workers: 2\n${redis}`))).workers).toBe(2);
    const memory = write('c.yaml', 'instanceName: a\nworkers: 2\n');
    expect((await failure(loadConfigFile(memory))).issues).toEqual([
      { file: memory, line: 2, keyPath: 'workers', message: 'more than one worker needs store.type redis (the embedded store lives inside one process)' },
    ]);
    const zero = write('d.yaml', `workers: 0\n${redis}`);
    const issues = (await failure(loadConfigFile(zero))).issues;
    expect(issues).toEqual([{ file: zero, line: 1, keyPath: 'workers', message: expect.stringMatching(/^must be >= 1/) }]);
  });

  test('secret values are never echoed back', async () => {
    write('policy.yaml', MIN_POLICY);
    const file = write(
      'mailwarden.yaml',
      'imap:\n  listeners: [{ host: h, port: 1, tls: none }]\n  upstream: { host: h, port: 1, login: master, masterUser: u, masterPassword: 987654321 }\n' +
        'admin: { listen: { host: h, port: 2 }, tokens: [s3cr3t-token, 424242, s3cr3t-token] }\n',
    );
    const error = await failure(loadAll(file));
    expect(error.issues.map((i) => i.keyPath)).toEqual(['imap.upstream.masterPassword', 'admin.tokens[1]', 'admin.tokens']);
    expect(error.message).not.toMatch(/987654321|424242|s3cr3t/);
  });

  test('hook secrets from a file or an environment variable: read at load, or an issue at the key', async () => {
    write('policy.yaml', MIN_POLICY);
    write('nginx.secret', 'from-the-file\n');
    const hooks = (nginxSecret: string, dovecotKey: string, dovecotEnabled = true) =>
      'hooks:\n' +
      `  nginx: { listen: { host: h, port: 1 }, secret: ${nginxSecret}, backends: {} }\n` +
      `  dovecot: { enabled: ${dovecotEnabled}, listen: { host: h, port: 2 }, apiKey: ${dovecotKey} }\n`;
    process.env.MW_TEST_DOVECOT_KEY = 'from-the-environment';
    try {
      const { config } = await loadAll(write('mailwarden.yaml', hooks('{ file: nginx.secret }', '{ env: MW_TEST_DOVECOT_KEY }')));
      expect([config.hooks.nginx?.secret, config.hooks.dovecot?.apiKey]).toEqual(['from-the-file', 'from-the-environment']);
    } finally {
      delete process.env.MW_TEST_DOVECOT_KEY;
    }
    const file = write('mailwarden.yaml', hooks('{ file: absent.secret }', '{ env: MW_TEST_DOVECOT_KEY }'));
    const error = await failure(loadAll(file));
    expect(error.issues).toEqual([
      { file, line: 2, keyPath: 'hooks.nginx.secret', message: `cannot read ${path.join(dir, 'absent.secret')} (ENOENT)` },
      { file, line: 3, keyPath: 'hooks.dovecot.apiKey', message: 'environment variable MW_TEST_DOVECOT_KEY is not set' },
    ]);
    // A disabled hook may name a variable that is not set (the example configuration does).
    const disabled = await loadAll(write('mailwarden.yaml', hooks('inline-secret', '{ env: MW_TEST_DOVECOT_KEY }', false)));
    expect(disabled.config.hooks.dovecot?.enabled).toBe(false);
    const both = await failure(loadAll(write('mailwarden.yaml', hooks('{ file: a, env: B }', 'k'))));
    expect(both.issues.map((i) => [i.keyPath, i.message])).toEqual([['hooks.nginx.secret', 'set one of file: or env:, not both']]);
  });

  test('a config that cannot be read is one issue without a line, and the policy is not guessed', async () => {
    const error = await failure(loadAll(path.join(dir, 'absent.yaml')));
    expect(error.issues).toEqual([{ file: path.join(dir, 'absent.yaml'), line: null, keyPath: '', message: 'file not found' }]);
  });

  test('unresolved aliases are reported, not thrown raw', async () => {
    write('policy.yaml', MIN_POLICY);
    const error = await failure(loadAll(write('mailwarden.yaml', 'instanceName: *name\n')));
    expect(error.issues).toHaveLength(1);
    expect(error.message).toMatch(/mailwarden\.yaml: YAML: .*alias/i);
  });

  test('loadPolicyText validates in-memory YAML like a file, named as the caller says', async () => {
    const { policy, source } = await loadPolicyText(MIN_POLICY, '(candidate policy)');
    expect(policy.file).toBe('(candidate policy)');
    expect(policy.checks[0].line).toBe(2);
    expect(source.lineOf(['checks', 0, 'plugin'])).toBe(2);
    const error = await failure(loadPolicyText('checks:\n  - plugin: require-device\n    onError: allow\n', '(candidate policy)'));
    expect(error.message).toBe('(candidate policy):3: checks[0].onError: must be one of deny, tempfail (got "allow")');
  });

  test('formatIssue and displayPath', () => {
    const inside = path.join(process.cwd(), 'config/policy.yaml');
    expect(displayPath(inside)).toBe(path.join('config', 'policy.yaml'));
    expect(displayPath('/definitely/elsewhere/p.yaml')).toBe('/definitely/elsewhere/p.yaml');
    expect(formatIssue({ file: inside, line: 23, keyPath: 'checks[1].mode', message: 'm' })).toBe('config/policy.yaml:23: checks[1].mode: m');
    expect(formatIssue({ file: inside, line: null, keyPath: '', message: 'file not found' })).toBe('config/policy.yaml: file not found');
    expect(formatKeyPath(['checks', 1, 'options', 'names', 'com.example.app'])).toBe('checks[1].options.names["com.example.app"]');
    const error = new ConfigError([
      { file: inside, line: 1, keyPath: 'a', message: 'x' },
      { file: inside, line: 2, keyPath: 'b', message: 'y' },
    ]);
    expect(error.message).toBe('config/policy.yaml:1: a: x\nconfig/policy.yaml:2: b: y');
  });
});
