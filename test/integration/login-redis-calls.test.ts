// What one app-password IMAP login costs Redis (INFO commandstats over 50 logins): the login
// throttle's counter reads are plain GETs (one per address, device and user key), not a MULTI/GET/
// PTTL/EXEC each, and a steady login writes no throttle key.
import { execFileSync } from 'node:child_process';
import { findProgram } from '../harness/ports';
import { ADMIN_TOKEN, ALICE, imapClient, startRig, type Rig } from './imap-rig';

let rig: Rig;
afterAll(async () => rig?.stop());

function stats(port: number): Map<string, number> {
  const out = execFileSync(findProgram('redis-cli')!, ['-p', String(port), 'info', 'commandstats']).toString();
  const m = new Map<string, number>();
  for (const line of out.split('\n')) {
    const r = /^cmdstat_(\w+):calls=(\d+)/.exec(line.trim());
    if (r) m.set(r[1]!, Number(r[2]));
  }
  return m;
}

test('Redis commands per steady app-password login: the throttle adds three GETs and no transaction or write', async () => {
  rig = await startRig({});
  await rig.report('calls-phone', 'macos', []);
  const res = await fetch(`${rig.adminUrl}/v1/devices/calls-phone/app-passwords`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ user: ALICE.user }) });
  const { password } = (await res.json()) as { password: string };
  // One retry: on a loaded machine a Redis reply can miss the rig's 100 ms command timeout (a tempfail).
  const login = async (retry = true): Promise<void> => {
    const client = imapClient(rig.ports.plain, { user: ALICE.user, pass: password });
    try {
      await client.connect();
      await client.logout();
    } catch (err) {
      client.close();
      if (!retry) throw err;
      await login(false);
    }
  };
  await login();
  await new Promise((r) => setTimeout(r, 500));
  const before = stats(rig.redis.port);
  const N = 50;
  for (let i = 0; i < N; i++) await login();
  await new Promise((r) => setTimeout(r, 500));
  const after = stats(rig.redis.port);
  const per: Record<string, number> = {};
  for (const [name, calls] of after) per[name] = (calls - (before.get(name) ?? 0)) / N;
  // 3 throttle GETs + the app-password GET; the device facts come from the in-process cache; one XADD (audit).
  expect({ get: per.get ?? 0, xadd: per.xadd ?? 0 }).toEqual({ get: expect.any(Number), xadd: 1 });
  expect(per.get).toBeLessThanOrEqual(4.5);
  expect({ multi: (per.multi ?? 0) < 0.5, set: (per.set ?? 0) < 0.5, del: (per.del ?? 0) < 0.5 }).toEqual({ multi: true, set: true, del: true });
}, 120_000);
