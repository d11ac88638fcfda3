// The shape of config/mailwarden.yaml and config/policy.yaml after validation and defaults.
// The JSON schemas in src/core/config-schema.ts must accept exactly this; keys are camelCase.
import type { InsecureAllowance } from './config-production';

/** What a decision does with a login: let it in, refuse it, or ask the client to try again later. */
export type Action = 'allow' | 'deny' | 'tempfail';
/** How a check is applied: not at all, logged only, shown as a warning, or enforced. */
export type CheckMode = 'off' | 'report' | 'warn' | 'enforce';
/** The mail protocols a policy can be scoped to. */
export type Protocol = 'imap' | 'smtp';

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

export interface TlsFiles {
  readonly cert: string;
  readonly key: string;
  /** CA bundle for client certificates (device identity from the MDM's CA). */
  readonly clientCa?: string;
}

export interface RedisConfig {
  readonly mode: 'standalone' | 'sentinel' | 'cluster';
  /** standalone: host/port; sentinel: sentinels + name; cluster: nodes. */
  readonly host?: string;
  readonly port?: number;
  readonly sentinels?: readonly ListenAddress[];
  readonly name?: string;
  readonly nodes?: readonly ListenAddress[];
  readonly username?: string;
  readonly password?: string;
  readonly db?: number;
  readonly tls?: boolean;
  readonly keyPrefix: string;
  readonly commandTimeoutMs: number;
  readonly connectTimeoutMs: number;
}

export interface StoreConfig {
  /** memory = the embedded store (single instance, lost on restart), logged loudly at start. */
  readonly type: 'memory' | 'redis';
  readonly redis?: RedisConfig;
  /** Redis TTL of a device record; an expired record is "never reported". */
  readonly recordTtlHours: number;
  /** A record older than this (by reportedAt) is stale and counts as unknown. */
  readonly maxReportAgeHours: number;
  readonly auditMaxLen: number;
  readonly cache: { readonly maxEntries: number; readonly maxAgeMs: number };
  /** When the store cannot answer: use last-known state for at most this long, then tempfail. 0 = tempfail at once. */
  readonly outageLastKnownMaxSeconds: number;
  /** Audit events kept in memory while the store is unreachable, written when it is back; the rest is counted. */
  readonly auditBufferMax: number;
}

export interface ReportsConfig {
  /** JWKS of trusted reporter public keys: a file path (relative to the config file) or an https URL. */
  readonly jwksFile?: string;
  readonly jwksUrl?: string;
  readonly algorithms: readonly string[];
  /** Reject reports whose reportedAt is older than this. */
  readonly maxAgeSeconds: number;
  /** Reject reports whose reportedAt is further in the future than this. */
  readonly maxSkewSeconds: number;
  readonly maxBodyBytes: number;
}

/** Admin token roles, least to most (what each may do: src/admin/roles.ts). */
export type AdminRole = 'reporter' | 'metrics' | 'viewer' | 'helpdesk' | 'admin';

export interface AccessTokenConfig {
  /** Shown in the audit stream as who did an action. */
  readonly name: string;
  readonly role: AdminRole;
  /** Lower-case hex SHA-256 of the token (`mailwarden admin token` prints one). */
  readonly sha256: string;
}

export interface ConsoleOidcConfig {
  /** Issuer URL; its /.well-known/openid-configuration names the endpoints and the JWKS. */
  readonly issuer: string;
  readonly clientId: string;
  readonly clientSecret?: string;
  readonly scopes: readonly string[];
  /** ID-token claim holding the user's role names (a string or a list of strings). */
  readonly roleClaim: string;
  /** Claim value → console role; a sign-in with no mapped value is refused. */
  readonly roles: Readonly<Record<string, AdminRole>>;
  /** Claim naming the person in the audit stream. */
  readonly nameClaim: string;
}

