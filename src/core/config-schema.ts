// JSON Schemas (ajv 8) for config/mailwarden.yaml and config/policy.yaml, with their defaults, and the
// translation of ajv errors into sentences an operator can act on. Shapes: src/core/config-types.ts.
import Ajv, { type ErrorObject, type SchemaObject, type ValidateFunction } from 'ajv';
import { connectorsSchema, secret as secretSource } from './config-connectors';
import { INSECURE_ALLOWANCES } from './config-production';

type Schema = SchemaObject;

/** A schema problem: `keyPath` names the key, `linePath` the node whose line to show. */
export interface SchemaProblem {
  readonly keyPath: readonly (string | number)[];
  readonly linePath: readonly (string | number)[];
  readonly message: string;
}

// ---------------------------------------------------------------- building blocks

/** Patterns with the sentence shown when a value does not match. */
const PATTERNS = {
  id: { pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$', hint: 'must be letters, digits, ".", "_" or "-"' },
  plugin: { pattern: '^[a-z0-9]+(-[a-z0-9]+)*$', hint: 'must be a kebab-case plugin name such as banned-apps' },
  platform: { pattern: '^[a-z0-9][a-z0-9_-]*$', hint: 'must be a lower-case platform name such as ios, android, macos' },
  httpsUrl: { pattern: '^https://\\S+$', hint: 'must be an https:// URL' },
  httpUrl: { pattern: '^https?://\\S+$', hint: 'must be an http:// or https:// URL' },
  sha256: { pattern: '^[0-9a-f]{64}$', hint: 'must be 64 lower-case hex digits (mailwarden admin hash-token)' },
} as const;
const PATTERN_HINTS = new Map<string, string>(Object.values(PATTERNS).map((p) => [p.pattern, p.hint]));

function object(properties: Record<string, Schema>, required: string[] = [], extra: Schema = {}): Schema {
  return { type: 'object', additionalProperties: false, properties, required, ...extra };
}
const withDefault = (schema: Schema, value: unknown): Schema => ({ ...schema, default: value });
const text: Schema = { type: 'string', minLength: 1 };
const anyText: Schema = { type: 'string' };
const bool = (value: boolean): Schema => ({ type: 'boolean', default: value });
const int = (minimum: number, value?: number, maximum?: number): Schema => ({
  type: 'integer',
  minimum,
  ...(maximum === undefined ? {} : { maximum }),
  ...(value === undefined ? {} : { default: value }),
});
/** Hours may be fractional (0.5 = 30 minutes). */
const hours = (value: number, minimum = 0): Schema => ({ type: 'number', minimum, default: value });
const percent = (value?: number): Schema => ({
  type: 'number',
  minimum: 0,
  maximum: 100,
  ...(value === undefined ? {} : { default: value }),
});
const oneOf = (values: readonly string[], value?: string): Schema => ({
  type: 'string',
  enum: values,
  ...(value === undefined ? {} : { default: value }),
});
const list = (items: Schema, minItems = 0): Schema => ({ type: 'array', items, minItems });
const textList: Schema = { type: 'array', items: text, uniqueItems: true };
const matching = (p: { pattern: string }): Schema => ({ type: 'string', pattern: p.pattern });

/** Port 0 = any free port (tests); RFC 6335 range otherwise. */
const port: Schema = int(0, undefined, 65535);
const listenAddress = object({ host: text, port }, ['host', 'port']);

/** Public-key JWS algorithms only: reporter and IdP keys are asymmetric; `none` and HS* are refused. */
const JWS_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];
const algorithms = (value: string[]): Schema => ({
  type: 'array',
  items: oneOf(JWS_ALGORITHMS),
  minItems: 1,
  uniqueItems: true,
  default: value,
});

// ---------------------------------------------------------------- mailwarden.yaml

const redis = object({
  mode: oneOf(['standalone', 'sentinel', 'cluster'], 'standalone'),
  host: text,
  port,
  sentinels: list(listenAddress, 1),
  name: text,
  nodes: list(listenAddress, 1),
  username: text,
  password: anyText,
  db: int(0),
  tls: { type: 'boolean' },
  keyPrefix: withDefault(anyText, 'mw:'),
  commandTimeoutMs: int(1, 200),
  connectTimeoutMs: int(1, 2000),
});

const store = withDefault(
  object({
    type: oneOf(['memory', 'redis'], 'memory'),
    redis,
    recordTtlHours: hours(168, 1),
    maxReportAgeHours: hours(24, 0.01),
    auditMaxLen: int(1, 100000),
    cache: withDefault(object({ maxEntries: int(0, 50000), maxAgeMs: int(0, 30000) }), {}),
    outageLastKnownMaxSeconds: int(0, 300),
    auditBufferMax: int(0, 10000, 1000000),
  }),
  {},
);

