// `mailwarden start` sub-commands (placeholder until implemented).
import type { Command } from 'commander';

export function registerStartCommand(program: Command): void {
  void program;
}
