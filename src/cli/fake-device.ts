// `mailwarden fake-device` sub-commands (placeholder until implemented).
import type { Command } from 'commander';

export function registerFakeDeviceCommands(program: Command): void {
  void program;
}