const reports = withDefault(
  object({
    jwksFile: text,
    jwksUrl: matching(PATTERNS.httpsUrl),
    algorithms: algorithms(['ES256', 'EdDSA']),
    maxAgeSeconds: int(1, 86400),
    maxSkewSeconds: int(0, 300),
    maxBodyBytes: int(1, 65536),
  }),
  {},
);

const ADMIN_ROLES = ['reporter', 'metrics', 'viewer', 'helpdesk', 'admin'];
const accessToken = object(
  { name: matching(PATTERNS.id), role: oneOf(ADMIN_ROLES), sha256: matching(PATTERNS.sha256) },
  ['name', 'role', 'sha256'],
);
const consoleOidc = object(
  {
    issuer: matching(PATTERNS.httpUrl),
    clientId: text,
    clientSecret: text,
    scopes: withDefault(textList, ['openid', 'email', 'profile']),
    roleClaim: withDefault(text, 'roles'),
    roles: { type: 'object', propertyNames: { type: 'string', minLength: 1 }, additionalProperties: oneOf(ADMIN_ROLES) },
    nameClaim: withDefault(text, 'email'),
  },
  ['issuer', 'clientId', 'roles'],
);
const adminConsole = withDefault(
  object({
    enabled: bool(true),
    sessionMinutes: int(1, 480, 7 * 24 * 60),
    publicUrl: matching(PATTERNS.httpUrl),
    secureCookies: oneOf(['auto', 'always'], 'auto'),
    auditScanEntries: int(100, 20000, 1000000),
    selfService: bool(true),
    oidc: consoleOidc,
  }),
  {},
);
const admin = object(
  {
    listen: listenAddress,
    tokens: withDefault(textList, []),
    accessTokens: withDefault({ ...list(accessToken), uniqueItems: true }, []),
    console: adminConsole,
  },
  ['listen'],
);

/** One branch per identity source type; ajv's discriminator reports errors of the matching branch only. */
const identitySource: Schema = {
  type: 'object',
  discriminator: { propertyName: 'type' },
  oneOf: [
    object(
      {
        type: { const: 'oauth' },
        jwksFile: text,
        jwksUrl: matching(PATTERNS.httpsUrl),
        issuer: text,
        audience: text,
        algorithms: algorithms(['RS256', 'ES256']),
        userClaim: withDefault(text, 'email'),
        deviceClaim: withDefault(text, 'deviceid'),
        clockToleranceSeconds: int(0, 30, 300),
      },
      ['type', 'issuer', 'audience'],
    ),
    object({ type: { const: 'certificate' }, deviceField: withDefault(text, 'CN'), userField: text }, ['type']),
    object({ type: { const: 'app-password' }, hmacKeyFile: text }, ['type']),
    object({ type: { const: 'asserted' }, separator: withDefault(text, '+') }, ['type']),
  ],
};

const circuitBreaker = withDefault(object({ failures: int(1, 5), resetMs: int(1, 10000) }), {});
const upstreamProperties: Record<string, Schema> = {
  host: text,
  port,
  tls: oneOf(['none', 'implicit', 'starttls'], 'none'),
  rejectUnauthorized: bool(true),
  caFile: text,
  servername: text,
  connectTimeoutMs: int(1, 3000),
  // Above Dovecot's largest auth penalty (15 s) plus its failure delay (2 s); login_proxy_timeout is 30 s.
  loginTimeoutMs: int(1, 30000),
  login: oneOf(['passthrough', 'master'], 'passthrough'),
  masterUser: text,
  masterPassword: text,
  circuitBreaker,
};

const listener = object(
  { host: text, port, tls: oneOf(['implicit', 'starttls', 'none']), proxyProtocolFrom: textList },
  ['host', 'port', 'tls'],
);

const imap = object(
  {
    listeners: list(listener, 1),
    upstream: object(upstreamProperties, ['host', 'port']),
    blockStyle: oneOf(['refuse', 'quarantine'], 'refuse'),
    // RFC 7162 §4: servers should accept command lines of at least 8192 octets; 64 KiB fits an OAuth token.
    maxLineBytes: int(8192, 65536),
    maxLiteralBytes: int(1, 65536),
    maxBadCommands: int(1, 3),
    preAuthTimeoutMs: int(1000, 60000),
    // RFC 9051 §5.4: the autologout timer after login is at least 30 minutes (clients re-IDLE every 29).
    idleTimeoutMs: int(1000, 31 * 60_000),
    // Each proxied session holds two descriptors (client and upstream): keep the sum of all listeners'
    // maxConnections × 2 well under the process's open-file limit.
    maxConnections: int(1, 4000),
    maxConnectionsPerAddress: int(1, 100),
    drainMs: int(0, 10000),
  },
  ['listeners', 'upstream'],
);

