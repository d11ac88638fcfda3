// `mailwarden policy simulate` against the example configuration (embedded memory store: simulated by
// the running instance through its admin API).
import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { registerPolicyCommands, runSimulate } from '../../src/cli/policy';
import { freePort, tempDir } from '../harness/ports';
import { startRuntime } from '../../src/app/runtime';
import { silentLogger } from '../../src/core/log';

const CONFIG = path.resolve(__dirname, '../../config/mailwarden.yaml');
const POLICY = path.resolve(__dirname, '../../config/policy.yaml');

it('with the memory store, the running instance simulates the candidate over the devices it holds', async () => {
  const dir = tempDir('policy-cli');
  const port = await freePort();
  // The example configuration, with the admin API on a free port and no protocol listeners.
  const config = path.join(dir, 'mailwarden.yaml');
  fs.writeFileSync(config, fs.readFileSync(CONFIG, 'utf8').replace('port: 8025', `port: ${port}`));
  fs.copyFileSync(POLICY, path.join(dir, 'policy.yaml'));
  const runtime = await startRuntime({ configFile: config, logger: silentLogger(), listeners: false, watch: false });
  try {
    const now = new Date().toISOString();
    for (const [deviceId, platform] of [['phone-1', 'ios'], ['mac-1', 'macos']] as const) {
      await runtime.store.putDevice(
        { deviceId, user: 'alice@example.com', platform, osVersion: '17.5', managed: true, apps: ['com.zhiliaoapp.musically'], reportedAt: now, receivedAt: now, source: 'test' },
        3600,
      );
    }
    const candidate = path.join(dir, 'candidate.yaml');
    fs.writeFileSync(candidate, fs.readFileSync(POLICY, 'utf8').replace('mode: enforce\n    action: deny\n    onUnknown: pass', 'mode: report\n    action: deny\n    onUnknown: pass'));
    const out = await runSimulate({ config, policy: candidate });
    expect(out.storeType).toBe('memory');
    expect(out.simulation.devices).toBe(2);
    expect(out.simulation.total).toMatchObject({ deniedNow: 1, deniedCandidate: 0, newlyAllowed: 1, newlyDenied: 0 });
    expect(out.simulation.newlyAllowed.map((d) => d.deviceId)).toEqual(['phone-1']);
    expect(out.blastRadius.ok).toBe(true);
    expect(out.text).toContain('running instance');
    expect(out.text).toContain('Blast-radius guard: would accept this policy.');
  } finally {
    await runtime.stop(0);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

it('a candidate with a mistake exits 1 naming file, line and key', async () => {
  const dir = tempDir('policy-cli');
  const stderr = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    const candidate = path.join(dir, 'candidate.yaml');
    fs.writeFileSync(candidate, 'checks:\n  - plugin: banned-apps\n    options:\n      apps: { ios: [7] }\n');
    const program = new Command().exitOverride();
    registerPolicyCommands(program);
    const error = await program.parseAsync(['node', 'mailwarden', 'policy', 'simulate', candidate, '--config', CONFIG]).catch((e: unknown) => e);
    expect(error).toMatchObject({ exitCode: 1 });
    expect(String(stderr.mock.calls.map((c) => c[0]).join(''))).toMatch(/candidate\.yaml:4: checks\[0\]\.options\.apps\.ios\[0\]: expected a string/);
  } finally {
    stderr.mockRestore();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
