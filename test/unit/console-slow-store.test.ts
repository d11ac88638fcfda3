// A page view never waits for the slow reads behind it: the overview does not wait for the sources
// (reading every device record), and the audit page does not wait for the feed's first read of the
// last day; each says what is still being read instead.
import { ConsoleClient, startConsoleRig, type ConsoleRig } from './console-fakes';

let rig: ConsoleRig;
/** Reads held open by a test until it ends (the console's stop waits for its feed's read). */
let release: () => void = () => undefined;
let gate = Promise.resolve();
const held = <T>(value: T) => gate.then(() => value);
beforeEach(() => {
  gate = new Promise<void>((resolve) => (release = resolve));
});
afterEach(async () => {
  release();
  await rig.stop();
});

test('the overview answers at once while the sources are still being read', async () => {
  rig = await startConsoleRig({}, { sources: () => held([]) });
  const viewer = new ConsoleClient(rig.url);
  await viewer.signIn('viewer');
  const started = Date.now();
  const page = await viewer.request('/console/overview');
  expect(page.status).toBe(200);
  expect(page.text).toContain('The device records are being counted; reload in a few seconds.');
  expect(Date.now() - started).toBeLessThan(2000);
});

test('until the feed has read the day, the audit page shows the newest entries straight from the store', async () => {
  // The feed's reads never finish (a stream being read for a long time).
  rig = await startConsoleRig({}, { readAudit: () => held([]) });
  await rig.store.appendAudit({ msg: 'decision', refId: 'MW-NEWEST01', user: 'alice@example.com', deviceId: 'iphone-1', action: 'deny', reasonCode: 'BANNED_APP', checks: [], at: new Date().toISOString() });
  const viewer = new ConsoleClient(rig.url);
  await viewer.signIn('viewer');
  const page = await viewer.request('/console/audit?device=iphone-1');
  expect(page.status).toBe(200);
  expect(page.text).toContain('MW-NEWEST01');
});
