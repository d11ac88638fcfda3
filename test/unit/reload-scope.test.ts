// The reload's log lines say what a changed listener section does: SMTP upstream and notification
// settings apply to new sessions at once, everything else bound at start waits for a restart.
import { Writable } from 'node:stream';
import winston from 'winston';
import type { MailwardenConfig } from '../../src/core/config-types';
import { logReloadScope } from '../../src/app/reload-scope';

function capture(): { log: winston.Logger; lines: () => Array<{ level: string; message: string; [k: string]: unknown }> } {
  const out: string[] = [];
  const stream = new Writable({ write: (chunk: Buffer, _e, done) => (out.push(chunk.toString()), done()) });
  const log = winston.createLogger({ level: 'debug', format: winston.format.json(), transports: [new winston.transports.Stream({ stream })] });
  return { log, lines: () => out.map((l) => JSON.parse(l)) };
}

const upstream = { host: '127.0.0.1', port: 587, tls: 'starttls', login: 'passthrough', xclient: false };
const base = {
  imap: { listeners: [{ host: '127.0.0.1', port: 1143, tls: 'none' }], upstream: { host: '127.0.0.1', port: 143 } },
  smtp: { listeners: [{ host: '127.0.0.1', port: 1587, tls: 'none' }], upstream, hostname: 'mx.example.com', maxMessageBytes: 1000 },
  admin: { listen: { host: '127.0.0.1', port: 8080 } },
  store: { type: 'memory' },
} as unknown as MailwardenConfig;
const withSmtp = (smtp: object): MailwardenConfig => ({ ...base, smtp: { ...base.smtp, ...smtp } }) as unknown as MailwardenConfig;

test('a changed SMTP upstream is said to apply to new sessions, not to wait for a restart', () => {
  const { log, lines } = capture();
  logReloadScope(base, withSmtp({ upstream: { ...upstream, host: '127.0.0.2' } }), log);
  const logged = lines();
  expect(logged).toHaveLength(1);
  expect(logged[0]!.message).toMatch(/smtp\.upstream.*new SMTP sessions/);
  expect(logged[0]!.message).not.toMatch(/restart/);
  expect(logged[0]!.level).toBe('info');
});

test('a changed SMTP listener or size limit still waits for the next restart, naming the keys', () => {
  const { log, lines } = capture();
  logReloadScope(base, withSmtp({ maxMessageBytes: 2000, upstream: { ...upstream, port: 2587 } }), log);
  const logged = lines();
  expect(logged.map((l) => l.message)).toEqual([
    expect.stringMatching(/smtp\.upstream.*new SMTP sessions/),
    expect.stringMatching(/smtp\.maxMessageBytes.*next restart/),
  ]);
  expect(logged[1]!.level).toBe('warn');
});

test('IMAP, admin and store changes wait for a restart; nothing is logged when nothing changed', () => {
  const { log, lines } = capture();
  logReloadScope(base, base, log);
  expect(lines()).toHaveLength(0);
  logReloadScope(base, { ...base, imap: { ...base.imap, upstream: { host: '127.0.0.3', port: 143 } } } as unknown as MailwardenConfig, log);
  expect(lines()).toEqual([expect.objectContaining({ level: 'warn', message: expect.stringMatching(/imap\.upstream.*next restart/) })]);
});
