// `mailwarden config check`: validates mailwarden.yaml and policy.yaml and compiles the policy's
// plugins and options, exactly as a start or reload would, without starting anything.
import { Command, CommanderError } from 'commander';
import { loadAll } from '../core/config';
import { ConfigError, displayPath } from '../core/errors';
import { compilePolicy } from '../policy/compile';
import type { PolicyConfig } from '../core/config-types';
import type { YamlSource } from '../core/config';

export const DEFAULT_CONFIG_FILE = 'config/mailwarden.yaml';

export interface ConfigCheckOptions {
  readonly config: string;
  readonly policy?: string;
}

/** Loads and compiles everything; returns the one-line summary, or throws ConfigError with every issue. */
export async function checkConfig(options: ConfigCheckOptions): Promise<string> {
  const { config, policy, policySource } = await loadAll(options.config, { policyFile: options.policy });
  await compile(policy, policySource, config.pluginDirs);
  const checks = `${policy.checks.length} check${policy.checks.length === 1 ? '' : 's'}`;
  return `config OK: ${displayPath(config.configFile)}, policy ${displayPath(policy.file)} (${checks}, version ${policy.version})`;
}

async function compile(policy: PolicyConfig, source: YamlSource, pluginDirs: readonly string[]): Promise<void> {
  try {
    await compilePolicy(policy, source, { pluginDirs });
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError([{ file: policy.file, line: null, keyPath: '', message: (err as Error).message }]);
  }
}

export function registerConfigCommands(program: Command): void {
  const config = program.command('config').description('Work with config/mailwarden.yaml and config/policy.yaml');
  config
    .command('check')
    .description('Validate the configuration and the policy (plugins and options included); exit 1 listing every problem')
    .option('-c, --config <file>', 'the mailwarden configuration file', DEFAULT_CONFIG_FILE)
    .option('-p, --policy <file>', "a policy file to check instead of the configuration's policyFile")
    .action(async (options: ConfigCheckOptions) => {
      try {
        process.stdout.write(`${await checkConfig(options)}\n`);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        process.stderr.write(`${err.message}\n`);
        // Exit status 1 without commander printing anything more (main() returns err.exitCode).
        throw new CommanderError(1, 'mailwarden.configInvalid', 'configuration invalid');
      }
    });
}
