// Loads config/mailwarden.yaml and config/policy.yaml: YAML with line numbers, schema defaults,
// cross-field rules, relative paths resolved, deep-frozen. Every problem is collected and reported
// as file:line: key: message; nothing here touches global state, so a reload can validate then swap.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import type { MailwardenConfig, PolicyConfig, UpstreamConfig } from './config-types';
import { ConfigError, errorText, formatKeyPath, type ConfigIssue } from './errors';
import { schemaProblems, validateMailwarden, validatePolicy, type SchemaProblem } from './config-schema';
import { connectorRules, readSecret, resolveConnectorPaths } from './config-connectors';
import { productionProblems } from './config-production';

type KeyPath = readonly (string | number)[];

/** A parsed YAML file that can point at the line of any key (for errors found after loading). */
export interface YamlSource {
  /** Absolute path of the file (or the name given to loadPolicyText). */
  readonly file: string;
  /** Line of the key at `keyPath` (of the list item, for an index), or of its nearest ancestor present in the file. */
  lineOf(keyPath: KeyPath): number | null;
}

/** Builds a ConfigIssue for `keyPath` in this file, at the line of that key. */
export function issueAt(source: YamlSource, keyPath: KeyPath, message: string, linePath: KeyPath = keyPath): ConfigIssue {
  return { file: source.file, line: source.lineOf(linePath), keyPath: formatKeyPath(keyPath), message };
}

export interface LoadAllOptions {
  /** Use this policy file instead of the config's policyFile (`config check --policy`). */
  readonly policyFile?: string;
}

export async function loadConfigFile(file: string): Promise<MailwardenConfig> {
  return orThrow(await readConfig(path.resolve(file)));
}

export async function loadPolicyFile(file: string): Promise<{ policy: PolicyConfig; source: YamlSource }> {
  return orThrow(await readPolicy(path.resolve(file)));
}

/**
 * A policy held in memory (a candidate sent to the admin API, the policy last activated), validated
 * exactly like a file; `name` stands for the file in issues and in `policy.file`.
 */
export async function loadPolicyText(text: string, name: string): Promise<{ policy: PolicyConfig; source: YamlSource }> {
  return orThrow(policyFromText(text, name));
}

/** Loads both files; one ConfigError lists every issue of both. */
export async function loadAll(
  configFile: string,
  options: LoadAllOptions = {},
): Promise<{ config: MailwardenConfig; policy: PolicyConfig; policySource: YamlSource }> {
  const configResult = await readConfig(path.resolve(configFile));
  // Check the policy even when the config is invalid, so one run shows every problem.
  const override = options.policyFile === undefined ? undefined : path.resolve(options.policyFile);
  const policyFile = override ?? configResult.policyFile;
  const policyResult = policyFile === undefined ? undefined : await readPolicy(policyFile);
  const issues = [...configResult.issues, ...(policyResult?.issues ?? [])];
  if (issues.length > 0 || !configResult.value || !policyResult?.value) throw new ConfigError(issues);
  const config = override ? deepFreeze({ ...configResult.value, policyFile: override }) : configResult.value;
  return { config, policy: policyResult.value.policy, policySource: policyResult.value.source };
}

// ---------------------------------------------------------------- reading YAML

interface Result<T> {
  readonly value?: T;
  readonly issues: readonly ConfigIssue[];
}

function orThrow<T>(result: Result<T>): T {
  if (result.issues.length > 0 || result.value === undefined) throw new ConfigError(result.issues);
  return result.value;
}

class DocumentSource implements YamlSource {
  // Private fields (#) keep the parsed document out of JSON.stringify and logs.
  readonly #doc: Document;
  readonly #lines: LineCounter;

  constructor(
    readonly file: string,
    doc: Document,
    lines: LineCounter,
  ) {
    this.#doc = doc;
    this.#lines = lines;
  }

