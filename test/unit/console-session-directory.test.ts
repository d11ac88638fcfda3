// The session directory (src/app/session-directory.ts) with two "instances" on one change feed (a
// synchronous one here, so no answer depends on timing; Redis is in console-sessions.test.ts): each
// lists and ends the other's sessions, the asker answers itself even with a zero window, answers
// that are malformed are dropped, and an unreachable store leaves the asker answering alone.
import { silentLogger } from '../../src/core/log';
import { SessionDirectory } from '../../src/app/session-directory';
import { SessionRegistry } from '../../src/app/sessions';
import type { Decision } from '../../src/policy/decision';
import type { LiveSession } from '../../src/policy/live-session';
import type { ChangeEvent, ChangeFeed } from '../../src/store/device-store';
import { decodeChangeEvent } from '../../src/store/record-codec';

function liveSession(id: string, deviceId: string, ended: Decision[]): LiveSession {
  return {
    id,
    protocol: 'imap',
    user: 'alice@example.com',
    deviceId,
    identitySource: 'asserted',
    identityStrength: 'weak',
    hints: {},
    remoteAddress: '127.0.0.1',
    revoke: (decision) => void ended.push(decision),
  };
}

type Feed = Pick<ChangeFeed, 'publish' | 'subscribe'>;

/** Delivers every message to every subscriber before publish() resolves. */
function syncFeed(): Feed {
  const listeners = new Set<(event: ChangeEvent) => void>();
  return {
    async publish(event) {
      for (const listener of [...listeners]) listener(JSON.parse(JSON.stringify(event)) as ChangeEvent);
    },
    async subscribe(listener) {
      listeners.add(listener);
      return async () => void listeners.delete(listener);
    },
  };
}

function instance(name: string, feed: Feed, windowMs = 20) {
  const sessions = new SessionRegistry();
  const directory = new SessionDirectory({
    feed,
    sessions,
    log: silentLogger(),
    instanceName: () => name,
    policy: () => ({ version: 'v7', helpdesk: 'the IT helpdesk' }),
    answerWindowMs: windowMs,
  });
  return { sessions, directory };
}

test('an instance lists and ends the sessions another instance holds, and says who answered', async () => {
  const feed = syncFeed();
  const a = instance('mw-a', feed);
  const b = instance('mw-b', feed);
  await Promise.all([a.directory.start(), b.directory.start()]);
  const ended: Decision[] = [];
  b.sessions.add(liveSession('s-b1', 'ipad-1', ended));
  a.sessions.add(liveSession('s-a1', 'other-device', ended));

  const listed = await a.directory.list('ipad-1');
  expect(listed.reachedOthers).toBe(true);
  expect(listed.answers.map((x) => x.instance).sort()).toEqual(['mw-a', 'mw-b']);
  expect(listed.answers.find((x) => x.instance === 'mw-b')!.sessions).toEqual([{ id: 's-b1', protocol: 'imap', user: 'alice@example.com', remoteAddress: '127.0.0.1' }]);
  expect(listed.answers.find((x) => x.instance === 'mw-a')!.sessions).toEqual([]);
  expect(ended).toHaveLength(0);

  const result = await a.directory.end('ipad-1', 'helpdesk-person (helpdesk, console)');
  expect(result.answers.map((x) => [x.instance, x.ended]).sort()).toEqual([['mw-a', 0], ['mw-b', 1]]);
  expect(ended).toHaveLength(1);
  expect(ended[0]).toMatchObject({ action: 'deny', reasonCode: 'ENDED_BY_ADMIN', deviceId: 'ipad-1', policyVersion: 'v7' });
  expect(ended[0]!.message).toMatch(/^This mail session was ended by the IT helpdesk\. Sign in again\. Ref MW-/);
  await Promise.all([a.directory.stop(), b.directory.stop()]);
});

test('with a zero window (the memory store: one process) the asker still lists and ends its own sessions', async () => {
  const a = instance('solo', syncFeed(), 0);
  await a.directory.start();
  const ended: Decision[] = [];
  a.sessions.add(liveSession('s-1', 'ipad-1', ended));
  expect((await a.directory.list('ipad-1')).answers).toEqual([{ instance: 'solo', sessions: [expect.objectContaining({ id: 's-1' })], ended: 0 }]);
  const result = await a.directory.end('ipad-1', 'someone');
  expect(result.answers).toEqual([{ instance: 'solo', sessions: [expect.objectContaining({ id: 's-1' })], ended: 1 }]);
  expect(ended).toHaveLength(1);
  await a.directory.stop();
});

test('malformed answers on the channel are dropped, not shown', async () => {
  const store = syncFeed();
  const a = instance('mw-a', store);
  await a.directory.start();
  // A hostile or garbled publisher answers every question with bad fields.
  const off = await store.subscribe((event) => {
    if (event.kind !== 'sessions' || event.body.op === 'answer') return;
    const requestId = event.body.requestId;
    for (const body of [
      { op: 'answer', requestId, instance: 'evil', sessions: 'x', ended: 0 },
      { op: 'answer', requestId, instance: 'evil', sessions: [{ id: 1, protocol: 'imap', user: 'u' }], ended: 0 },
      { op: 'answer', requestId, instance: 'evil', sessions: [], ended: -3 },
      { op: 'answer', requestId, instance: '', sessions: [], ended: 0 },
    ]) void store.publish({ kind: 'sessions', body });
  });
  const listed = await a.directory.list('ipad-1');
  expect(listed.answers.map((x) => x.instance)).toEqual(['mw-a']);
  await off();
  await a.directory.stop();
});

test('when the question cannot be published, the asker answers alone and says so', async () => {
  const store = syncFeed();
  const down = {
    publish: async (_event: ChangeEvent) => {
      throw Object.assign(new Error('redis down'), { code: 'STORE_UNAVAILABLE' });
    },
    subscribe: (listener: (event: ChangeEvent) => void) => store.subscribe(listener),
  };
  const a = instance('mw-a', down);
  await a.directory.start();
  const ended: Decision[] = [];
  a.sessions.add(liveSession('s-a1', 'ipad-1', ended));
  const result = await a.directory.end('ipad-1', 'someone');
  expect(result.reachedOthers).toBe(false);
  expect(result.answers).toEqual([{ instance: 'mw-a', sessions: [expect.objectContaining({ id: 's-a1' })], ended: 1 }]);
  expect(ended).toHaveLength(1);
  await a.directory.stop();
});

test('the change channel carries session-directory messages as objects only', () => {
  expect(decodeChangeEvent('{"kind":"sessions","body":{"op":"list"}}')).toEqual({ kind: 'sessions', body: { op: 'list' } });
  expect(decodeChangeEvent('{"kind":"sessions","body":[1]}')).toBeNull();
  expect(decodeChangeEvent('{"kind":"sessions","body":null}')).toBeNull();
  expect(decodeChangeEvent('{"kind":"sessions"}')).toBeNull();
});
