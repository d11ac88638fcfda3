// `mailwarden start`: runs the proxy until SIGTERM/SIGINT, then drains sessions and exits 0.
// SIGHUP and edits of the config files reload it (validated first; the old config stays on error).
// For a person (logs in text: a terminal, or logging.format text) the first lines are a plain
// banner (src/cli/start-banner.ts); the start-up log lines follow it. For a service (JSON logs) the
// same facts are log entries. With `workers` above 1 this process is the node:cluster primary and each
// worker runs this command again (src/app/workers.ts); the first worker shows the banner.
import cluster from 'node:cluster';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { Command } from 'commander';
import { startRuntime, type Runtime } from '../app/runtime';
import { runPrimary, workerLink } from '../app/workers';
import { loadConfigFile } from '../core/config';
import { errorText } from '../core/errors';
import { consoleFormat, createLogger, type Logger } from '../core/log';
import { VERSION } from '../core/version';
import { bannerHead, probeUpstreams, upstreamLines, type UpstreamProbe } from './start-banner';

/** Holds console log lines until release(), then passes everything through to stdout. */
class HeldStdout extends Writable {
  private held: Buffer[] | null = [];

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    if (this.held) this.held.push(chunk);
    else process.stdout.write(chunk);
    done();
  }

  release(): void {
    const held = this.held ?? [];
    this.held = null;
    for (const chunk of held) process.stdout.write(chunk);
  }
}

export function registerStartCommand(program: Command): void {
  program
    .command('start')
    .description('run the IMAP / SMTP proxy and the admin API')
    .option('-c, --config <file>', 'configuration file', 'config/mailwarden.yaml')
    .option('--force-policy', 'activate the policy even if the blast-radius guard refuses it')
    .action(async (opts: { config: string; forcePolicy?: boolean }) => {
      const { logging, workers, imap } = await loadConfigFile(opts.config);
      if (workers > 1 && cluster.isPrimary) {
        const primaryLog = createLogger({ level: logging.level, format: logging.format, file: logging.file });
        process.exitCode = await runPrimary(workers, primaryLog, imap?.drainMs ?? 10000);
        return;
      }
      const link = workerLink();
      const first = (link?.index ?? 0) === 0;
      const forPerson = first && consoleFormat(logging.format) === 'text';
      const held = forPerson ? new HeldStdout() : null;
      const log = createLogger({ level: logging.level, format: logging.format, file: logging.file, ...(held && { consoleStream: held }) });
      let runtime: Runtime;
      try {
        runtime = await startRuntime({ configFile: opts.config, forcePolicy: opts.forcePolicy ?? false, logger: log, workers: link, admin: first });
      } catch (err) {
        held?.release(); // a start that failed: its log lines, then the one-line error
        throw err;
      }
      const config = runtime.config();
      if (held) {
        process.stdout.write(
          `${bannerHead({
            version: VERSION,
            configFile: path.relative(process.cwd(), path.resolve(opts.config)) || opts.config,
            config,
            policy: { version: runtime.policy().version, checks: runtime.policy().checks.length },
            imap: runtime.imap?.addresses ?? [],
            smtp: runtime.smtp?.addresses ?? [],
            admin: runtime.admin?.address ?? null,
            hooks: runtime.hooks()?.addresses ?? {},
          }).join('\n')}\n`,
        );
      }
      link?.ready();
      // Already serving: the probes only decide what is said, never hold anything up. The banner
      // stays together; the start-up log lines (and any login meanwhile) follow it.
      if (first) void probeUpstreams(config).then((probes) => {
        if (!held) return logProbes(log, probes);
        process.stdout.write(`${upstreamLines(probes).join('\n')}\n\n`);
        held.release();
      });
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
      // A worker's channel to the primary would keep it running after the stop.
      if (cluster.isWorker) process.disconnect();
    });
}

function logProbes(log: Logger, probes: readonly UpstreamProbe[]): void {
  for (const p of probes) {
    const fields = { protocol: p.protocol.toLowerCase(), host: p.host, port: p.port };
    if (p.result.answers) log.info('upstream answers', fields);
    else log.warn(`upstream does not answer: ${p.protocol} logins get a temporary failure until it does`, { ...fields, reason: p.result.reason });
  }
}
