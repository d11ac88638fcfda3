// What `mailwarden start` says first, in plain words, to the person who started it: each listener's
// address, which store (the embedded one with a loud warning), and whether each upstream answers.
import type { MailwardenConfig, RedisConfig } from '../core/config-types';
import { probeTcp, type ProbeResult } from '../core/tcp-probe';

export interface StartFacts {
  readonly version: string;
  readonly configFile: string;
  readonly config: MailwardenConfig;
  readonly policy: { readonly version: string; readonly checks: number };
  readonly imap: readonly { host: string; port: number; tls: string }[];
  readonly smtp: readonly { host: string; port: number; tls: string }[];
  readonly admin: { host: string; port: number } | null;
  /** The gateway hooks listening (src/hooks/): nginx auth_http, Dovecot policy, Postfix policy. */
  readonly hooks?: { readonly [K in 'nginx' | 'dovecot' | 'postfix']?: { host: string; port: number } };
}

export interface UpstreamProbe {
  readonly protocol: 'IMAP' | 'SMTP';
  readonly host: string;
  readonly port: number;
  readonly result: ProbeResult;
}

/** Long enough for a LAN or a slow loopback, short enough that nobody waits for the banner. */
export const PROBE_TIMEOUT_MS = 1500;

const hostPort = (host: string, port: number) => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);
const TLS_WORDS: Readonly<Record<string, string>> = { implicit: 'TLS', starttls: 'STARTTLS', none: 'no TLS' };

function redisWhere(redis: RedisConfig | undefined): string {
  if (!redis) return 'Redis';
  const list = (a: readonly { host: string; port: number }[] | undefined) => (a ?? []).map((x) => hostPort(x.host, x.port)).join(', ');
  if (redis.mode === 'sentinel') return `Redis through Sentinel ${list(redis.sentinels)} (master "${redis.name ?? ''}")`;
  if (redis.mode === 'cluster') return `Redis Cluster ${list(redis.nodes)}`;
  return `Redis at ${hostPort(redis.host ?? '127.0.0.1', redis.port ?? 6379)}`;
}

/** The lines before the upstream probes come back: what is listening and which store. */
export function bannerHead(f: StartFacts): string[] {
  const lines = [`mailwarden ${f.version} is running (instance ${f.config.instanceName}, ${f.configFile}, policy ${f.policy.version} with ${f.policy.checks} checks)`];
  const listening: string[] = [
    ...f.imap.map((a) => `IMAP       ${hostPort(a.host, a.port)}  ${TLS_WORDS[a.tls] ?? a.tls}`),
    ...f.smtp.map((a) => `SMTP       ${hostPort(a.host, a.port)}  ${TLS_WORDS[a.tls] ?? a.tls}`),
    ...(f.admin ? [`admin API  http://${hostPort(f.admin.host, f.admin.port)}  (/healthz, /readyz, /metrics)`] : []),
    ...(f.hooks?.nginx ? [`hook       http://${hostPort(f.hooks.nginx.host, f.hooks.nginx.port)}  nginx auth_http`] : []),
    ...(f.hooks?.dovecot ? [`hook       http://${hostPort(f.hooks.dovecot.host, f.hooks.dovecot.port)}  Dovecot policy and passdb`] : []),
    ...(f.hooks?.postfix ? [`hook       ${hostPort(f.hooks.postfix.host, f.hooks.postfix.port)}  Postfix policy delegation`] : []),
  ];
  lines.push(...(listening.length ? listening : ['nothing (no imap, smtp or admin section)']).map((l, i) => `${i === 0 ? '  listening ' : '            '}${l}`));
  if (f.config.store.type === 'memory') {
    lines.push(
      '  store     the embedded in-memory store',
      '',
      '  !!! WARNING: IN-MEMORY STORE. Device reports, exemptions and app passwords live only in this',
      '  !!! process: they are gone when it stops, and a second instance would not see them. Fine for',
      '  !!! trying mailwarden out; for anything else set store.type: redis (docs/configuration.md).',
      '',
    );
  } else {
    lines.push(`  store     ${redisWhere(f.config.store.redis)}, key prefix ${f.config.store.redis?.keyPrefix ?? 'mw:'}`);
  }
  return lines;
}

/** The upstreams the configuration proxies to. */
export function upstreamsOf(config: MailwardenConfig): { protocol: 'IMAP' | 'SMTP'; host: string; port: number }[] {
  return [
    ...(config.imap ? [{ protocol: 'IMAP' as const, host: config.imap.upstream.host, port: config.imap.upstream.port }] : []),
    ...(config.smtp ? [{ protocol: 'SMTP' as const, host: config.smtp.upstream.host, port: config.smtp.upstream.port }] : []),
  ];
}

/** One TCP connect to each upstream, all at once, each within PROBE_TIMEOUT_MS. */
export async function probeUpstreams(config: MailwardenConfig, timeoutMs = PROBE_TIMEOUT_MS): Promise<UpstreamProbe[]> {
  return Promise.all(upstreamsOf(config).map(async (u) => ({ ...u, result: await probeTcp(u.host, u.port, timeoutMs) })));
}

export function upstreamLines(probes: readonly UpstreamProbe[]): string[] {
  return probes.map((p, i) => {
    const what = p.result.answers
      ? 'answers'
      : `DOES NOT ANSWER (${p.result.reason}): ${p.protocol} logins get a temporary failure until it does`;
    return `${i === 0 ? '  upstream  ' : '            '}${p.protocol}  ${hostPort(p.host, p.port)}  ${what}`;
  });
}
