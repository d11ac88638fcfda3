// A small typed client for the admin API (docs/admin-api.md), used by the CLI: base URL and token
// come from the `admin` section of config/mailwarden.yaml or from --url / --token.
import { readFile } from 'node:fs/promises';
import YAML from 'yaml';
import type { KillSwitchState } from '../policy/brake';
import type { Decision } from '../policy/decision';
import type { AuditEntry, DeviceRecord, Exemption, ExemptionScope } from '../store/device-store';
import { CliError, EXIT, UsageError } from '../core/exit-codes';
import type { SyncReport } from '../connectors/sync';
import type { ConnectorSummary } from './routes/connectors';

export interface AdminTarget {
  /** e.g. http://127.0.0.1:8025 */
  readonly baseUrl: string;
  readonly token: string;
}

/** An answer from the API that is not 2xx, or no answer at all (status 0). */
export class AdminApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'AdminApiError';
  }
}

export interface DeviceView {
  readonly deviceId: string;
  readonly state: 'found' | 'malformed';
  readonly detail?: string;
  readonly record: DeviceRecord | null;
  readonly exemptions: readonly Exemption[];
  readonly decision: Decision | null;
}

export type ReportOutcome =
  | { readonly stored: true; readonly deviceId: string }
  | { readonly stored: false; readonly deviceId: string; readonly reason: string };

export interface ExemptionRequest {
  readonly hours?: number;
  readonly expiresAt?: string;
  readonly note: string;
  readonly checks?: readonly string[];
  readonly createdBy?: string;
}

export interface AdminClient {
  readonly baseUrl: string;
  health(): Promise<{ status: string }>;
  listDevices(query?: { user?: string; after?: string; limit?: number }): Promise<{ devices: DeviceRecord[]; next: string | null }>;
  showDevice(deviceId: string, protocol?: 'imap' | 'smtp'): Promise<DeviceView>;
  postReport(jws: string): Promise<ReportOutcome>;
  /** `force`: also for a device with no matching stored report (admin tokens only). */
  issueAppPassword(deviceId: string, user: string, options?: { force?: boolean }): Promise<{ password: string; credentialId: string; user: string; deviceId: string }>;
  removeAppPasswords(deviceId: string): Promise<{ deviceId: string; removed: number }>;
  listExemptions(): Promise<{ exemptions: Exemption[] }>;
  putExemption(scope: ExemptionScope, subject: string, request: ExemptionRequest): Promise<{ exemption: Exemption }>;
  removeExemption(scope: ExemptionScope, subject: string): Promise<{ removed: boolean }>;
  /** `after` continues from a cursor; `last` reads the newest entries. */
  readAudit(query: { after?: string; last?: number; count?: number }): Promise<{ entries: AuditEntry[]; next: string }>;
  simulate(candidatePolicyYaml: string | null): Promise<unknown>;
  setKillSwitch(on: boolean, change?: { by?: string; note?: string }): Promise<KillSwitchState>;
  killSwitch(): Promise<KillSwitchState>;
  metrics(): Promise<string>;
  connectors(): Promise<{ connectors: ConnectorSummary[] }>;
  syncConnector(name: string, options: { dryRun: boolean }): Promise<{ report: SyncReport }>;
  applyHeldSync(name: string): Promise<{ report: SyncReport }>;
}

export function createAdminClient(target: AdminTarget, options: { timeoutMs?: number } = {}): AdminClient {
  const baseUrl = target.baseUrl.replace(/\/+$/, '');
  const timeoutMs = options.timeoutMs ?? 15_000;

  async function call(method: string, path: string, body?: { type: string; data: string }): Promise<Response> {
    let response: Response;
    try {
      response = await fetch(baseUrl + path, {
        method,
        headers: { authorization: `Bearer ${target.token}`, ...(body ? { 'content-type': body.type } : {}) },
        body: body?.data,
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      throw new AdminApiError(0, 'UNREACHABLE', `cannot reach the admin API at ${baseUrl}: ${networkReason(err, timeoutMs)}`);
    }
    if (response.ok) return response;
    const text = await response.text().catch(() => '');
    let code = `HTTP_${response.status}`;
    let message = text.trim().slice(0, 200) || response.statusText;
    try {
      const parsed = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
      if (typeof parsed.error?.code === 'string') code = parsed.error.code;
      if (typeof parsed.error?.message === 'string') message = parsed.error.message;
    } catch {
      // Not our JSON (a proxy in between?): keep the raw text.
    }
    throw new AdminApiError(response.status, code, `${message} (${response.status} ${code})`);
  }

  const json = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const payload = body === undefined ? undefined : { type: 'application/json', data: JSON.stringify(body) };
    return (await (await call(method, path, payload)).json()) as T;
  };
  const qs = (query: Record<string, string | number | undefined>): string => {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) if (value !== undefined) params.set(key, String(value));
    const text = params.toString();
    return text ? `?${text}` : '';
  };
  const seg = encodeURIComponent;

  return {
    baseUrl,
    health: () => json('GET', '/healthz'),
    listDevices: (query = {}) => json('GET', `/v1/devices${qs(query)}`),
    showDevice: (deviceId, protocol) => json('GET', `/v1/devices/${seg(deviceId)}${qs({ protocol })}`),
    postReport: async (jws) =>
      (await (await call('POST', '/v1/reports', { type: 'application/jose', data: jws })).json()) as ReportOutcome,
    issueAppPassword: (deviceId, user, options = {}) => json('POST', `/v1/devices/${seg(deviceId)}/app-passwords`, { user, ...(options.force ? { force: true } : {}) }),
    removeAppPasswords: (deviceId) => json('DELETE', `/v1/devices/${seg(deviceId)}/app-passwords`),
    listExemptions: () => json('GET', '/v1/exemptions'),
    putExemption: (scope, subject, request) => json('PUT', `/v1/exemptions/${scope}/${seg(subject)}`, request),
    removeExemption: (scope, subject) => json('DELETE', `/v1/exemptions/${scope}/${seg(subject)}`),
    readAudit: (query) => json('GET', `/v1/audit${qs(query)}`),
    simulate: async (yaml) =>
      (await call('POST', '/v1/policy/simulate', { type: 'application/yaml', data: yaml ?? '' })).json(),
    setKillSwitch: (on, change = {}) => json('PUT', '/v1/kill-switch', { on, ...change }),
    killSwitch: () => json('GET', '/v1/kill-switch'),
    metrics: async () => (await call('GET', '/metrics')).text(),
    connectors: () => json('GET', '/v1/connectors'),
    syncConnector: (name, { dryRun }) => json('POST', `/v1/connectors/${seg(name)}/sync`, { dryRun }),
    applyHeldSync: (name) => json('POST', `/v1/connectors/${seg(name)}/apply`, { force: true }),
  };
}