  lineOf(keyPath: KeyPath): number | null {
    let node: unknown = this.#doc.contents;
    let line = this.lineAt(node);
    for (const segment of keyPath) {
      if (isMap(node)) {
        const pair = node.items.find((p) => keyName(p.key) === String(segment));
        if (!pair) break;
        line = this.lineAt(pair.key) ?? line;
        node = pair.value;
      } else if (isSeq(node) && typeof segment === 'number' && segment < node.items.length) {
        node = node.items[segment];
        line = this.lineAt(node) ?? line;
      } else break;
    }
    return line;
  }

  /** The key path of the innermost key or item whose text covers `offset` (for YAML syntax errors). */
  keyPathAt(offset: number): (string | number)[] {
    const keyPath: (string | number)[] = [];
    let node: unknown = this.#doc.contents;
    for (;;) {
      if (isMap(node)) {
        const pair = node.items.find((p) => covers(p.key, offset) || covers(p.value, offset));
        if (!pair) break;
        keyPath.push(keyName(pair.key));
        node = pair.value;
      } else if (isSeq(node)) {
        const index = node.items.findIndex((item) => covers(item, offset));
        if (index < 0) break;
        keyPath.push(index);
        node = node.items[index];
      } else break;
    }
    return keyPath;
  }

  private lineAt(node: unknown): number | null {
    const range = (node as Node | null | undefined)?.range;
    return range ? this.#lines.linePos(range[0]).line : null;
  }
}

function keyName(key: unknown): string {
  return isScalar(key) ? String(key.value) : String(key);
}

function covers(node: unknown, offset: number): boolean {
  const range = (node as Node | null | undefined)?.range;
  return range !== undefined && range !== null && offset >= range[0] && offset < Math.max(range[2], range[0] + 1);
}

/** Friendlier words for the YAML errors operators meet most. */
const YAML_MESSAGES: Record<string, string> = {
  DUPLICATE_KEY: 'duplicate key (each key may appear once)',
  TAB_AS_INDENT: 'tab used for indentation (YAML indents with spaces only)',
  MULTIPLE_DOCS: 'more than one YAML document (remove the "---" line)',
};

interface ParsedYaml {
  readonly source: DocumentSource;
  readonly data: Record<string, unknown>;
}

/** Reads a file; a problem reading it is one issue without a line. */
async function readText(file: string): Promise<{ text: string } | { issue: ConfigIssue }> {
  try {
    return { text: await readFile(file, 'utf8') };
  } catch (err) {
    return { issue: { file, line: null, keyPath: '', message: readErrorMessage(err) } };
  }
}

/** Parses YAML text into plain data and a source for line numbers; `file` names it in issues. */
function parseYaml(text: string, file: string): Result<ParsedYaml> {
  const fail = (message: string, line: number | null = null): Result<ParsedYaml> => ({ issues: [{ file, line, keyPath: '', message }] });
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: true });
  const source = new DocumentSource(file, doc, lines);
  const yamlIssues = [...doc.errors, ...doc.warnings].map((error) => {
    // Only a duplicate key sits exactly at its key; other syntax errors are often reported a line late.
    const keyPath = error.code === 'DUPLICATE_KEY' ? formatKeyPath(source.keyPathAt(error.pos[0])) : '';
    const detail = error.message.replace(/ at line \d+, column \d+:[\s\S]*$/, '');
    const message = YAML_MESSAGES[error.code] ?? `YAML syntax error: ${detail.charAt(0).toLowerCase()}${detail.slice(1)}`;
    return { file, line: error.linePos?.[0].line ?? null, keyPath, message };
  });
  if (yamlIssues.length > 0) return { issues: yamlIssues };
  // An empty file is an error, not "all defaults": a file truncated mid-write must not become a config.
  if (doc.contents === null) return fail('file is empty');
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    return fail(`YAML: ${(err as Error).message}`);
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    return fail('must be a mapping of keys to values', source.lineOf([]));
  }
  return { value: { source, data: data as Record<string, unknown> }, issues: [] };
}

function readErrorMessage(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'file not found';
  if (code === 'EACCES') return 'permission denied';
  if (code === 'EISDIR') return 'is a folder, not a file';
  return `cannot read: ${(err as Error).message}`;
}

