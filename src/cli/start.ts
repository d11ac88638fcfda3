// `mailwarden start`: runs the proxy until SIGTERM/SIGINT, then drains sessions and exits 0.
// SIGHUP and edits of the config files reload it (validated first; the old config stays on error).
import type { Command } from 'commander';
import { startRuntime } from '../app/runtime';
import { errorText } from '../core/errors';

export function registerStartCommand(program: Command): void {
  program
    .command('start')
    .description('run the IMAP / SMTP proxy and the admin API')
    .option('-c, --config <file>', 'configuration file', 'config/mailwarden.yaml')
    .option('--force-policy', 'activate the policy even if the blast-radius guard refuses it')
    .action(async (opts: { config: string; forcePolicy?: boolean }) => {
      const runtime = await startRuntime({ configFile: opts.config, forcePolicy: opts.forcePolicy ?? false });
      await new Promise<void>((resolve) => {
        const shutdown = (signal: string) => {
          runtime.log.info('shutting down', { signal });
          runtime.stop().then(resolve, (err: unknown) => {
            runtime.log.error('error while stopping', { error: errorText(err) });
            resolve();
          });
        };
        process.once('SIGTERM', () => shutdown('SIGTERM'));
        process.once('SIGINT', () => shutdown('SIGINT'));
      });
    });
}