export interface ConsoleConfig {
  readonly enabled: boolean;
  /** A console session ends this long after sign-in. */
  readonly sessionMinutes: number;
  /**
   * The console's address as users reach it (e.g. https://mail-access.example.com): the base of
   * `{myUrl}` in user sentences and of the OIDC redirect URI. Cookies are Secure when it is https.
   */
  readonly publicUrl?: string;
  /**
   * auto: cookies are Secure when the console is reached over TLS or publicUrl is https;
   * always: Secure on every response (a TLS proxy in front whose address publicUrl does not give).
   */
  readonly secureCookies: 'auto' | 'always';
  /** How many of the newest audit entries a filtered audit view or a reference-id search reads. */
  readonly auditScanEntries: number;
  /** The /my/ page where a blocked person signs in with their own mail credentials. */
  readonly selfService: boolean;
  readonly oidc?: ConsoleOidcConfig;
}

export interface AdminConfig {
  readonly listen: ListenAddress;
  /**
   * Legacy plain bearer tokens, each with the admin role (named `admin.tokens[N]` in the audit).
   * Prefer accessTokens: hashed, named, and with a role.
   */
  readonly tokens: readonly string[];
  readonly accessTokens: readonly AccessTokenConfig[];
  readonly console: ConsoleConfig;
}

export type IdentitySourceConfig =
  | {
      readonly type: 'oauth';
      readonly jwksFile?: string;
      readonly jwksUrl?: string;
      readonly issuer: string;
      readonly audience: string;
      readonly algorithms: readonly string[];
      readonly userClaim: string;
      readonly deviceClaim: string;
      readonly clockToleranceSeconds: number;
    }
  | { readonly type: 'certificate'; readonly deviceField: string; readonly userField?: string }
  | { readonly type: 'app-password'; readonly hmacKeyFile?: string }
  | { readonly type: 'asserted'; readonly separator: string };

export interface UpstreamConfig {
  readonly host: string;
  readonly port: number;
  readonly tls: 'none' | 'implicit' | 'starttls';
  readonly rejectUnauthorized: boolean;
  /** PEM CA bundle the upstream's certificate is verified against (a private CA); default: Node's CA store. */
  readonly caFile?: string;
  /** Name the upstream's certificate must carry (TLS SNI and verification); default: `host` unless an IP. */
  readonly servername?: string;
  /** TCP connect, TLS handshake and greeting (STARTTLS included); a timeout counts toward the breaker. */
  readonly connectTimeoutMs: number;
  /**
   * The login exchange after the greeting. Never counts toward the breaker: a slow answer here is
   * the upstream's own auth penalty (Dovecot: up to 15 s per client address), not an outage.
   */
  readonly loginTimeoutMs: number;
  /** passthrough = the client's own credentials; master = a proxy/master credential. */
  readonly login: 'passthrough' | 'master';
  readonly masterUser?: string;
  readonly masterPassword?: string;
  readonly circuitBreaker: { readonly failures: number; readonly resetMs: number };
}

export interface ProtocolListener extends ListenAddress {
  /** implicit = TLS from the first byte; starttls = plaintext until STARTTLS; none = plaintext only (loopback). */
  readonly tls: 'implicit' | 'starttls' | 'none';
  /** Accept the PROXY protocol header (v1/v2) from these addresses only. */
  readonly proxyProtocolFrom?: readonly string[];
}

export interface ImapConfig {
  readonly listeners: readonly ProtocolListener[];
  readonly upstream: UpstreamConfig;
  /** refuse = NO [CONTACTADMIN]; quarantine = a read-only mailbox explaining the block. */
  readonly blockStyle: 'refuse' | 'quarantine';
  readonly maxLineBytes: number;
  readonly maxLiteralBytes: number;
  readonly maxBadCommands: number;
  readonly preAuthTimeoutMs: number;
  /** After login: a session with no traffic either way for this long is logged out (RFC 9051 §5.4: ≥ 30 min). */
  readonly idleTimeoutMs: number;
  /** Open connections per listener; more are refused at once (`* BYE`). */
  readonly maxConnections: number;
  /** Open connections per client address (IPv6: per /64) on one listener. */
  readonly maxConnectionsPerAddress: number;
  readonly drainMs: number;
}