function toIssues(source: YamlSource, problems: readonly SchemaProblem[]): ConfigIssue[] {
  return problems.map((p) => issueAt(source, p.keyPath, p.message, p.linePath));
}

/** Issues in the order they appear in the file. */
function byLine(issues: ConfigIssue[]): ConfigIssue[] {
  return issues.sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity));
}

// ---------------------------------------------------------------- mailwarden.yaml

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type RawConfig = Mutable<Omit<MailwardenConfig, 'configFile'>>;

async function readConfig(file: string): Promise<Result<MailwardenConfig> & { policyFile?: string }> {
  const read = await readText(file);
  if ('issue' in read) return { issues: [read.issue] };
  const dir = path.dirname(file);
  const defaultPolicy = path.join(dir, 'policy.yaml');
  const parsed = parseYaml(read.text, file);
  if (!parsed.value) return { issues: parsed.issues, policyFile: defaultPolicy };
  const { source, data } = parsed.value;
  const rawPolicyFile = data.policyFile;
  const policyFile = typeof rawPolicyFile === 'string' && rawPolicyFile !== '' ? path.resolve(dir, rawPolicyFile) : defaultPolicy;
  const problems = schemaProblems(validateMailwarden, data);
  if (problems.length > 0) return { issues: byLine(toIssues(source, problems)), policyFile };
  const raw = data as unknown as RawConfig;
  const crossIssues = toIssues(source, configRules(raw));
  if (crossIssues.length > 0) return { issues: byLine(crossIssues), policyFile };
  const secretIssues = resolveSecrets(data, dir, source);
  if (secretIssues.length > 0) return { issues: byLine(secretIssues), policyFile };
  const productionIssues = toIssues(source, productionProblems(raw));
  if (productionIssues.length > 0) return { issues: byLine(productionIssues), policyFile };
  return { value: deepFreeze(finishConfig(raw, file)), issues: [], policyFile };
}

/** Rules between keys that the schema cannot express. */
function configRules(c: RawConfig): SchemaProblem[] {
  const problems: SchemaProblem[] = [];
  const problem = (keyPath: KeyPath, message: string, linePath: KeyPath = keyPath) =>
    problems.push({ keyPath, linePath, message });

  if (c.store.type === 'redis' && !c.store.redis) problem(['store', 'redis'], 'required when store.type is redis', ['store', 'type']);
  const redis = c.store.redis;
  if (redis) {
    const needs: Record<typeof redis.mode, readonly (keyof typeof redis)[]> = {
      standalone: ['host'],
      sentinel: ['sentinels', 'name'],
      cluster: ['nodes'],
    };
    for (const [mode, keys] of Object.entries(needs)) {
      for (const key of keys) {
        const at = ['store', 'redis', key];
        if (mode === redis.mode && redis[key] === undefined) problem(at, `required when mode is ${mode}`, ['store', 'redis', 'mode']);
        if (mode !== redis.mode && redis[key] !== undefined) problem(at, `only used when mode is ${mode} (mode is ${redis.mode})`);
      }
    }
  }
  // Each worker is its own process: with the embedded store each would hold devices of its own.
  if (c.workers !== 1 && c.store.type === 'memory') problem(['workers'], 'more than one worker needs store.type redis (the embedded store lives inside one process)');
  if (c.reports.jwksFile !== undefined && c.reports.jwksUrl !== undefined) {
    problem(['reports', 'jwksUrl'], 'set either jwksFile or jwksUrl, not both');
  }
  c.identity.sources.forEach((s, i) => {
    const at = ['identity', 'sources', i];
    if (s.type === 'oauth' && s.jwksFile === undefined && s.jwksUrl === undefined) {
      problem([...at, 'jwksFile'], 'required: set jwksFile or jwksUrl (the identity provider\'s keys)', at);
    }
    if (s.type === 'oauth' && s.jwksFile !== undefined && s.jwksUrl !== undefined) {
      problem([...at, 'jwksUrl'], 'set either jwksFile or jwksUrl, not both');
    }
    if (s.type === 'certificate' && !c.tls?.clientCa) {
      problem([...at, 'type'], 'certificate identity needs tls.clientCa (the CA bundle that issued device certificates)');
    }
  });
  const tokenNames = new Set<string>();
  c.admin?.accessTokens.forEach((t, i) => {
    // The name is who did an action in the audit stream: two tokens with one name would blur it.
    if (tokenNames.has(t.name)) problem(['admin', 'accessTokens', i, 'name'], `"${t.name}" is used by another token; names must be unique`);
    tokenNames.add(t.name);
  });
  // App passwords are never shown to the upstream (docs/identity.md, "Upstream login"): such logins use the
  // master/proxy credential, so every upstream needs one even when others pass through.
  const appPasswords = c.identity.sources.some((s) => s.type === 'app-password');
  for (const protocol of ['imap', 'smtp'] as const) {
    const section = c[protocol];
    if (!section) continue;
    section.listeners.forEach((l, i) => {
      if (l.tls !== 'none' && !c.tls) problem([protocol, 'listeners', i, 'tls'], `"${l.tls}" needs a certificate: set tls.cert and tls.key`);
    });
    upstreamRules(section.upstream, [protocol, 'upstream'], appPasswords, problem);
  }
  connectorRules(c.connectors, problem);
  return problems;
}

