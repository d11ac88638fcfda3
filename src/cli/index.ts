#!/usr/bin/env node
// The `mailwarden` command: one CLI for ops and scripts. Each sub-command group lives in its own
// module under src/cli/; errors print one line and exit with a status that says what kind of failure
// it was (src/core/exit-codes.ts, docs/errors.md#command-line).
import { Command, CommanderError } from 'commander';
import { registerStartCommand } from './start';
import { registerConfigCommands } from './config';
import { registerPolicyCommands } from './policy';
import { registerDeviceCommands } from './device';
import { registerProfileCommand } from './profile';
import { registerAuditCommands } from './audit';
import { registerFakeDeviceCommands } from './fake-device';
import { registerAdminCommands } from './admin';
import { registerConnectorCommands } from './connector';
import { ConfigError, errorText } from '../core/errors';
import { CliError, EXIT } from '../core/exit-codes';
import { VERSION } from '../core/version';
import { AdminApiError } from '../admin/client';

export function buildProgram(): Command {
  const program = new Command('mailwarden')
    .description('Conditional access for email: an IMAP and SMTP-submission proxy gated on device compliance')
    .version(VERSION, '-V, --version', 'print the version')
    .showHelpAfterError()
    .exitOverride();
  registerStartCommand(program);
  registerConfigCommands(program);
  registerPolicyCommands(program);
  registerDeviceCommands(program);
  registerProfileCommand(program);
  registerAuditCommands(program);
  registerFakeDeviceCommands(program);
  registerAdminCommands(program);
  registerConnectorCommands(program);
  return program;
}

/** The exit status for an error that reached the top: what kind of failure it was. */
export function exitStatusOf(err: unknown): number {
  if (err instanceof CliError) return err.exitStatus;
  if (err instanceof ConfigError) return EXIT.config;
  if (err instanceof AdminApiError) {
    if (err.status === 0 || err.status === 502 || err.status === 503 || err.status === 504) return EXIT.unreachable;
    if (err.status >= 400 && err.status < 500) return EXIT.refused;
  }
  if ((err as { name?: string } | null)?.name === 'StoreUnavailableError') return EXIT.unreachable;
  return EXIT.failure;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander has printed its message (or the help, or the version) already.
      if (err.exitCode === 0) return 0;
      return err.code.startsWith('mailwarden.') ? err.exitCode : EXIT.usage;
    }
    process.stderr.write(`mailwarden: ${errorText(err)}\n`);
    return exitStatusOf(err);
  }
}

/**
 * Output piped into `head` (or a pager that quit): the reader is gone, so stop quietly instead of
 * dying with an EPIPE stack trace; nothing more can be shown anyway.
 */
export function exitQuietlyOnEpipe(stream: NodeJS.WriteStream): void {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
  });
}

if (require.main === module) {
  exitQuietlyOnEpipe(process.stdout);
  exitQuietlyOnEpipe(process.stderr);
  main(process.argv).then((code) => {
    process.exitCode = code;
  });
}