export interface SmtpConfig {
  readonly listeners: readonly ProtocolListener[];
  readonly upstream: UpstreamConfig & { readonly xclient: boolean };
  readonly maxMessageBytes: number;
  readonly hostname: string;
  /** Open connections per listener; more get `421` and are closed. */
  readonly maxConnections: number;
  /** Open connections per client address (IPv6: per /64) on one listener. */
  readonly maxConnectionsPerAddress: number;
  /** From connect to a successful AUTH, whatever the client sends meanwhile (trickling does not extend it). */
  readonly preAuthTimeoutMs: number;
  /** Minimum progress: a command or message line, once begun, must end within this time. */
  readonly lineTimeoutMs: number;
  /** Wait before the 220 greeting (smtp-server's early-talker check); 0 = greet at once. */
  readonly greetingDelayMs: number;
  readonly notifyUser?: {
    readonly enabled: boolean;
    readonly intervalHours: number;
    readonly from: string;
    readonly subject: string;
    readonly body: string;
  };
}

/** Limits of an HTTP gateway hook listener (src/hooks/http-listener.ts). */
export interface HttpHookLimitsConfig {
  readonly maxConnections: number;
  readonly maxHeaderBytes: number;
  readonly maxBodyBytes: number;
  readonly requestTimeoutMs: number;
  readonly idleTimeoutMs: number;
}

/** Where nginx sends an allowed login (Auth-Server must be an IP address: nginx parses it as one). */
export interface NginxBackendConfig {
  readonly host: string;
  readonly port: number;
  /** passthrough = the client's own password goes on; master = app-password logins use the master user. */
  readonly login: 'passthrough' | 'master';
  /** Dovecot master user for logins whose password the backend never saw (app passwords). */
  readonly masterUser?: string;
  readonly masterPassword?: string;
  /** Dovecot auth_master_user_separator. */
  readonly masterSeparator: string;
}

export interface NginxHookConfig {
  /** false: the section is kept (and checked) but the hook does not listen. Default true. */
  readonly enabled: boolean;
  readonly listen: ListenAddress;
  /** The header nginx adds with `auth_http_header` (shared secret, compared in constant time). */
  readonly secretHeader: string;
  readonly secret: string;
  readonly backends: { readonly imap?: NginxBackendConfig; readonly smtp?: NginxBackendConfig };
  /** Auth-Wait is sent for attempts below this; from it on nginx ends the session (it keeps per-session memory). */
  readonly maxWaitAttempts: number;
  readonly tempfailWaitSeconds: number;
  readonly maxFailedLoginWaitSeconds: number;
  /**
   * The longest the failed-login throttle may hold an answer to nginx. It must stay below nginx's
   * `auth_http_timeout`: nginx gives up on a slower answer with "internal server error" (measured),
   * so a longer wait would shut the right password out as long as the failures are remembered.
   */
  readonly throttleWaitMaxMs: number;
  readonly limits: HttpHookLimitsConfig;
}

export interface DoveadmConfig {
  /** The doveadm HTTP API, e.g. http://127.0.0.1:8080/doveadm/v1. */
  readonly url: string;
  /** doveadm_api_key. */
  readonly apiKey: string;
  readonly timeoutMs: number;
  /**
   * Dovecot cannot kick by device: `user-and-address` kicks the user's sessions from the address
   * the device logged in from; `user` kicks every session of the user.
   */
  readonly kick: 'user-and-address' | 'user';
}

export interface DovecotHookConfig {
  /** false: the section is kept (and checked) but the hook does not listen. Default true. */
  readonly enabled: boolean;
  readonly listen: ListenAddress;
  /** auth_policy_server_api_header sends `Name: value`; a value alone is sent as X-API-Key. */
  readonly apiKeyHeader: string;
  readonly apiKey: string;
  /** The oauth2 passdb's introspection client (client_id / client_secret): app passwords verified by mailwarden. */
  readonly passdb?: { readonly clientId: string; readonly clientSecret: string };
  readonly doveadm?: DoveadmConfig;
  /** Allowed Dovecot logins are remembered this long for revocation (Dovecot reports no logout). */
  readonly sessionTtlHours: number;
  readonly maxSessions: number;
  readonly limits: HttpHookLimitsConfig;
}

export interface PostfixHookConfig {
  /** false: the section is kept (and checked) but the hook does not listen. Default true. */
  readonly enabled: boolean;
  readonly listen: ListenAddress;
  /** The policy protocol has no secret: connections from other addresses are closed at once. */
  readonly allowFrom: readonly string[];
  readonly limits: {
    readonly maxConnections: number;
    readonly maxLineBytes: number;
    readonly maxAttributes: number;
    readonly idleTimeoutMs: number;
  };
}