function upstreamRules(
  u: UpstreamConfig,
  at: KeyPath,
  appPasswords: boolean,
  problem: (keyPath: KeyPath, message: string, linePath?: KeyPath) => void,
): void {
  // SMTP with XCLIENT logs in with LOGIN=<user> (Postfix smtpd_authorized_xclient_hosts): no credential.
  if ('xclient' in u && u.xclient === true) return;
  for (const key of ['masterUser', 'masterPassword'] as const) {
    if (u[key] !== undefined) continue;
    if (u.login === 'master') problem([...at, key], 'required when login is master', [...at, 'login']);
    else if (appPasswords) problem([...at, key], 'required with an app-password identity source (the upstream never sees app passwords)', [...at, 'login']);
  }
}

/** Where secrets may be `{ file }` / `{ env }` (config-schema.ts secretValue): `*` = every key. */
const SECRET_PATHS: readonly (readonly string[])[] = [
  ['hooks', 'nginx', 'secret'],
  ['hooks', 'nginx', 'backends', '*', 'masterPassword'],
  ['hooks', 'dovecot', 'apiKey'],
  ['hooks', 'dovecot', 'passdb', 'clientSecret'],
  ['hooks', 'dovecot', 'doveadm', 'apiKey'],
];

/**
 * Replaces each `{ file }` / `{ env }` secret in `data` by its value (read as the connectors read
 * theirs: trimmed, never empty). Only enabled hooks are read, so a disabled example may name a
 * variable that is not set. A missing file or variable is an issue at the key.
 */
function resolveSecrets(data: Record<string, unknown>, dir: string, source: YamlSource): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const visit = (node: unknown, rest: readonly string[], at: KeyPath): void => {
    if (node === null || typeof node !== 'object') return;
    const record = node as Record<string, unknown>;
    if (at.length === 2 && at[0] === 'hooks' && record.enabled === false) return;
    const [head, ...tail] = rest;
    for (const key of head === '*' ? Object.keys(record) : [head!]) {
      const keyPath = [...at, key];
      const value = record[key] as { file?: string; env?: string } | string | undefined;
      if (tail.length > 0) visit(value, tail, keyPath);
      else if (value !== undefined && typeof value !== 'string') {
        const what = formatKeyPath(keyPath);
        try {
          record[key] = readSecret(value.env !== undefined ? { env: value.env } : { file: path.resolve(dir, value.file!) }, what);
        } catch (err) {
          issues.push(issueAt(source, keyPath, errorText(err).replace(`${what}: `, '')));
        }
      }
    }
  };
  for (const secretPath of SECRET_PATHS) visit(data, secretPath, []);
  return issues;
}

