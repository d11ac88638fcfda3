// winston logger shared by every module: JSON lines for services, or one readable line per event for
// a terminal (logging.format); secrets are redacted before anything is written.
import winston from 'winston';

export type Logger = winston.Logger;

/**
 * Keys whose values are never logged, wherever they appear in a log entry; plurals too (config
 * `admin.tokens`). The one-letter names are the private parts of a JWK (RFC 7518 §6.2.2, §6.3.2, §6.4.1).
 */
const SECRET_KEYS =
  /^(password|pass|secret|token|accesstoken|refreshtoken|authorization|apppassword|masterpassword|apikey|clientsecret|credential|jws|privatekey|passphrase)s?$|^(d|p|q|dp|dq|qi|k)$/i;

/** A copy of `value` with every secret-named field replaced by "[redacted]" (logs, `config show`). */
export function redact(value: unknown, depth = 0): unknown {
  if (depth > 6 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    out[k] = SECRET_KEYS.test(k) ? '[redacted]' : redact(v, depth + 1);
  }
  return out;
}

const redactFormat = winston.format((info) => {
  for (const key of Object.keys(info)) {
    if (SECRET_KEYS.test(key)) (info as Record<string, unknown>)[key] = '[redacted]';
    else (info as Record<string, unknown>)[key] = redact((info as Record<string, unknown>)[key]);
  }
  return info;
});

/**
 * json: one JSON object per line (services, log shippers); text: `time level message key=value …`;
 * auto (the default): text when stdout is a terminal, JSON otherwise (systemd, Docker, a pipe).
 */
export type LogFormat = 'auto' | 'json' | 'text';

/** The format the console gets: `auto` decided by whether stdout is a terminal. */
export function consoleFormat(format: LogFormat | undefined, stdoutIsTerminal: boolean = process.stdout.isTTY === true): 'json' | 'text' {
  if (format === 'text' || format === 'json') return format;
  return format === 'auto' && stdoutIsTerminal ? 'text' : 'json';
}

/** The key winston's transports write (triple-beam's MESSAGE, a registered symbol). */
const MESSAGE = Symbol.for('message');

const FIXED_FIELDS = new Set(['level', 'message', 'timestamp']);

/** A field value in a text line: bare when it has no space, quote or `=`; else JSON-quoted. */
function textValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  return JSON.stringify(value) ?? String(value);
}

/** One line per event: timestamp, level, message, then every other field as key=value (already redacted). */
export function textLine(info: Record<string, unknown>): string {
  const fields = Object.keys(info)
    .filter((key) => !FIXED_FIELDS.has(key) && info[key] !== undefined)
    .map((key) => `${key}=${textValue(info[key])}`);
  const head = `${String(info.timestamp ?? '')} ${String(info.level).toUpperCase().padEnd(5)} ${String(info.message)}`;
  return fields.length > 0 ? `${head}  ${fields.join(' ')}` : head;
}

const textFormat = winston.format((info) => {
  (info as Record<string | symbol, unknown>)[MESSAGE] = textLine(info as Record<string, unknown>);
  return info;
});

export interface LoggerOptions {
  level?: string;
  /** What the console (stdout) gets; the log file is always JSON lines. Default json. */
  format?: LogFormat;
  /** Where the console lines go instead of stdout (`mailwarden start` holds them behind its banner). */
  consoleStream?: NodeJS.WritableStream;
  file?: string;
  /** Extra transports (tests capture everything logged to grep it for secrets). */
  transports?: winston.transport[];
  silent?: boolean;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const text = consoleFormat(options.format) === 'text';
  const consoleOptions = { silent: options.silent ?? false, ...(text && { format: textFormat() }) };
  const transports: winston.transport[] = [
    options.consoleStream
      ? new winston.transports.Stream({ ...consoleOptions, stream: options.consoleStream })
      : new winston.transports.Console(consoleOptions),
    ...(options.file ? [new winston.transports.File({ filename: options.file })] : []),
    ...(options.transports ?? []),
  ];
  return winston.createLogger({
    level: options.level ?? 'info',
    format: winston.format.combine(redactFormat(), winston.format.timestamp(), winston.format.json()),
    transports,
  });
}

/**
 * The fields every line about one connection carries, under the same names for IMAP, SMTP and the
 * admin API: protocol, sessionId and remoteAddress from the start; user and deviceId once the login
 * is known (withUser).
 */
export interface ConnectionFields {
  readonly protocol: 'imap' | 'smtp' | 'admin';
  readonly sessionId?: string;
  readonly remoteAddress?: string;
}

/** A logger for one connection: each line carries `fields` (a field a call passes wins). */
export function connectionLogger(log: Logger, fields: ConnectionFields): Logger {
  return log.child({ ...fields });
}

/**
 * The connection's logger once its login named the user (and the device, or null), made from the
 * base logger again rather than from the connection's first child: a child of a child turns the
 * first one into a prototype, and V8 then keeps a prototype map and info for every connection
 * (about 1 KB per idle session, measured in heap snapshots of 1,000 IDLE sessions).
 */
export function withUser(base: Logger, fields: ConnectionFields, user: string, deviceId: string | null): Logger {
  return base.child({ ...fields, user, deviceId });
}

/** A logger that writes nothing (unit tests, CLI commands that print their own output). */
export function silentLogger(): Logger {
  return createLogger({ silent: true });
}
