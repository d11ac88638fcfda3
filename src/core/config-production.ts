// Settings that are fine for trying mailwarden out on loopback but dangerous in production: refused
// at load unless `insecure` allows them, each naming the key to change (issue 8 item 10).
import type { MailwardenConfig } from './config-types';
import type { SchemaProblem } from './config-schema';

/** What `insecure: [...]` may allow; `insecure: true` allows all of them. */
export const INSECURE_ALLOWANCES = ['builtin-app-password-key', 'change-me-secret', 'plaintext-listener'] as const;
export type InsecureAllowance = (typeof INSECURE_ALLOWANCES)[number];

type KeyPath = readonly (string | number)[];
type Config = Omit<MailwardenConfig, 'configFile'>;

/** Secrets a placeholder may be left in (`*` = every key or item); hooks with enabled: false are skipped. */
const SECRET_PATHS: readonly (readonly string[])[] = [
  ['store', 'redis', 'password'],
  ['admin', 'tokens', '*'],
  ['admin', 'console', 'oidc', 'clientSecret'],
  ['imap', 'upstream', 'masterPassword'],
  ['smtp', 'upstream', 'masterPassword'],
  ['hooks', 'nginx', 'secret'],
  ['hooks', 'nginx', 'backends', '*', 'masterPassword'],
  ['hooks', 'dovecot', 'apiKey'],
  ['hooks', 'dovecot', 'passdb', 'clientSecret'],
  ['hooks', 'dovecot', 'doveadm', 'apiKey'],
];

/** The example files' placeholders: change-me, changeme, change_me (any case). */
const PLACEHOLDER = /change[-_ ]?me/i;

/** 127.0.0.0/8, ::1 and localhost: nothing sent there leaves the machine. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

function hookEntries(c: Config): [string, { enabled?: boolean; listen: { host: string } }][] {
  return Object.entries(c.hooks ?? {}).filter(([, hook]) => hook && hook.enabled !== false) as [string, { enabled?: boolean; listen: { host: string } }][];
}

/** A shared store, or anything listening beyond loopback, is what a real deployment looks like. */
function productionLooking(c: Config): boolean {
  if (c.store.type === 'redis') return true;
  const hosts = [
    ...(c.imap?.listeners ?? []).map((l) => l.host),
    ...(c.smtp?.listeners ?? []).map((l) => l.host),
    ...(c.admin ? [c.admin.listen.host] : []),
    ...hookEntries(c).map(([, hook]) => hook.listen.host),
  ];
  return hosts.some((host) => !isLoopbackHost(host));
}

/** Every string at `secretPath` in `node`, with its key path. */
function secretsAt(node: unknown, secretPath: readonly string[], at: KeyPath = []): [KeyPath, string][] {
  if (secretPath.length === 0) return typeof node === 'string' ? [[at, node]] : [];
  if (node === null || typeof node !== 'object') return [];
  const record = node as Record<string, unknown>;
  if (at.length === 2 && at[0] === 'hooks' && record.enabled === false) return [];
  const [head, ...rest] = secretPath;
  const keys = head === '*' ? Object.keys(record) : [head!];
  return keys.flatMap((key) => secretsAt(record[key], rest, [...at, Array.isArray(node) ? Number(key) : key]));
}

const allow = (name: InsecureAllowance): string => `, or allow it with \`insecure: [${name}]\``;

/** The production footguns in `c` that `c.insecure` does not allow. Secrets must already be resolved. */
export function productionProblems(c: Config): SchemaProblem[] {
  const allowed = new Set<string>(c.insecure === true ? INSECURE_ALLOWANCES : c.insecure === false ? [] : c.insecure);
  const problems: SchemaProblem[] = [];
  const problem = (keyPath: KeyPath, message: string, linePath: KeyPath = keyPath) => problems.push({ keyPath, linePath, message });

  if (!allowed.has('builtin-app-password-key') && c.store.type === 'redis') {
    c.identity.sources.forEach((s, i) => {
      if (s.type !== 'app-password' || s.hmacKeyFile !== undefined) return;
      // The built-in key is in this repository: whoever can write to Redis (MDMs write there directly,
      // docs/redis-layout.md) could store the hash of an app password of their own choosing.
      problem(
        ['identity', 'sources', i, 'hmacKeyFile'],
        `required with a Redis store: without it the built-in key, published with mailwarden, hashes app passwords. Create one (openssl rand -base64 48 > app-password.key), set hmacKeyFile to it on every instance${allow('builtin-app-password-key')}`,
        ['identity', 'sources', i],
      );
    });
  }
  if (!allowed.has('change-me-secret') && productionLooking(c)) {
    for (const secretPath of SECRET_PATHS) {
      for (const [keyPath, value] of secretsAt(c, secretPath)) {
        if (PLACEHOLDER.test(value)) {
          problem(keyPath, `still the example's placeholder ("change-me"), in a setup with a Redis store or a listener beyond loopback: set a secret of your own (openssl rand -hex 32)${allow('change-me-secret')}`);
        }
      }
    }
  }
  if (!allowed.has('plaintext-listener')) {
    for (const protocol of ['imap', 'smtp'] as const) {
      c[protocol]?.listeners.forEach((l, i) => {
        if (l.tls !== 'none' || isLoopbackHost(l.host)) return;
        problem(
          [protocol, 'listeners', i, 'tls'],
          `none on ${l.host}:${l.port}, a non-loopback address: passwords would cross the network in clear. Use tls: implicit or starttls (with tls.cert and tls.key) or listen on 127.0.0.1${allow('plaintext-listener')} (a TLS-terminating proxy in front)`,
        );
      });
    }
  }
  return problems;
}
