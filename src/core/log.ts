// winston JSON-lines logger shared by every module; secrets are redacted before anything is written.
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

export interface LoggerOptions {
  level?: string;
  file?: string;
  /** Extra transports (tests capture everything logged to grep it for secrets). */
  transports?: winston.transport[];
  silent?: boolean;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const transports: winston.transport[] = [
    new winston.transports.Console({ silent: options.silent ?? false }),
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