function networkReason(err: unknown, timeoutMs: number): string {
  // Duck-typed, not instanceof: fetch's errors may come from another realm (jest's sandbox, workers).
  const name = (err as { name?: string } | null)?.name;
  if (name === 'TimeoutError' || name === 'AbortError') {
    return `no answer within ${timeoutMs} ms`;
  }
  // fetch wraps the socket error: TypeError('fetch failed', { cause }), the cause sometimes an AggregateError.
  const cause = (err as { cause?: { code?: string; message?: string; errors?: { code?: string }[] } }).cause;
  const code = cause?.code ?? cause?.errors?.[0]?.code;
  const known: Record<string, string> = {
    ECONNREFUSED: 'connection refused',
    ECONNRESET: 'connection reset',
    ENOTFOUND: 'host not found',
    EHOSTUNREACH: 'host unreachable',
    ETIMEDOUT: 'connection timed out',
  };
  if (code && known[code]) return known[code];
  return cause?.message ?? (err as { message?: string } | null)?.message ?? String(err);
}

export interface TargetOptions {
  /** Config file whose `admin` section names the listener and its tokens. */
  readonly config: string;
  readonly url?: string;
  readonly token?: string;
}

/**
 * Where the admin API is and which token to send: --url / --token first, then MAILWARDEN_ADMIN_TOKEN,
 * then the config file's admin.listen and admin.tokens[0]. Only the `admin` section is read, on
 * purpose: an emergency `kill-switch on` must work even while another part of the config is broken.
 */
export async function resolveAdminTarget(options: TargetOptions, env: NodeJS.ProcessEnv = process.env): Promise<AdminTarget> {
  let url = options.url;
  let token = options.token ?? env.MAILWARDEN_ADMIN_TOKEN;
  if (url === undefined || token === undefined) {
    const admin = await readAdminSection(options.config);
    url ??= baseUrlFor(admin.listen);
    token ??= admin.token;
  }
  if (!/^https?:\/\/[^/]+/.test(url)) throw new UsageError(`--url must be an http(s) URL such as http://127.0.0.1:8025 (got "${url}")`);
  return { baseUrl: url, token };
}

async function readAdminSection(file: string): Promise<{ listen: { host: string; port: number }; token: string }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new CliError(`cannot read ${file}: ${reason} (give --config FILE, or --url and --token)`, EXIT.config);
  }
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch (err) {
    throw new CliError(`${file}: not valid YAML: ${(err as Error).message.split('\n')[0]}`, EXIT.config);
  }
  const admin = (doc as { admin?: { listen?: { host?: unknown; port?: unknown }; tokens?: unknown } } | null)?.admin;
  const host = admin?.listen?.host;
  const port = admin?.listen?.port;
  if (typeof host !== 'string' || typeof port !== 'number') {
    throw new CliError(`${file}: admin.listen { host, port } is not set, so there is no admin API to talk to (or give --url)`, EXIT.config);
  }
  const token = Array.isArray(admin?.tokens) ? admin.tokens[0] : undefined;
  if (typeof token !== 'string' || token === '') {
    throw new CliError(`${file}: admin.tokens is empty (give --token or set MAILWARDEN_ADMIN_TOKEN)`, EXIT.config);
  }
  return { listen: { host, port }, token };
}

/** A wildcard listen address is reached on loopback; IPv6 literals need brackets in a URL. */
export function baseUrlFor(listen: { host: string; port: number }): string {
  const host = listen.host === '0.0.0.0' ? '127.0.0.1' : listen.host === '::' ? '::1' : listen.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${listen.port}`;
}
