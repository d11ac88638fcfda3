// Starts the gateway hooks configured under `hooks:` (nginx auth_http, Dovecot policy + passdb,
// Postfix policy), each on its own listener. Settings are read per request, so a reload changes
// secrets, backends and limits of time; listen addresses take effect at the next start.
import type { Gate } from '../app/gate';
import type { HooksConfig } from '../core/config-types';
import type { Logger } from '../core/log';
import type { Admission, AdmissionRequest } from '../admission/types';
import { timed, type HookDeps, type HookName, type HookOutcome } from './hook';
import { startHookHttpServer, type HookHttpServer } from './http-listener';
import { startLineHookServer, type LineHookServer } from './line-listener';
import { authHttpRefusal, createNginxHandler } from './nginx-auth-http';
import { createDovecotPolicyHandler, policyRefusal, type DovecotSessions } from './dovecot-policy';
import { createDovecotPassdbHandler, type VerifyAppPassword } from './dovecot-passdb';
import { answerPostfix, type PostfixConnectionState } from './postfix-policy';

/** Paths on the Dovecot hook listener (docs/hooks.md). */
export const DOVECOT_POLICY_PATH = '/dovecot/policy';
export const DOVECOT_PASSDB_PATH = '/dovecot/passdb';

export interface HooksDeps {
  admit(request: AdmissionRequest): Promise<Admission>;
  /** For the Dovecot passdb introspection (the composition root binds the store and the HMAC key). */
  readonly verifyAppPassword: VerifyAppPassword;
  readonly log: Logger;
  /** The hooks section in force now. */
  config(): HooksConfig;
  readonly metrics?: { onHookRequest(hook: string, outcome: string, seconds: number): void };
}

export interface HooksService {
  readonly addresses: { readonly [K in 'nginx' | 'dovecot' | 'postfix']?: { host: string; port: number } };
  /** Dovecot logins remembered for revocation (null without a Dovecot hook). */
  readonly dovecotSessions: DovecotSessions | null;
  close(): Promise<void>;
}

/** The hooks' view of the runtime's Gate. */
export function hooksDepsFromGate(gate: Gate, verifyAppPassword: VerifyAppPassword, metrics?: HooksDeps['metrics']): HooksDeps {
  return {
    admit: (request) => gate.admit(request),
    verifyAppPassword,
    log: gate.log,
    config: () => gate.config().hooks,
    ...(metrics ? { metrics } : {}),
  };
}

/** The hooks that listen: present and enabled. */
export function enabledHooks(config: HooksConfig): HooksConfig {
  return {
    ...(config.nginx?.enabled ? { nginx: config.nginx } : {}),
    ...(config.dovecot?.enabled ? { dovecot: config.dovecot } : {}),
    ...(config.postfix?.enabled ? { postfix: config.postfix } : {}),
  };
}

/**
 * What a running hook listener was started with (enabled hooks, their addresses and listener
 * limits): when a reload changes it, the runtime restarts the hooks; anything else is read per request.
 */
export function hookListenerShape(config: HooksConfig): string {
  const on = enabledHooks(config);
  return JSON.stringify([on.nginx, on.dovecot, on.postfix].map((hook) => hook && { listen: hook.listen, limits: hook.limits }));
}

export async function startHooks(deps: HooksDeps): Promise<HooksService | null> {
  const initial = enabledHooks(deps.config());
  if (!initial.nginx && !initial.dovecot && !initial.postfix) return null;
  const hookDeps: HookDeps = {
    admit: deps.admit,
    log: deps.log,
    observe: (hook: HookName, outcome: HookOutcome, seconds: number) => deps.metrics?.onHookRequest(hook, outcome, seconds),
  };
  const servers: (HookHttpServer | LineHookServer)[] = [];
  const addresses: { -readonly [K in keyof HooksService['addresses']]: { host: string; port: number } } = {};
  let dovecotSessions: DovecotSessions | null = null;
  const close = async (): Promise<void> => {
    dovecotSessions?.clear();
    await Promise.all(servers.map((s) => s.close()));
  };
  try {
    if (initial.nginx) {
      const current = () => deps.config().nginx ?? initial.nginx!;
      const handle = createNginxHandler(hookDeps, current);
      const server = await startHookHttpServer({
        ...initial.nginx.listen,
        limits: initial.nginx.limits,
        log: deps.log,
        name: 'nginx',
        refuse: (status) => authHttpRefusal(status),
        handler: handle,
      });
      servers.push(server);
      addresses.nginx = server.address;
    }
    if (initial.dovecot) {
      const current = () => deps.config().dovecot ?? initial.dovecot!;
      const policy = createDovecotPolicyHandler(hookDeps, current);
      const passdb = createDovecotPassdbHandler({ ...hookDeps, verifyAppPassword: deps.verifyAppPassword }, current);
      dovecotSessions = policy.sessions;
      const server = await startHookHttpServer({
        ...initial.dovecot.listen,
        limits: initial.dovecot.limits,
        log: deps.log,
        name: 'dovecot',
        refuse: () => policyRefusal(),
        handler: async (request) => {
          if (request.path === DOVECOT_POLICY_PATH) return policy.handle(request);
          if (request.path === DOVECOT_PASSDB_PATH) return passdb(request);
          return { ...policyRefusal(), status: 404 };
        },
      });
      servers.push(server);
      addresses.dovecot = server.address;
    }
    if (initial.postfix) {
      const current = () => deps.config().postfix ?? initial.postfix!;
      const server = await startLineHookServer({
        ...initial.postfix.listen,
        limits: initial.postfix.limits,
        log: deps.log,
        name: 'postfix',
        allowFrom: () => current().allowFrom,
        connect: () => {
          const state: PostfixConnectionState = {};
          return (attributes) =>
            timed(hookDeps, 'postfix', async () => {
              const answer = await answerPostfix(hookDeps, attributes, state);
              return { outcome: answer.outcome, answer: answer.reply };
            }, null);
        },
      });
      servers.push(server);
      addresses.postfix = server.address;
    }
  } catch (err) {
    await close();
    throw err;
  }
  return { addresses, dovecotSessions, close };
}
