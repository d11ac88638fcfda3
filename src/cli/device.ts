// `mailwarden device` sub-commands (placeholder until implemented).
import type { Command } from 'commander';

export function registerDeviceCommands(program: Command): void {
  void program;
}