const smtp = object(
  {
    listeners: list(listener, 1),
    upstream: object({ ...upstreamProperties, xclient: bool(false) }, ['host', 'port']),
    maxMessageBytes: int(1, 52428800),
    hostname: text,
    maxConnections: int(1, 1000),
    // Postfix smtpd_client_connection_count_limit.
    maxConnectionsPerAddress: int(1, 50),
    preAuthTimeoutMs: int(1000, 60000),
    lineTimeoutMs: int(1000, 60000),
    // smtp-server waits 100 ms before its greeting to catch clients that talk first (spam bots on
    // port 25); a submission client must AUTH before it may send anything, so 0 there.
    greetingDelayMs: int(0, 0, 10000),
    notifyUser: object(
      { enabled: bool(true), intervalHours: hours(24, 0.01), from: text, subject: text, body: text },
      ['from', 'subject', 'body'],
    ),
  },
  ['listeners', 'upstream'],
);

const httpHookLimits = withDefault(
  object({
    maxConnections: int(1, 1024),
    maxHeaderBytes: int(1024, 8192, 65536),
    maxBodyBytes: int(256, 16384),
    requestTimeoutMs: int(100, 5000),
    idleTimeoutMs: int(100, 30000),
  }),
  {},
);

/**
 * A secret given inline, or read at load time from a file (`{ file: path }`, relative to the config
 * file, trimmed) or an environment variable (`{ env: NAME }`); resolved by
 * src/core/config.ts, so the rest of the code sees a string.
 */
const secretValue: Schema = { ...secretSource, type: ['string', 'object'], minLength: 1 };

const nginxBackend = object(
  {
    host: text,
    port: int(1, undefined, 65535),
    login: oneOf(['passthrough', 'master'], 'passthrough'),
    masterUser: text,
    masterPassword: secretValue,
    masterSeparator: withDefault(text, '*'),
  },
  ['host', 'port'],
);

const hooks = withDefault(
  object({
    nginx: object(
      {
        enabled: bool(true),
        listen: listenAddress,
        secretHeader: withDefault(text, 'X-Mailwarden-Key'),
        secret: secretValue,
        backends: object({ imap: nginxBackend, smtp: nginxBackend }),
        // nginx docs: answer without Auth-Wait after 10-20 attempts (memory is freed at session end).
        maxWaitAttempts: int(1, 10, 20),
        tempfailWaitSeconds: int(1, 3, 60),
        maxFailedLoginWaitSeconds: int(1, 16, 60),
        // Below nginx's auth_http_timeout (docs/hooks.md sets 5s): nginx drops a slower answer.
        throttleWaitMaxMs: int(0, 3000, 60000),
        limits: httpHookLimits,
      },
      ['listen', 'secret', 'backends'],
    ),
    dovecot: object(
      {
        enabled: bool(true),
        listen: listenAddress,
        apiKeyHeader: withDefault(text, 'X-API-Key'),
        apiKey: secretValue,
        passdb: object({ clientId: text, clientSecret: secretValue }, ['clientId', 'clientSecret']),
        doveadm: object(
          {
            url: matching(PATTERNS.httpUrl),
            apiKey: secretValue,
            timeoutMs: int(1, 2000),
            kick: oneOf(['user-and-address', 'user'], 'user-and-address'),
          },
          ['url', 'apiKey'],
        ),
        sessionTtlHours: hours(24, 0.01),
        maxSessions: int(1, 100000),
        limits: httpHookLimits,
      },
      ['listen', 'apiKey'],
    ),
    postfix: object(
      {
        enabled: bool(true),
        listen: listenAddress,
        allowFrom: withDefault(textList, ['127.0.0.1', '::1']),
        limits: withDefault(
          object({
            maxConnections: int(1, 256),
            maxLineBytes: int(256, 2048, 65536),
            maxAttributes: int(8, 64, 1024),
            idleTimeoutMs: int(100, 300000),
          }),
          {},
        ),
      },
      ['listen'],
    ),
  }),
  {},
);

