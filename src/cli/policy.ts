// `mailwarden policy` sub-commands (placeholder until implemented).
import type { Command } from 'commander';

export function registerPolicyCommands(program: Command): void {
  void program;
}
