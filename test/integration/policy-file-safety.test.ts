// A half-written or mistaken policy file against a real redis-server (issue 8 item 1): the file
// rewritten in place in two chunks 0.6 s apart, the first chunk a valid policy without the TikTok
// check, must never let a TikTok iPhone log in; going back to the policy in force before a mistaken
// loosening is neither refused by the blast-radius guard nor undone by the brake, nor needs
// --force-policy at the next start.
import fs from 'node:fs';
import { cleanupRedis, startRedis, type RedisServer } from '../harness/redis';
import { capturingLogger } from '../fixtures/plugins/policy-fixtures';
import { policyYaml, startRig, TIKTOK, writeRigFiles, type Rig } from './policy-rig';
import type { DeviceRecord } from '../../src/store/device-store';

let redis: RedisServer;
let prefixSeq = 0;
const dirs: string[] = [];

beforeAll(async () => {
  redis = await startRedis();
});

afterAll(async () => {
  await cleanupRedis(redis);
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** 35 known devices, 12 of them iPhones with TikTok: restoring the check newly denies 34%, above the 20% limit. */
async function seedFleet(rig: Rig): Promise<void> {
  const now = new Date().toISOString();
  for (let i = 0; i < 35; i++) {
    const tiktok = i < 12;
    const record: DeviceRecord = {
      deviceId: tiktok ? `iphone-${i}` : `laptop-${i}`,
      user: `user${i}@example.com`,
      platform: tiktok ? 'ios' : 'macos',
      osVersion: '17.5',
      managed: true,
      apps: tiktok ? [TIKTOK] : [],
      reportedAt: now,
      source: 'test',
      receivedAt: now,
    };
    await rig.runtime.store.putDevice(record, 3600);
  }
}

async function until(condition: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > end) throw new Error('timed out');
    await sleep(25);
  }
}

async function open(policy: string, options: Parameters<typeof startRig>[3] = {}): Promise<Rig> {
  const rig = await startRig(redis, `safety${++prefixSeq}:`, policy, options);
  dirs.push(rig.dir);
  return rig;
}

test('two-chunk in-place write: no TikTok iPhone login is allowed at any moment, and the full file ends up in force', async () => {
  const rig = await open(policyYaml(), { watch: true });
  try {
    await seedFleet(rig);
    const full = policyYaml({ extra: 'messages: { warnPrefix: "Note:" }' });
    const cut = full.indexOf('  - id: no-tiktok');
    const firstChunk = full.slice(0, cut);
    expect(cut).toBeGreaterThan(0);

    let allowed = 0;
    let decisions = 0;
    let running = true;
    const probe = (async () => {
      while (running) {
        const d = await rig.decide('iphone-3', 'user3@example.com');
        decisions++;
        if (d.action === 'allow') allowed++;
        await sleep(5);
      }
    })();

    const fd = fs.openSync(rig.policyFile, 'r+');
    fs.ftruncateSync(fd, 0);
    fs.writeSync(fd, firstChunk, 0);
    await sleep(600);
    fs.writeSync(fd, full.slice(cut), Buffer.byteLength(firstChunk));
    fs.closeSync(fd);

    await until(() => rig.runtime.policy().config.text === full);
    await sleep(500);
    running = false;
    await probe;
    expect(decisions).toBeGreaterThan(50);
    expect(allowed).toBe(0);
    expect(rig.runtime.policy().checks.map((c) => c.id)).toEqual(['require-device', 'no-tiktok']);
  } finally {
    await rig.stop();
  }
});

test('a reload between the two chunks loads the first one (a loosening); the full file is then accepted by the watcher', async () => {
  const { log, entries } = capturingLogger();
  const rig = await open(policyYaml(), { watch: true, logger: log });
  try {
    await seedFleet(rig);
    const full = policyYaml({ extra: 'messages: { warnPrefix: "Note:" }' });
    const cut = full.indexOf('  - id: no-tiktok');
    const firstChunk = full.slice(0, cut);
    const fd = fs.openSync(rig.policyFile, 'r+');
    fs.ftruncateSync(fd, 0);
    fs.writeSync(fd, firstChunk, 0);
    // What a SIGHUP sent between the chunks does: the reload reads the valid first chunk.
    expect(await rig.reload()).toMatchObject({ result: 'ok', unchanged: false });
    expect(entries.find((e) => e.msg === 'policy-loosened')).toMatchObject({ checks: ['no-tiktok'] });
    await sleep(600);
    fs.writeSync(fd, full.slice(cut), Buffer.byteLength(firstChunk));
    fs.closeSync(fd);

    await until(() => rig.runtime.policy().config.text === full);
    expect(await rig.decide('iphone-3', 'user3@example.com')).toMatchObject({ action: 'deny', reasonCode: 'BANNED_APP' });
    expect(entries.filter((e) => e.msg === 'policy reload refused by the blast-radius guard; the policy in force stays')).toEqual([]);
  } finally {
    await rig.stop();
  }
});

