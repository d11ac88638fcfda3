// `mailwarden policy simulate` against the example configuration (embedded memory store: no devices).
import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { registerPolicyCommands, runSimulate } from '../../src/cli/policy';
import { tempDir } from '../harness/ports';

const CONFIG = path.resolve(__dirname, '../../config/mailwarden.yaml');
const POLICY = path.resolve(__dirname, '../../config/policy.yaml');

it('compares a candidate with the policy in force and says why no device is visible with the memory store', async () => {
  const dir = tempDir('policy-cli');
  try {
    const candidate = path.join(dir, 'candidate.yaml');
    fs.writeFileSync(candidate, fs.readFileSync(POLICY, 'utf8').replace('mode: enforce\n    action: deny\n    onUnknown: pass', 'mode: report\n    action: deny\n    onUnknown: pass'));
    const out = await runSimulate({ config: CONFIG, policy: candidate });
    expect(out.storeType).toBe('memory');
    expect(out.simulation.devices).toBe(0);
    expect(out.simulation.candidateVersion).not.toBe(out.simulation.currentVersion);
    expect(out.blastRadius.ok).toBe(true);
    expect(out.text).toContain('No device is known to the store');
    expect(out.text).toContain('embedded in-memory store');
    expect(out.text).toContain('Blast-radius guard: would accept this policy.');
  } finally {
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