/** mailwarden's own failed-login delay (src/admission/login-throttle.ts); Dovecot's auth penalty: 2 s doubling to 15 s. */
const loginThrottle = withDefault(
  object({
    enabled: bool(true),
    baseDelayMs: int(1, 2000, 60000),
    maxDelayMs: int(1, 15000, 60000),
    windowSeconds: int(1, 900, 86400),
    knownAddressDays: { type: 'number', minimum: 0, maximum: 365, default: 30 },
  }),
  {},
);

export const mailwardenSchema: Schema = object({
  instanceName: text,
  workers: int(1, 1, 64),
  policyFile: withDefault(text, 'policy.yaml'),
  pluginDirs: withDefault(textList, []),
  // true, or the production footguns to allow (src/core/config-production.ts).
  insecure: { anyOf: [{ type: 'boolean' }, { type: 'array', items: oneOf(INSECURE_ALLOWANCES), uniqueItems: true }], default: false },
  tls: object({ cert: text, key: text, clientCa: text }, ['cert', 'key']),
  store,
  reports,
  admin,
  identity: withDefault(object({ sources: withDefault(list(identitySource), []) }), {}),
  loginThrottle,
  groups: { type: 'object', propertyNames: { type: 'string', minLength: 1 }, additionalProperties: textList, default: {} },
  imap,
  smtp,
  hooks,
  logging: withDefault(
    object({ level: oneOf(['error', 'warn', 'info', 'debug'], 'info'), format: oneOf(['auto', 'json', 'text'], 'auto'), file: text }),
    {},
  ),
  alerts: withDefault(object({ webhookUrl: matching(PATTERNS.httpUrl), timeoutMs: int(1, 3000) }), {}),
  connectors: connectorsSchema,
});

// ---------------------------------------------------------------- policy.yaml

export const DEFAULT_CHECK_MESSAGE = 'Company mail is blocked on this device by policy. Questions: {helpdesk}. Ref {refId}.';

const check = object(
  {
    id: matching(PATTERNS.id),
    plugin: matching(PATTERNS.plugin),
    mode: oneOf(['off', 'report', 'warn', 'enforce'], 'enforce'),
    action: oneOf(['deny', 'tempfail'], 'deny'),
    onUnknown: oneOf(['fail', 'pass'], 'fail'),
    onError: oneOf(['deny', 'tempfail'], 'tempfail'),
    timeoutMs: int(1, 200, 60000),
    scope: withDefault(
      object({
        platforms: { type: 'array', items: matching(PATTERNS.platform), uniqueItems: true },
        protocols: { type: 'array', items: oneOf(['imap', 'smtp']), uniqueItems: true },
        users: textList,
        groups: textList,
      }),
      {},
    ),
    // Validated by the plugin's parseOptions when the policy is compiled.
    options: { default: {} },
    message: withDefault(text, DEFAULT_CHECK_MESSAGE),
    graceHours: hours(0),
    graceMessage: text,
    rollout: object({ percent: percent(), groups: textList }, [], { minProperties: 1 }),
  },
  ['plugin'],
);

export const policySchema: Schema = object(
  {
    reportOnly: bool(false),
    helpdesk: withDefault(text, 'your IT helpdesk'),
    unidentified: withDefault(
      object({
        action: oneOf(['allow', 'deny', 'tempfail'], 'deny'),
        message: withDefault(
          text,
          'This mail app is not enrolled for company mail. Enrol the device in the company portal, or ask {helpdesk}. Ref {refId}.',
        ),
      }),
      {},
    ),
    messages: withDefault(
      object({
        tempfail: withDefault(
          text,
          "Mail is temporarily unavailable while your device's compliance is checked. Try again in a few minutes. Ref {refId}.",
        ),
        warnPrefix: withDefault(text, 'Warning:'),
      }),
      {},
    ),
    blastRadius: withDefault(
      object({
        maxNewlyDeniedPercent: percent(20),
        maxNewlyDeniedCount: int(0, 500),
        minNewlyDeniedCount: int(0, 0),
        inForceWindowHours: hours(24),
      }),
      {},
    ),
    brake: withDefault(
      object({
        enabled: bool(true),
        windowSeconds: int(1, 300),
        minLogins: int(1, 50),
        maxDeniedPercent: percent(30),
      }),
      {},
    ),
    checks: list(check),
  },
  ['checks'],
);

// ---------------------------------------------------------------- validation

// allowUnionTypes: a secret is a string or a { file } / { env } mapping (secretValue).
const ajv = new Ajv({ allErrors: true, useDefaults: true, discriminator: true, verbose: true, strict: true, allowUnionTypes: true });
export const validateMailwarden: ValidateFunction = ajv.compile(mailwardenSchema);
export const validatePolicy: ValidateFunction = ajv.compile(policySchema);