test('a mistaken loosening is logged as one; returning to the policy before it is not refused by the guard', async () => {
  const { log, entries } = capturingLogger();
  const rig = await open(policyYaml(), { logger: log });
  try {
    await seedFleet(rig);
    fs.writeFileSync(rig.policyFile, policyYaml({ withoutTiktok: true }));
    expect(await rig.reload()).toMatchObject({ result: 'ok' });
    const loosened = entries.find((e) => e.msg === 'policy-loosened');
    expect(loosened).toMatchObject({ level: 'warn', checks: ['no-tiktok'] });
    expect(String(loosened?.message)).toContain('no-tiktok removed');
    expect((await rig.decide('iphone-1', 'user1@example.com')).action).toBe('allow');

    fs.writeFileSync(rig.policyFile, policyYaml());
    expect(await rig.reload()).toMatchObject({ result: 'ok', unchanged: false });
    expect(await rig.decide('iphone-1', 'user1@example.com')).toMatchObject({ action: 'deny', reasonCode: 'BANNED_APP' });

    // A genuinely new policy that denies as many is still refused: the guard is not switched off.
    const noMacs = '  - id: no-macs\n    plugin: platforms\n    mode: enforce\n    options: { deny: [macos] }\n    message: "No Macs. Ref {refId}."\n';
    fs.writeFileSync(rig.policyFile, policyYaml() + noMacs);
    expect(await rig.reload()).toMatchObject({ result: 'blast-radius' });
  } finally {
    await rig.stop();
  }
});

test('restart with the correct file after a mistaken loosening needs no --force-policy', async () => {
  const prefix = `safety${++prefixSeq}:`;
  const files = await writeRigFiles(redis, prefix, policyYaml());
  dirs.push(files.dir);
  let rig = await startRig(redis, prefix, policyYaml(), files);
  await seedFleet(rig);
  fs.writeFileSync(rig.policyFile, policyYaml({ withoutTiktok: true }));
  expect(await rig.reload()).toMatchObject({ result: 'ok' });
  await rig.stop();

  fs.writeFileSync(rig.policyFile, policyYaml());
  rig = await startRig(redis, prefix, policyYaml(), files);
  try {
    expect(rig.runtime.policy().checks.map((c) => c.id)).toContain('no-tiktok');
    expect(await rig.decide('iphone-1', 'user1@example.com')).toMatchObject({ action: 'deny', reasonCode: 'BANNED_APP' });
  } finally {
    await rig.stop();
  }
});

test('the brake is not armed against a check restored after a mistaken loosening', async () => {
  const brake = '{ enabled: true, windowSeconds: 60, minLogins: 50, maxDeniedPercent: 30 }';
  const rig = await open(policyYaml({ brake, maxNewlyDeniedPercent: 100 }));
  try {
    await seedFleet(rig);
    fs.writeFileSync(rig.policyFile, policyYaml({ brake, maxNewlyDeniedPercent: 100, withoutTiktok: true }));
    expect(await rig.reload()).toMatchObject({ result: 'ok' });
    fs.writeFileSync(rig.policyFile, policyYaml({ brake, maxNewlyDeniedPercent: 100 }));
    expect(await rig.reload()).toMatchObject({ result: 'ok' });
    let allowed = 0;
    for (let i = 0; i < 120; i++) {
      const n = i % 12;
      if ((await rig.decide(`iphone-${n}`, `user${n}@example.com`)).action === 'allow') allowed++;
    }
    expect(allowed).toBe(0);
    expect(rig.runtime.decider.brake.status().tripped).toEqual([]);
  } finally {
    await rig.stop();
  }
});
