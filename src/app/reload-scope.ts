// What a configuration reload applies at once and what waits for the next start, as the log lines
// an operator reads after editing the imap, smtp, admin or store section.
import type { Logger } from '../core/log';
import type { MailwardenConfig } from '../core/config-types';

const SECTIONS = ['imap', 'smtp', 'admin', 'store'] as const;

/**
 * Keys the SMTP front end reads per session (src/smtp/service.ts `current()`): a reload applies them
 * to the next session. Every other key of these sections is bound when the listeners start.
 */
const SMTP_PER_SESSION = new Set(['upstream', 'notifyUser']);

function changedKeys(previous: object | undefined, next: object | undefined): string[] {
  const a = (previous ?? {}) as Record<string, unknown>;
  const b = (next ?? {}) as Record<string, unknown>;
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));
}

/** Log, per changed section, which keys apply to new sessions now and which wait for a restart. */
export function logReloadScope(previous: MailwardenConfig, next: MailwardenConfig, log: Logger): void {
  for (const section of SECTIONS) {
    const keys = changedKeys(previous[section], next[section]).map((k) => ({ key: k, name: `${section}.${k}` }));
    const live = section === 'smtp' ? keys.filter((k) => SMTP_PER_SESSION.has(k.key)) : [];
    const atRestart = keys.filter((k) => !live.includes(k));
    if (live.length > 0) {
      const names = live.map((k) => k.name);
      log.info(`configuration ${names.join(', ')} changed: applies to new SMTP sessions; sessions already open keep the old settings`, { section, keys: names });
    }
    if (atRestart.length > 0) {
      const names = atRestart.map((k) => k.name);
      log.warn(`configuration ${names.join(', ')} changed: takes effect at the next restart`, { section, keys: names });
    }
  }
}
