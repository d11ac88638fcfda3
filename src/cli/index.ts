#!/usr/bin/env node
// The `mailwarden` command: one CLI for ops and scripts. Each sub-command group lives in its own
// module under src/cli/; errors print one line and exit non-zero.
import { Command, CommanderError } from 'commander';
import { registerStartCommand } from './start';
import { registerConfigCommands } from './config';
import { registerPolicyCommands } from './policy';
import { registerDeviceCommands } from './device';
import { registerProfileCommand } from './profile';
import { registerAuditCommands } from './audit';
import { registerFakeDeviceCommands } from './fake-device';
import { registerAdminCommands } from './admin';
import { errorText } from '../core/errors';

export function buildProgram(): Command {
  const program = new Command('mailwarden')
    .description('Conditional access for email: an IMAP and SMTP-submission proxy gated on device compliance')
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
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    process.stderr.write(`mailwarden: ${errorText(err)}\n`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv).then((code) => {
    process.exitCode = code;
  });
}