/** Runs a validator (filling defaults into `data`) and returns every problem, in sentences. */
export function schemaProblems(validate: ValidateFunction, data: unknown): SchemaProblem[] {
  if (validate(data)) return [];
  const errors = validate.errors ?? [];
  // A value of the wrong type also fails its enum/pattern/range; the type error alone says it best.
  const wrongType = new Set(errors.filter((e) => e.keyword === 'type').map((e) => e.instancePath));
  const seen = new Set<string>();
  const problems: SchemaProblem[] = [];
  for (const error of errors) {
    if (error.keyword !== 'type' && wrongType.has(error.instancePath)) continue;
    const problem = describeError(error, data);
    const key = JSON.stringify(problem);
    if (!seen.has(key)) {
      seen.add(key);
      problems.push(problem);
    }
  }
  return problems;
}

/** Keys whose values are never echoed back in an error message. */
const SECRET_KEY = /password|token|secret|apikey/i;

function describeError(error: ErrorObject, data: unknown): SchemaProblem {
  const path = pointerToPath(error.instancePath, data);
  const at = (message: string, keyPath = path, linePath = keyPath): SchemaProblem => ({ keyPath, linePath, message });
  const params = error.params as Record<string, unknown>;
  const secret = path.some((segment) => typeof segment === 'string' && SECRET_KEY.test(segment));
  const got = secret ? '' : ` (got ${describeValue(error.data)})`;
  switch (error.keyword) {
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      const known = Object.keys((error.parentSchema?.properties as Record<string, unknown> | undefined) ?? {});
      const guess = closest(key, known);
      return at(guess ? `unknown key (did you mean "${guess}"?)` : 'unknown key', [...path, key]);
    }
    case 'required':
      return at('required key is missing', [...path, String(params.missingProperty)], path);
    case 'discriminator': {
      const typePath = [...path, String(params.tag)];
      if (params.error === 'tag' && (error.data as Record<string, unknown>)[String(params.tag)] === undefined) {
        return at('required key is missing', typePath, path);
      }
      const branches = (error.parentSchema?.oneOf as Schema[]).map((s) => String(s.properties.type.const));
      return at(`must be one of ${branches.join(', ')} (got ${describeValue(params.tagValue)})`, typePath);
    }
    case 'type':
      return at(`must be ${TYPE_NAMES[String(params.type)] ?? String(params.type)}${got}`);
    case 'enum':
      return at(`must be one of ${(params.allowedValues as unknown[]).join(', ')}${got}`);
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return at(`must be ${String(params.comparison)} ${String(params.limit)}${got}`);
    case 'minLength':
      return at('must not be empty');
    case 'minItems':
      return at(`must list at least ${String(params.limit)} entr${params.limit === 1 ? 'y' : 'ies'}`);
    case 'maxProperties':
      return at('set one of file: or env:, not both');
    case 'minProperties':
      return at(`must set at least one of ${Object.keys(error.parentSchema?.properties ?? {}).join(', ')}`);
    case 'uniqueItems':
      return at(`lists ${secret ? 'the same value' : describeValue((error.data as unknown[])[Number(params.j)])} twice`);
    case 'pattern':
      return at(`${PATTERN_HINTS.get(String(params.pattern)) ?? `must match ${String(params.pattern)}`}${got}`);
    default:
      return at(error.message ?? `invalid (${error.keyword})`);
  }
}

const TYPE_NAMES: Record<string, string> = {
  object: 'a mapping (key: value)',
  array: 'a list',
  string: 'a string',
  integer: 'a whole number',
  number: 'a number',
  boolean: 'true or false',
  'string,object': 'a string, or a mapping with file: or env:',
};

/** A short rendering of a value for "(got …)". */
export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  return String(value);
}

/** JSON pointer → key path; a segment is a number only where the data at that point is a list. */
function pointerToPath(pointer: string, data: unknown): (string | number)[] {
  if (pointer === '') return [];
  const path: (string | number)[] = [];
  let node = data;
  for (const raw of pointer.slice(1).split('/')) {
    const segment = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    const key = Array.isArray(node) ? Number(segment) : segment;
    path.push(key);
    node = node !== null && typeof node === 'object' ? (node as Record<string | number, unknown>)[key] : undefined;
  }
  return path;
}

/** The known key closest to a typo (edit distance ≤ 2, or differing only in case), if any. */
function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of candidates) {
    const d = candidate.toLowerCase() === word.toLowerCase() ? 0 : editDistance(word, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length];
}
