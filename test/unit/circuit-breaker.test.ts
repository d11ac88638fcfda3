// The circuit breaker per upstream address and the trip/close notifications metrics and alerts use.
import { CircuitBreakers } from '../../src/core/circuit-breaker';
import { createMetrics } from '../../src/admin/metrics';

test('one breaker per address: a dead address trips without refusing logins to another', () => {
  let now = 0;
  const breakers = new CircuitBreakers(() => now);
  const settings = { failures: 2, resetMs: 1000 };
  const dead = breakers.get('imap', '192.0.2.1:143', settings);
  const live = breakers.get('imap', '192.0.2.2:143', settings);
  dead.failure();
  dead.failure();
  expect(dead.allow()).toBe(false);
  expect(live.allow()).toBe(true);
  expect(breakers.get('imap', '192.0.2.1:143', settings)).toBe(dead);
  expect(breakers.get('smtp', '192.0.2.1:143', settings)).not.toBe(dead);
  now = 1500;
  expect(dead.allow()).toBe(true); // the half-open trial
  expect(dead.allow()).toBe(false);
});

test('trips and closes are announced once each, and shown as a metric', async () => {
  const breakers = new CircuitBreakers(() => 0);
  const metrics = createMetrics({ processMetrics: false });
  const changes: string[] = [];
  breakers.onChange((c) => changes.push(`${c.service} ${c.upstream} ${c.tripped ? 'tripped' : 'closed'}`));
  breakers.onChange((c) => metrics.onBreakerChange(c));
  metrics.readFrom({ breakers: () => breakers.states() });
  breakers.onChange(() => {
    throw new Error('a broken listener changes nothing');
  });
  const breaker = breakers.get('imap', '127.0.0.1:143', { failures: 2, resetMs: 1000 });
  // Known before it ever trips: the gauge shows every address in use, at 0.
  expect(await metrics.text()).toMatch(/^mailwarden_upstream_breaker_open\{service="imap",upstream="127.0.0.1:143"\} 0$/m);
  breaker.failure();
  expect(changes).toEqual([]);
  breaker.failure();
  breaker.failure();
  expect(changes).toEqual(['imap 127.0.0.1:143 tripped']);
  expect(await metrics.text()).toMatch(/^mailwarden_upstream_breaker_open\{service="imap",upstream="127.0.0.1:143"\} 1$/m);
  breaker.success();
  breaker.success();
  expect(changes).toEqual(['imap 127.0.0.1:143 tripped', 'imap 127.0.0.1:143 closed']);
  const text = await metrics.text();
  expect(text).toMatch(/^mailwarden_upstream_breaker_open\{service="imap",upstream="127.0.0.1:143"\} 0$/m);
  expect(text).toMatch(/^mailwarden_upstream_breaker_trips_total\{service="imap",upstream="127.0.0.1:143"\} 1$/m);
});
