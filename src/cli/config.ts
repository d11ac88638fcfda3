// `mailwarden config check`: validates mailwarden.yaml and policy.yaml and compiles the policy's
// plugins and options, exactly as a start or reload would, without starting anything.
// `mailwarden config show`: the effective configuration (defaults filled in, secrets masked), like doveconf -n.
import { Command, CommanderError } from 'commander';
import YAML from 'yaml';
import { loadAll } from '../core/config';
import { ConfigError, displayPath } from '../core/errors';
import { EXIT } from '../core/exit-codes';
import { redact } from '../core/log';
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
    .description('Validate the configuration and the policy (plugins and options included); exit 78 listing every problem')
    .option('-c, --config <file>', 'the mailwarden configuration file', DEFAULT_CONFIG_FILE)
    .option('-p, --policy <file>', "a policy file to check instead of the configuration's policyFile")
    .action(async (options: ConfigCheckOptions) => {
      try {
        process.stdout.write(`${await checkConfig(options)}\n`);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        process.stderr.write(`${err.message}\n`);
        // The configuration exit status without commander printing anything more (main() returns err.exitCode).
        throw new CommanderError(EXIT.config, 'mailwarden.configInvalid', 'configuration invalid');
      }
    });
  config
    .command('show')
    .description('Print the effective configuration and policy: every default filled in, paths resolved, secrets masked')
    .option('-c, --config <file>', 'the mailwarden configuration file', DEFAULT_CONFIG_FILE)
    .option('--json', 'as JSON instead of YAML')
    .action(async (options: { config: string; json?: boolean }) => {
      process.stdout.write(await showConfig(options.config, options.json ?? false));
    });
}

/** The configuration in force after loading: what `start` would run with (policy text left out, it is the file). */
export async function showConfig(file: string, json: boolean): Promise<string> {
  const { config, policy } = await loadAll(file);
  const { configFile, ...settings } = config;
  const { text: _text, file: policyFile, version, ...rules } = policy;
  const shown = redact({ ...settings, policy: { file: policyFile, version, ...rules } });
  if (json) return `${JSON.stringify(shown, null, 2)}\n`;
  return `# effective configuration of ${displayPath(configFile)}: defaults filled in, paths resolved, secrets masked\n${YAML.stringify(shown, { lineWidth: 0 })}`;
}
