// The SMTP submission front end as the runtime drives it: one smtp-server listener per configured
// address, all sharing one set of session handlers (admission at AUTH, then the upstream), the notifier and graceful shutdown.
import fs from 'node:fs';
import type { SmtpConfig } from '../core/config-types';
import type { Gate, ProtocolService } from '../app/gate';
import { startListener, type ListenerOptions, type RunningListener } from './listener';
import { Notifier, type NotifyStore } from './notify';
import { SmtpSessions } from './session';
import { Upstream } from './upstream';

export interface SmtpServiceOptions {
  /**
   * Shared store for the user notification's last-sent flag (smtp.notifyUser). Without it no
   * notification is sent (logged once at start when notifyUser is enabled).
   */
  readonly store?: NotifyStore;
}

/** Listener certificate from the top-level `tls` section (paths already absolute after loading). */
function listenerTls(gate: Gate, config: SmtpConfig): ListenerOptions['tls'] {
  if (!config.listeners.some((l) => l.tls !== 'none')) return undefined;
  const files = gate.config().tls;
  if (!files) throw new Error('smtp: a listener uses TLS but the configuration has no tls.cert / tls.key');
  return {
    cert: fs.readFileSync(files.cert),
    key: fs.readFileSync(files.key),
    ...(files.clientCa ? { ca: fs.readFileSync(files.clientCa) } : {}),
  };
}

export async function startSmtpService(gate: Gate, config: SmtpConfig, options: SmtpServiceOptions = {}): Promise<ProtocolService> {
  // Upstream and notification settings are read per session, so a reload applies to new sessions
  // (src/app/reload-scope.ts says so in the log); listeners, the size limit (advertised in EHLO) and
  // the host name (in the greeting, and so also in the upstream EHLO) stay as started.
  const current = (): SmtpConfig => gate.config().smtp ?? config;
  const upstream = new Upstream(gate.log, () => ({ upstream: current().upstream, hostname: config.hostname }), gate.breakers, gate.metrics);
  if (config.notifyUser?.enabled && !options.store) gate.log.warn('smtp.notifyUser is enabled but no store was given; no notification will be sent');
  const notifier = options.store
    ? new Notifier({ upstream, store: options.store, log: gate.log, settings: () => current().notifyUser, helpdesk: () => gate.policy().helpdesk })
    : null;
  const proxy = new SmtpSessions({ gate, upstream, notifier, maxMessageBytes: config.maxMessageBytes, upstreamLogin: () => current().upstream.login });
  const tls = listenerTls(gate, config);
  const running: RunningListener[] = [];
  try {
    for (const listener of config.listeners) {
      running.push(await startListener({ listener, hostname: config.hostname, maxMessageBytes: config.maxMessageBytes, greetingDelayMs: config.greetingDelayMs, tls, limits: config }, proxy, gate.log));
    }
  } catch (err) {
    await Promise.all(running.map((l) => l.close(0)));
    throw err;
  }
  gate.log.info('smtp listening', { event: 'smtp.start', addresses: running.map((l) => l.address) });
  return {
    addresses: running.map((l) => l.address),
    shutdown: async (drainMs) => {
      await Promise.all(running.map((l) => l.close(drainMs)));
    },
  };
}
