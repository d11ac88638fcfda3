// winston logger shared by every module: JSON lines for services, or one readable line per event for
// a terminal (logging.format); secrets are redacted before anything is written.
import winston from 'winston';

export type Logger = winston.Logger;

/**
 * Keys whose values are never logged, wherever they appear in a log entry; plurals too (config
 * `admin.tokens`). The one-letter names are the private parts of a JWK (RFC 7518 §6.2.2, §6.3.2, §6.4.1).
 */
const SECRET_KEYS =
  /^(password|pass|secret|token|accesstoken|refreshtoken|authorization|apppassword|masterpassword|credential|jws|privatekey|passphrase)s?$|^(d|p|q|dp|dq|qi|k)$/i;

function redact(value: unknown, depth = 0): unknown {
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

/** json: one JSON object per line (services, log shippers); text: `time level message key=value …`. */
export type LogFormat = 'json' | 'text';

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
  file?: string;
  /** Extra transports (tests capture everything logged to grep it for secrets). */
  transports?: winston.transport[];
  silent?: boolean;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const transports: winston.transport[] = [
    new winston.transports.Console({
      silent: options.silent ?? false,
      ...(options.format === 'text' && { format: textFormat() }),
    }),
    ...(options.file ? [new winston.transports.File({ filename: options.file })] : []),
    ...(options.transports ?? []),
  ];
  return winston.createLogger({
    level: options.level ?? 'info',
    format: winston.format.combine(redactFormat(), winston.format.timestamp(), winston.format.json()),
    transports,
  });
}

/** A logger that writes nothing (unit tests, CLI commands that print their own output). */
export function silentLogger(): Logger {
  return createLogger({ silent: true });
}