function finishConfig(raw: RawConfig, file: string): MailwardenConfig {
  const dir = path.dirname(file);
  const at = (p: string): string => path.resolve(dir, p);
  const redis = raw.store.redis;
  return {
    ...raw,
    configFile: file,
    instanceName: raw.instanceName ?? os.hostname(),
    policyFile: at(raw.policyFile),
    pluginDirs: raw.pluginDirs.map(at),
    ...(raw.tls && {
      tls: { ...raw.tls, cert: at(raw.tls.cert), key: at(raw.tls.key), ...(raw.tls.clientCa && { clientCa: at(raw.tls.clientCa) }) },
    }),
    store: redis?.mode === 'standalone' ? { ...raw.store, redis: { ...redis, port: redis.port ?? 6379 } } : raw.store,
    reports: { ...raw.reports, ...(raw.reports.jwksFile && { jwksFile: at(raw.reports.jwksFile) }) },
    identity: {
      sources: raw.identity.sources.map((s) => {
        if (s.type === 'oauth' && s.jwksFile) return { ...s, jwksFile: at(s.jwksFile) };
        if (s.type === 'app-password' && s.hmacKeyFile) return { ...s, hmacKeyFile: at(s.hmacKeyFile) };
        return s;
      }),
    },
    ...(raw.imap && { imap: { ...raw.imap, upstream: upstreamPaths(raw.imap.upstream, at) } }),
    ...(raw.smtp && { smtp: { ...raw.smtp, hostname: raw.smtp.hostname ?? os.hostname(), upstream: upstreamPaths(raw.smtp.upstream, at) } }),
    logging: { ...raw.logging, ...(raw.logging.file && { file: at(raw.logging.file) }) },
    connectors: resolveConnectorPaths(raw.connectors, dir),
  };
}

function upstreamPaths<U extends UpstreamConfig>(upstream: U, at: (p: string) => string): U {
  return upstream.caFile ? { ...upstream, caFile: at(upstream.caFile) } : upstream;
}

// ---------------------------------------------------------------- policy.yaml

type RawPolicy = Mutable<Omit<PolicyConfig, 'file' | 'version' | 'text' | 'checks'>> & {
  checks: Mutable<Omit<PolicyConfig['checks'][number], 'line' | 'id'> & { id?: string }>[];
};

async function readPolicy(file: string): Promise<Result<{ policy: PolicyConfig; source: YamlSource }>> {
  const read = await readText(file);
  return 'issue' in read ? { issues: [read.issue] } : policyFromText(read.text, file);
}

function policyFromText(text: string, file: string): Result<{ policy: PolicyConfig; source: YamlSource }> {
  const parsed = parseYaml(text, file);
  if (!parsed.value) return { issues: parsed.issues };
  const { source, data } = parsed.value;
  const problems = schemaProblems(validatePolicy, data);
  if (problems.length > 0) return { issues: byLine(toIssues(source, problems)) };
  const raw = data as unknown as RawPolicy;
  const checks = raw.checks.map((c, i) => ({ ...c, id: c.id ?? c.plugin, line: source.lineOf(['checks', i]) ?? 1 }));
  const issues = duplicateIds(checks, source);
  if (issues.length > 0) return { issues };
  const version = policyVersion(text);
  const policy: PolicyConfig = { ...raw, file, version, text, checks };
  return { value: { policy: deepFreeze(policy), source }, issues: [] };
}

/** A policy's version: a hash of its text, so every instance names the same file alike. */
export function policyVersion(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 12);
}

function duplicateIds(checks: readonly { id: string; line: number }[], source: YamlSource): ConfigIssue[] {
  const first = new Map<string, number>();
  const issues: ConfigIssue[] = [];
  checks.forEach((c, i) => {
    const earlier = first.get(c.id);
    if (earlier === undefined) first.set(c.id, i);
    else {
      const message = `duplicate check id "${c.id}" (also checks[${earlier}], line ${checks[earlier].line}); give each check its own id`;
      issues.push(issueAt(source, ['checks', i, 'id'], message));
    }
  });
  return issues;
}

// ---------------------------------------------------------------- helpers

/** Freezes an object graph so a loaded configuration cannot change under the code reading it. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
