// The admin alerter: POSTs JSON to a webhook on loopback, rate-limits per kind, never throws.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAlerter, type AlertPayload } from '../../src/admin/alerts';
import { freePort } from '../harness/ports';
import { fakeServices } from './admin-fakes';

interface Hook {
  url: string;
  received: AlertPayload[];
  close(): Promise<void>;
}

/** A webhook receiver on 127.0.0.1; `respond: false` never answers (to exercise the timeout). */
async function webhook(respond = true): Promise<Hook> {
  const received: AlertPayload[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      received.push(JSON.parse(body) as AlertPayload);
      if (respond) res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

let hook: Hook;
afterEach(async () => hook?.close());

test('posts the alert as JSON, at most once a minute per kind, counting what it suppressed', async () => {
  hook = await webhook();
  const { services, logs } = fakeServices();
  let now = Date.parse('2030-01-01T00:00:00Z');
  const alerter = createAlerter({ webhookUrl: hook.url, timeoutMs: 2000 }, services.log, { instance: 'mw-1', now: () => now });

  await alerter.alert('brake-tripped', { deniedPercent: 42, checks: ['banned-apps'] });
  await alerter.alert('brake-tripped', { deniedPercent: 43 });
  await alerter.alert('brake-tripped', { deniedPercent: 44 });
  await alerter.alert('store-unreachable', { error: 'ECONNREFUSED' });
  expect(hook.received).toEqual([
    { source: 'mailwarden', kind: 'brake-tripped', instance: 'mw-1', at: '2030-01-01T00:00:00.000Z', suppressed: 0, details: { deniedPercent: 42, checks: ['banned-apps'] } },
    expect.objectContaining({ kind: 'store-unreachable', suppressed: 0 }),
  ]);

  now += 60_000;
  await alerter.alert('brake-tripped', { deniedPercent: 50 });
  expect(hook.received[2]).toMatchObject({ kind: 'brake-tripped', suppressed: 2, details: { deniedPercent: 50 } });
  // Every alert is logged, sent or not; the webhook URL is not.
  expect(logs.filter((l) => l.includes('brake-tripped'))).toHaveLength(4);
  expect(logs.join('')).not.toContain('/hook');
});

test('an unreachable or silent webhook is logged, never thrown', async () => {
  const { services, logs } = fakeServices();
  const closedPort = await freePort();
  const down = createAlerter({ webhookUrl: `http://127.0.0.1:${closedPort}/`, timeoutMs: 2000 }, services.log);
  await expect(down.alert('reload-refused', { file: 'policy.yaml' })).resolves.toBeUndefined();
  expect(logs.join('')).toContain('webhook unreachable');

  hook = await webhook(false);
  const slow = createAlerter({ webhookUrl: hook.url, timeoutMs: 100 }, services.log);
  await expect(slow.alert('blast-radius-refused', { newlyDenied: 900 })).resolves.toBeUndefined();
  expect(logs.join('')).toContain('timed out after 100 ms');
  expect(hook.received).toHaveLength(1);
});

test('a refusing webhook is logged with its status', async () => {
  const { services, logs } = fakeServices();
  const server = http.createServer((_req, res) => res.writeHead(500).end('nope'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  try {
    await createAlerter({ webhookUrl: url, timeoutMs: 2000 }, services.log).alert('reload-refused', {});
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
  expect(logs.join('')).toMatch(/webhook refused it.*"status":500/);
});

test('without a webhook URL alerts are only logged', async () => {
  const { services, logs } = fakeServices();
  const alerter = createAlerter({ timeoutMs: 1000 }, services.log);
  await alerter.alert('store-unreachable', { error: 'timeout' });
  expect(logs.find((l) => l.includes('store-unreachable'))).toContain('no webhook configured');
});
