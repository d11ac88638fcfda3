// `mailwarden policy simulate [FILE]`: who a candidate policy would deny, per check and per platform,
// compared with the policy the configuration names, over the devices in the configured store.
import { Command, CommanderError } from 'commander';
import { loadAll, loadPolicyFile } from '../core/config';
import { ConfigError, displayPath } from '../core/errors';
import { silentLogger } from '../core/log';
import { compilePolicy, type CompiledPolicy } from '../policy/compile';
import { simulate, formatSimulation, type SimulationResult } from '../policy/simulate';
import { checkBlastRadius, type BlastRadiusResult } from '../policy/blast-radius';
import { createStore } from '../store/create-store';
import { createAdminClient, resolveAdminTarget } from '../admin/client';
import type { MailwardenConfig } from '../core/config-types';
import { DEFAULT_CONFIG_FILE } from './config';
import { UsageError } from '../core/exit-codes';

export interface SimulateOptions {
  readonly config: string;
  /** Candidate policy file; default: the policy file the configuration names (compared with itself). */
  readonly policy?: string;
  readonly maxDevices?: number;
}

export interface SimulateOutput {
  readonly simulation: SimulationResult;
  readonly blastRadius: BlastRadiusResult;
  readonly storeType: 'memory' | 'redis';
  readonly text: string;
}

const MEMORY_NOTE = 'Simulated by the running instance (admin API): the embedded in-memory store lives inside it.';

/** Loads the configuration, the policy in force and the candidate, reads the devices, simulates. */
export async function runSimulate(options: SimulateOptions): Promise<SimulateOutput> {
  const { config, policy, policySource } = await loadAll(options.config);
  const current = await compilePolicy(policy, policySource, { pluginDirs: config.pluginDirs });
  let candidate: CompiledPolicy = current;
  if (options.policy !== undefined) {
    const loaded = await loadPolicyFile(options.policy);
    candidate = await compilePolicy(loaded.policy, loaded.source, { pluginDirs: config.pluginDirs });
  }

  const { simulation, blastRadius } =
    config.store.type === 'memory'
      ? await simulateOnInstance(options, candidate)
      : await simulateOnStore(config, current, candidate);
  const lines = [
    `Policy in force: ${displayPath(policy.file)}; candidate: ${displayPath(candidate.config.file)}`,
    formatSimulation(simulation, { maxDevices: options.maxDevices ?? 20 }),
    '',
    blastRadius.ok ? 'Blast-radius guard: would accept this policy.' : `Blast-radius guard: would refuse — ${blastRadius.message}`,
    ...(config.store.type === 'memory' ? ['', MEMORY_NOTE] : []),
  ];
  return { simulation, blastRadius, storeType: config.store.type, text: lines.join('\n') };
}

/** Redis (shared by every instance): read the devices from the store directly. */
async function simulateOnStore(
  config: MailwardenConfig,
  current: CompiledPolicy,
  candidate: CompiledPolicy,
): Promise<{ simulation: SimulationResult; blastRadius: BlastRadiusResult }> {
  const store = await createStore(config.store, silentLogger());
  try {
    const devices = await store.listDevices();
    const simulation = await simulate(current, candidate, devices, {
      maxReportAgeHours: config.store.maxReportAgeHours,
      groups: config.groups,
      store,
    });
    return { simulation, blastRadius: checkBlastRadius(simulation, candidate.config.blastRadius) };
  } finally {
    await store.close();
  }
}

/**
 * The embedded store lives inside the running proxy, so the running instance simulates (POST
 * /v1/policy/simulate with the candidate's text) against the devices it holds.
 */
async function simulateOnInstance(
  options: SimulateOptions,
  candidate: CompiledPolicy,
): Promise<{ simulation: SimulationResult; blastRadius: BlastRadiusResult }> {
  const client = createAdminClient(await resolveAdminTarget({ config: options.config }));
  const result = (await client.simulate(options.policy === undefined ? null : candidate.config.text)) as SimulationResult & {
    blastRadius: BlastRadiusResult;
  };
  const { blastRadius, ...simulation } = result;
  return { simulation, blastRadius };
}

export function registerPolicyCommands(program: Command): void {
  const policy = program.command('policy').description('Work with the policy (config/policy.yaml)');
  policy
    .command('simulate')
    .description(
      'Compare a candidate policy with the policy in force over the devices in the store: per check and per ' +
        'platform, who would be denied, newly denied or newly allowed, and whether the blast-radius guard would accept it',
    )
    .argument('[file]', 'candidate policy file (default: the policy in force, compared with itself)')
    .option('-c, --config <file>', 'the mailwarden configuration file', DEFAULT_CONFIG_FILE)
    .option('-p, --policy <file>', 'candidate policy file (same as the FILE argument)')
    .option('--json', 'print the simulation as JSON')
    .option('--max-devices <n>', 'list at most this many changed devices', (v) => Number.parseInt(v, 10), 20)
    .action(async (file: string | undefined, opts: { config: string; policy?: string; json?: boolean; maxDevices: number }) => {
      if (file !== undefined && opts.policy !== undefined && file !== opts.policy) {
        throw new UsageError('give the candidate policy either as FILE or as --policy, not both');
      }
      try {
        const out = await runSimulate({ config: opts.config, policy: file ?? opts.policy, maxDevices: opts.maxDevices });
        const json = { ...out.simulation, blastRadius: out.blastRadius, storeType: out.storeType };
        process.stdout.write(opts.json ? `${JSON.stringify(json, null, 2)}\n` : `${out.text}\n`);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        process.stderr.write(`${err.message}\n`);
        throw new CommanderError(1, 'mailwarden.policyInvalid', 'policy invalid');
      }
    });
}