/**
 * Gateway hooks (docs/hooks.md): each one runs when its section is present and enabled. Secrets
 * (secret, apiKey, clientSecret, masterPassword) may be given as `{ file }` or `{ env }` in the
 * file; they are read at load and are plain strings here.
 */
export interface HooksConfig {
  readonly nginx?: NginxHookConfig;
  readonly dovecot?: DovecotHookConfig;
  readonly postfix?: PostfixHookConfig;
}

export interface LoggingConfig {
  readonly level: 'error' | 'warn' | 'info' | 'debug';
  /** stdout: auto (default: text on a terminal, else json), json (services, log shippers) or text. */
  readonly format: 'auto' | 'json' | 'text';
  /** Optional file for JSON lines in addition to stdout. */
  readonly file?: string;
}

export interface AlertsConfig {
  readonly webhookUrl?: string;
  readonly timeoutMs: number;
}

/** Failed-login throttling: a delay doubling per failure, per address, user and app-password device. */
export interface LoginThrottleConfig {
  readonly enabled: boolean;
  /** Delay after the first failure; each further failure doubles it (Dovecot: 2 s). */
  readonly baseDelayMs: number;
  /** The largest delay (Dovecot: 15 s). */
  readonly maxDelayMs: number;
  /** How long a failure counts. */
  readonly windowSeconds: number;
  /** An address a user logged in from is spared the user-wide delay for this long. */
  readonly knownAddressDays: number;
}

export interface MailwardenConfig {
  /** Absolute path of the file this was loaded from; relative paths inside resolve against its folder. */
  readonly configFile: string;
  readonly instanceName: string;
  /**
   * Processes that serve the listeners (node:cluster; src/app/workers.ts): 1 (default) is this
   * process alone; one per core uses the whole machine. More than one needs the Redis store.
   */
  readonly workers: number;
  readonly policyFile: string;
  /** Extra folders searched for plugins before the built-in ones. */
  readonly pluginDirs: readonly string[];
  /** Production footguns allowed anyway: true = all (src/core/config-production.ts). */
  readonly insecure: boolean | readonly InsecureAllowance[];
  /**
   * Certificate and key for every listener with tls implicit or starttls (IMAP and SMTP), and the
   * client CA for certificate identities. Required when any listener uses TLS. (Added by config.)
   */
  readonly tls?: TlsFiles;
  readonly store: StoreConfig;
  readonly reports: ReportsConfig;
  readonly admin?: AdminConfig;
  readonly identity: { readonly sources: readonly IdentitySourceConfig[] };
  readonly loginThrottle: LoginThrottleConfig;
  /** user → groups, for check scopes and staged rollout by group. */
  readonly groups: Readonly<Record<string, readonly string[]>>;
  readonly imap?: ImapConfig;
  readonly smtp?: SmtpConfig;
  readonly hooks: HooksConfig;
  readonly logging: LoggingConfig;
  readonly alerts: AlertsConfig;
  /** MDM inventory connectors (docs/connectors.md). */
  readonly connectors: readonly ConnectorConfig[];
}

export interface CheckScope {
  readonly platforms?: readonly string[];
  readonly protocols?: readonly Protocol[];
  readonly users?: readonly string[];
  readonly groups?: readonly string[];
}

export interface CheckConfig {
  /** Unique id (defaults to the plugin name); used in audit, exemptions and first-seen keys. */
  readonly id: string;
  readonly plugin: string;
  readonly mode: CheckMode;
  /** What a failure does in `enforce` mode. */
  readonly action: Exclude<Action, 'allow'>;
  /** What an `unknown` verdict counts as. Default: fail (missing data is never compliant). */
  readonly onUnknown: 'fail' | 'pass';
  /** What a throw or timeout does. Default tempfail; allow is not offered (never a silent allow). */
  readonly onError: 'deny' | 'tempfail';
  readonly timeoutMs: number;
  readonly scope: CheckScope;
  readonly options: unknown;
  /** Template of the user's sentence: {app}, {platform}, {refId}, {user}, {deviceId}, {helpdesk} ... */
  readonly message: string;
  /** Allowed with a warning for this long after the device was first seen failing. 0 = none. */
  readonly graceHours: number;
  readonly graceMessage?: string;
  /** Staged rollout: enforce only for this share of devices (stable hash) and/or these groups. */
  readonly rollout?: { readonly percent?: number; readonly groups?: readonly string[] };
  /** 1-based line of the entry in policy.yaml (for error messages and simulate output). */
  readonly line: number;
}

