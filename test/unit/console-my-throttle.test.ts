// The /my/ sign-in checks a mail password against the upstream, so it must be throttled like an
// IMAP login: a wrong password counts for the user and the address in the shared counters, and the
// next try (through the console or the proxy) waits the doubling delay before it is checked.
import { consoleServices, type ConsoleWiring } from '../../src/app/console-services';
import { LoginThrottle } from '../../src/admission/login-throttle';
import type { MailwardenConfig } from '../../src/core/config-types';
import { silentLogger } from '../../src/core/log';
import { MemoryDeviceStore } from '../../src/store/memory-store';
import { imapConfig, startFakeUpstream, type FakeUpstream } from './imap-fakes';

let upstream: FakeUpstream;
beforeAll(async () => {
  upstream = await startFakeUpstream();
});
afterAll(() => upstream.close());

function services(waited: number[]) {
  const store = new MemoryDeviceStore();
  const settings = { enabled: true, baseDelayMs: 2000, maxDelayMs: 15000, windowSeconds: 900, knownAddressDays: 30 };
  // The sleep only records: the delay asked for is what is checked, not the wall clock.
  const throttle = new LoginThrottle(store.loginFailureCounters(900), () => settings, async (ms) => void waited.push(ms));
  const config = { instanceName: 't', imap: imapConfig(upstream.port) } as unknown as MailwardenConfig;
  const wiring = { store, log: silentLogger(), throttle, config: () => config } as unknown as ConsoleWiring;
  return { services: consoleServices(wiring), throttle };
}

test('a wrong /my/ password delays the next try, for that user from that address, as a login would', async () => {
  const waited: number[] = [];
  const { services: s, throttle } = services(waited);
  expect(await s.checkMailLogin('alice@example.com', 'guess-1', '192.0.2.7')).toEqual({ result: 'bad' });
  expect(waited).toEqual([]);
  expect(await s.checkMailLogin('alice@example.com', 'guess-2', '192.0.2.7')).toEqual({ result: 'bad' });
  expect(waited).toEqual([2000]);
  // The same counters the IMAP and SMTP logins consult: the proxy would delay this user too.
  expect((await throttle.verdict({ username: 'alice@example.com', remoteAddress: '198.51.100.1' })).delayMs).toBe(4000);
  expect(await s.checkMailLogin('alice@example.com', 'alice-pw', '192.0.2.7')).toEqual({ result: 'ok', user: 'alice@example.com' });
  expect(waited).toEqual([2000, 4000]);
  // Right password: this address starts afresh.
  expect((await throttle.verdict({ username: 'alice@example.com', remoteAddress: '192.0.2.7' })).delayMs).toBe(0);
});
