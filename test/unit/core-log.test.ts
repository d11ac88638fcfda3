// The logger's redaction: secret-named fields never reach a log line, wherever they are nested.
import { Writable } from 'node:stream';
import winston from 'winston';
import { createLogger, textLine } from '../../src/core/log';

function capture(): { log: winston.Logger; text: () => string } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const log = createLogger({ silent: true, transports: [new winston.transports.Stream({ stream })] });
  return { log, text: () => lines.join('') };
}

it.each<[string, Record<string, unknown>]>([
  ['a password', { redis: { password: 'SECRET-1' } }],
  ['the admin tokens list (config admin.tokens)', { admin: { tokens: ['SECRET-1', 'SECRET-1b'] } }],
  ['a master password', { upstream: { masterPassword: 'SECRET-1' } }],
  ['a bearer header', { headers: { authorization: 'Bearer SECRET-1' } }],
  ['a symmetric JWK', { jwk: { kty: 'oct', k: 'SECRET-1' } }],
  ['RSA private JWK parts', { jwk: { kty: 'RSA', n: 'public', e: 'AQAB', d: 'SECRET-1', p: 'SECRET-1', q: 'SECRET-1', dp: 'SECRET-1', dq: 'SECRET-1', qi: 'SECRET-1' } }],
  ['an app password', { appPasswords: ['SECRET-1'] }],
])('redacts %s', (_name, meta) => {
  const { log, text } = capture();
  log.info('something', meta);
  expect(text()).toContain('something');
  expect(text()).not.toContain('SECRET-1');
});

it('keeps ordinary fields', () => {
  const { log, text } = capture();
  log.info('decision', { user: 'alice@example.com', deviceId: 'dev-1', tokenCount: 3 });
  expect(text()).toContain('alice@example.com');
  expect(text()).toContain('dev-1');
});

describe('logging.format: text', () => {
  function captureText(): { log: winston.Logger; text: () => string } {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    // The console transport's text format, applied to a capturing stream transport.
    const log = createLogger({ silent: true, format: 'text' });
    const consoleTransport = log.transports[0];
    log.add(new winston.transports.Stream({ stream, format: consoleTransport.format }));
    return { log, text: () => lines.join('') };
  }

  it('writes one line: time, level, message, key=value fields, secrets redacted', () => {
    const { log, text } = captureText();
    log.warn('login refused', { user: 'alice@example.com', reason: 'BANNED_APP', sentence: 'Remove TikTok now', masterPassword: 'SECRET-1', n: 3 });
    const out = text();
    expect(out.trim().split('\n')).toHaveLength(1);
    expect(out).toMatch(/^\d{4}-\d\d-\d\dT\S+Z WARN  login refused  user=alice@example.com reason=BANNED_APP sentence="Remove TikTok now" masterPassword=\[redacted\] n=3\n$/);
    expect(out).not.toContain('SECRET-1');
  });

  it('prints a message without fields as just the head', () => {
    const { log, text } = captureText();
    log.info('mailwarden stopped');
    expect(text()).toMatch(/ INFO  mailwarden stopped\n$/);
  });
});

it('textLine JSON-encodes objects and arrays', () => {
  expect(textLine({ timestamp: 't', level: 'info', message: 'm', imap: ['127.0.0.1:1143'], store: { kind: 'memory' } })).toBe(
    't INFO  m  imap=["127.0.0.1:1143"] store={"kind":"memory"}',
  );
});

describe('logging.format: auto', () => {
  it('is text on a terminal and JSON otherwise (systemd, Docker, a pipe); text and json are taken as given', () => {
    const { consoleFormat } = jest.requireActual<typeof import('../../src/core/log')>('../../src/core/log');
    expect(consoleFormat('auto', true)).toBe('text');
    expect(consoleFormat('auto', false)).toBe('json');
    expect(consoleFormat('json', true)).toBe('json');
    expect(consoleFormat('text', false)).toBe('text');
    expect(consoleFormat(undefined, true)).toBe('json');
  });
});
