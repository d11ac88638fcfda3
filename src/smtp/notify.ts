// Tells the person, by mail to their own mailbox, that a device was blocked from sending: which
// device, why (the policy's sentence names the app), what to do. At most once per interval per
// device; the last-sent time is a store flag, so every instance sharing the store respects it.
import MailComposer from 'nodemailer/lib/mail-composer';
import type { SmtpConfig } from '../core/config-types';
import type { Logger } from '../core/log';
import type { UpstreamLogin } from '../identity/types';
import type { Decision } from '../policy/decision';
import type { Upstream } from './upstream';

export type NotifySettings = NonNullable<SmtpConfig['notifyUser']>;
/** The shared flags the last-sent time lives in (the store's getFlag/setFlag). */
export interface NotifyStore {
  getFlag(name: string): Promise<string | null>;
  setFlag(name: string, value: string | null): Promise<void>;
}
export type NotifyResult = 'sent' | 'skipped' | 'failed';

export interface NotifierDeps {
  readonly upstream: Pick<Upstream, 'deliver'>;
  readonly store: NotifyStore;
  readonly log: Logger;
  /** Read at each denial, so a reload applies. */
  readonly settings: () => SmtpConfig['notifyUser'];
  readonly helpdesk: () => string;
  readonly now?: () => number;
}

/** Fills {user}, {deviceId}, {message}, {refId}, {reason}, {check}, {helpdesk}; unknown names stay as written. */
export function renderTemplate(template: string, vars: Readonly<Record<string, string>>): string {
  return template.replace(/\{(\w+)\}/g, (whole, name: string) => vars[name] ?? whole);
}

export function notifiedFlag(user: string, deviceId: string | null): string {
  return deviceId ? `notified:${deviceId}` : `notified:user:${user}`;
}

export class Notifier {
  private readonly now: () => number;

  constructor(private readonly deps: NotifierDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** For a deny decision at login. Never throws (called without awaiting from the AUTH path). */
  async deviceDenied(upstream: UpstreamLogin, decision: Decision): Promise<NotifyResult> {
    const settings = this.deps.settings();
    if (!settings?.enabled || decision.action !== 'deny') return 'skipped';
    const { user, deviceId } = decision;
    if (!user.includes('@')) return 'skipped';
    const flag = notifiedFlag(user, deviceId);
    const log = this.deps.log;
    let previous: string | null;
    try {
      previous = await this.deps.store.getFlag(flag);
      const last = previous === null ? Number.NaN : Number(previous);
      if (Number.isFinite(last) && this.now() - last < settings.intervalHours * 3600_000) return 'skipped';
      // Claim before sending, so two sessions denied at once do not both send.
      await this.deps.store.setFlag(flag, String(this.now()));
    } catch (err) {
      log.warn('user notification skipped: store unavailable', { event: 'smtp.notify', user, deviceId, error: (err as Error).message });
      return 'failed';
    }
    try {
      const message = await this.compose(settings, decision);
      const reply = await this.deps.upstream.deliver(upstream, settings.from, user, message);
      if (reply.code >= 200 && reply.code < 300) {
        log.info('user notified of blocked device', { event: 'smtp.notify', user, deviceId, refId: decision.refId });
        return 'sent';
      }
      throw new Error(`${reply.code} ${reply.text}`);
    } catch (err) {
      log.warn('user notification not delivered', { event: 'smtp.notify', user, deviceId, refId: decision.refId, error: (err as Error).message });
      // Give the claim back so the next denial tries again.
      await this.deps.store.setFlag(flag, previous).catch(() => undefined);
      return 'failed';
    }
  }

  private compose(settings: NotifySettings, decision: Decision): Promise<Buffer> {
    const vars: Record<string, string> = {
      user: decision.user,
      deviceId: decision.deviceId ?? 'unknown device',
      message: decision.message ?? '',
      refId: decision.refId,
      reason: decision.reasonCode,
      check: decision.decidedBy ?? '',
      helpdesk: this.deps.helpdesk(),
    };
    return new MailComposer({
      from: settings.from,
      to: decision.user,
      subject: renderTemplate(settings.subject, vars),
      text: renderTemplate(settings.body, vars),
      // RFC 3834 §5: an automatic message; vacation responders must not answer it.
      headers: { 'Auto-Submitted': 'auto-generated' },
    })
      .compile()
      .build();
  }
}
