// The first lines of `mailwarden start` for a person: listeners, the store (the embedded one with a
// loud warning, Redis by where it is), and each upstream's TCP probe, answered or not.
import net from 'node:net';
import { bannerHead, probeUpstreams, upstreamLines } from '../../src/cli/start-banner';
import type { MailwardenConfig } from '../../src/core/config-types';
import { freePort } from '../harness/ports';

const config = (store: Partial<MailwardenConfig['store']>, upstreams: { imap?: number; smtp?: number } = {}) =>
  ({
    instanceName: 'mw-1',
    store: { type: 'memory', ...store },
    ...(upstreams.imap !== undefined && { imap: { upstream: { host: '127.0.0.1', port: upstreams.imap } } }),
    ...(upstreams.smtp !== undefined && { smtp: { upstream: { host: '127.0.0.1', port: upstreams.smtp } } }),
  }) as unknown as MailwardenConfig;

const facts = (c: MailwardenConfig) => ({
  version: '1.2.3',
  configFile: 'config/mailwarden.yaml',
  config: c,
  policy: { version: 'abc123', checks: 2 },
  imap: [{ host: '127.0.0.1', port: 1143, tls: 'none' }, { host: '::', port: 993, tls: 'implicit' }],
  smtp: [{ host: '0.0.0.0', port: 587, tls: 'starttls' }],
  admin: { host: '127.0.0.1', port: 8025 },
});

test('each listener address in plain words, the in-memory store with its warning', () => {
  const lines = bannerHead(facts(config({})));
  expect(lines.slice(0, 6)).toEqual([
    'mailwarden 1.2.3 is running (instance mw-1, config/mailwarden.yaml, policy abc123 with 2 checks)',
    '  listening IMAP       127.0.0.1:1143  no TLS',
    '            IMAP       [::]:993  TLS',
    '            SMTP       0.0.0.0:587  STARTTLS',
    '            admin API  http://127.0.0.1:8025  (/healthz, /readyz, /metrics)',
    '  store     the embedded in-memory store',
  ]);
  expect(lines.join('\n')).toMatch(/!!! WARNING: IN-MEMORY STORE\. .*\n.*gone when it stops/);
});

test('the gateway hooks that listen, each with what it serves', () => {
  const lines = bannerHead({ ...facts(config({})), hooks: { nginx: { host: '127.0.0.1', port: 9100 }, postfix: { host: '127.0.0.1', port: 10040 } } });
  expect(lines).toContain('            hook       http://127.0.0.1:9100  nginx auth_http');
  expect(lines).toContain('            hook       127.0.0.1:10040  Postfix policy delegation');
  expect(lines.join('\n')).not.toContain('Dovecot policy');
});

test('Redis by where it is, and no warning', () => {
  const standalone = bannerHead(facts(config({ type: 'redis', redis: { mode: 'standalone', host: '10.0.0.5', port: 6380, keyPrefix: 'mw:' } as never })));
  expect(standalone).toContain('  store     Redis at 10.0.0.5:6380, key prefix mw:');
  expect(standalone.join('\n')).not.toContain('WARNING');
  const sentinel = bannerHead(facts(config({ type: 'redis', redis: { mode: 'sentinel', name: 'mymaster', sentinels: [{ host: 's1', port: 26379 }], keyPrefix: 'x:' } as never })));
  expect(sentinel).toContain('  store     Redis through Sentinel s1:26379 (master "mymaster"), key prefix x:');
});

test('each upstream answers or does not, probed at once with a short timeout', async () => {
  const server = net.createServer((s) => s.end());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const live = (server.address() as net.AddressInfo).port;
  const dead = await freePort();
  try {
    const probes = await probeUpstreams(config({}, { imap: live, smtp: dead }), 1000);
    expect(upstreamLines(probes)).toEqual([
      `  upstream  IMAP  127.0.0.1:${live}  answers`,
      `            SMTP  127.0.0.1:${dead}  DOES NOT ANSWER (connection refused): SMTP logins get a temporary failure until it does`,
    ]);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
