// `mailwarden audit` sub-commands (placeholder until implemented).
import type { Command } from 'commander';

export function registerAuditCommands(program: Command): void {
  void program;
}