export interface PolicyConfig {
  readonly file: string;
  /** Content hash; changes with every edit. */
  readonly version: string;
  /** The YAML text it was loaded from (recorded in the store as the blast-radius baseline). */
  readonly text: string;
  /** Global switch: every check behaves as `report`. */
  readonly reportOnly: boolean;
  readonly helpdesk: string;
  /** Rule for logins that carry no device identity at all. */
  readonly unidentified: { readonly action: Action; readonly message: string };
  readonly messages: { readonly tempfail: string; readonly warnPrefix: string };
  readonly blastRadius: {
    readonly maxNewlyDeniedPercent: number;
    readonly maxNewlyDeniedCount: number;
    /** Fewer newly denied devices than this are accepted whatever their share (small sites), unless it is every device. */
    readonly minNewlyDeniedCount: number;
    /** A policy in force within this window may always come back; the baseline at start stayed in force this long. */
    readonly inForceWindowHours: number;
  };
  readonly brake: {
    readonly enabled: boolean;
    readonly windowSeconds: number;
    readonly minLogins: number;
    readonly maxDeniedPercent: number;
  };
  readonly checks: readonly CheckConfig[];
}

// ---------------------------------------------------------------- connectors (docs/connectors.md)

/** A credential read from a file (relative to the config file) or an environment variable; never inline. */
export type SecretSource = { readonly file: string } | { readonly env: string };

export interface ConnectorCommonConfig {
  /** Unique; used in CLI commands, metrics labels and the record `source` (`connector:<name>`). */
  readonly name: string;
  readonly enabled: boolean;
  readonly intervalSeconds: number;
  readonly requestTimeoutMs: number;
  readonly syncTimeoutSeconds: number;
  /** No complete sync for this long: the source is stale (one connector fault, not one per device). */
  readonly staleAfterSeconds: number;
  /** Devices of a stale source: judged on their last known state (with a warning), or as stale reports. */
  readonly onStaleSource: 'last-known' | 'stale';
  /** A device missing from this many complete syncs in a row is removed. */
  readonly removeAfterAbsentSyncs: number;
  /** Hold a sync that would remove more than this share of the connector's devices. */
  readonly maxRemovedPercent: number;
  /** Hold a sync in which more than this share of the devices lose their whole app inventory. */
  readonly maxInventoryLostPercent: number;
}

export type ConnectorConfig = ConnectorCommonConfig &
  (
    | {
        readonly type: 'intune';
        readonly tenantId: string;
        readonly clientId: string;
        readonly clientSecret: SecretSource;
        readonly deviceId: 'mdm' | 'entra' | 'serial';
        readonly userField: 'upn' | 'email';
        readonly graphUrl: string;
        readonly tokenUrl?: string;
        readonly onlyApps?: readonly string[];
      }
    | {
        readonly type: 'jamf';
        readonly url: string;
        readonly deviceId: 'mdm' | 'serial' | 'udid';
        readonly computersPath: string;
        /** API client (Jamf Pro ≥ 10.49): clientId + clientSecret. Or username + password, or a bearer token. */
        readonly clientId?: string;
        readonly clientSecret?: SecretSource;
        readonly username?: string;
        readonly password?: SecretSource;
        readonly token?: SecretSource;
      }
    | {
        readonly type: 'google';
        /** The service account's JSON key file (or an env var holding the JSON). */
        readonly serviceAccountKey: SecretSource;
        /** The admin the service account acts for (domain-wide delegation). */
        readonly subject: string;
        readonly customerId: string;
        readonly deviceId: 'mdm' | 'udid' | 'serial';
        readonly directoryUrl: string;
        readonly tokenUrl?: string;
      }
    | {
        readonly type: 'fleet';
        readonly url: string;
        readonly token: SecretSource;
        readonly deviceId: 'mdm' | 'udid' | 'serial';
      }
  );
