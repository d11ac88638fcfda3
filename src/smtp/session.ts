// What one SMTP client session goes through: the admission step at AUTH, the policy's
// sentence at MAIL FROM for a refused device, relaying for an allowed one, and refusal of the next
// MAIL FROM once its session is revoked.
import type { PeerCertificate, TLSSocket } from 'node:tls';
import type { SMTPServerAddress, SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import type { Gate } from '../app/gate';
import { connectionLogger, withUser, type ConnectionFields, type Logger } from '../core/log';
import type { Credential, UpstreamLogin } from '../identity/types';
import type { AdmittedIdentity } from '../admission/types';
import type { Decision } from '../policy/decision';
import { headerHints } from './hints';
import type { AuthOutcome, SmtpHandlers } from './listener';
import type { Notifier } from './notify';
import type { MailParams, Relay } from './relay';
import type { ClientFacts, Upstream } from './upstream';
import { refusal, Replies, type SmtpReply } from './replies';

/** Who the session logged in as, and how it logs in upstream (again after an idle timeout). */
type Identified = AdmittedIdentity & { readonly upstream: UpstreamLogin };

/** The state of one client connection. */
class ClientSession {
  peerCertificate?: PeerCertificate;
  identity: Identified | null = null;
  /** The decision at AUTH. */
  decision: Decision | null = null;
  /** Set when a live re-evaluation refused the session after login. */
  revoked: Decision | null = null;
  upstream: Relay | null = null;
  /** Hints seen so far (EHLO name, X-Mailer, User-Agent); shared with the registered LiveSession. */
  readonly hints: Record<string, string> = {};
  unregister: (() => void) | null = null;

  constructor(
    readonly id: string,
    /** protocol, sessionId, remoteAddress: what every line about this session carries. */
    readonly logFields: ConnectionFields,
    /** Carries logFields; user and deviceId once AUTH named them. */
    public log: Logger,
  ) {}

  /** The reply that refuses this session's next transaction, or null if it may send. */
  refusal(): SmtpReply | null {
    if (this.revoked) return refusal(this.revoked);
    if (this.decision && this.decision.action !== 'allow') return refusal(this.decision);
    return null;
  }

  close(): void {
    this.unregister?.();
    this.unregister = null;
    const upstream = this.upstream;
    this.upstream = null;
    if (upstream) void upstream.quit();
  }
}

function fail(reply: SmtpReply): AuthOutcome {
  return { ok: false, reply };
}

/** RFC 6152 BODY, RFC 6531 SMTPUTF8 and RFC 1870 SIZE, as smtp-server parsed them. */
function mailParams(address: SMTPServerAddress): MailParams {
  const args = address.args || {};
  const body = typeof args.BODY === 'string' ? args.BODY.toUpperCase() : undefined;
  return {
    ...(body === '8BITMIME' || body === '7BIT' ? { body } : {}),
    ...(args.SMTPUTF8 === true ? { smtpUtf8: true } : {}),
    ...(typeof args.SIZE === 'string' ? { size: Number(args.SIZE) } : {}),
  };
}

function clientFacts(session: SMTPServerSession): ClientFacts {
  return {
    remoteAddress: session.remoteAddress,
    remotePort: session.remotePort,
    ...(session.hostNameAppearsAs ? { helo: session.hostNameAppearsAs } : {}),
  };
}

export interface SmtpSessionsOptions {
  readonly gate: Gate;
  readonly upstream: Upstream;
  readonly notifier: Notifier | null;
  /** The limit smtp-server advertises with SIZE (RFC 1870), enforced while streaming. */
  readonly maxMessageBytes: number;
  /** smtp.upstream.login now: with 'master', identities the proxy verified log in with the proxy credential. */
  readonly upstreamLogin: () => 'passthrough' | 'master';
}

export class SmtpSessions implements SmtpHandlers {
  private readonly clients = new Map<string, ClientSession>();

  constructor(private readonly options: SmtpSessionsOptions) {}

  /** Sessions open now (for tests and shutdown). */
  get size(): number {
    return this.clients.size;
  }

  secure(socket: TLSSocket, session: SMTPServerSession): void {
    // Only a certificate that chained to the configured MDM CA identifies a device.
    if (socket.authorized) this.client(session).peerCertificate = socket.getPeerCertificate();
  }

  async auth(credential: Credential, session: SMTPServerSession): Promise<AuthOutcome> {
    const { gate, upstream } = this.options;
    const client = this.client(session);
    if (session.hostNameAppearsAs) client.hints.ehlo = session.hostNameAppearsAs;
    const admission = await gate.admit({
      protocol: 'smtp',
      frontEnd: 'smtp',
      sessionId: client.id,
      credential,
      peerCertificate: client.peerCertificate,
      remoteAddress: session.remoteAddress,
      // Shared with the live session: X-Mailer / User-Agent seen later reach its re-evaluations.
      hints: client.hints,
      upstreamLogin: this.options.upstreamLogin(),
      live: { revoke: (decision) => this.revoked(client, decision) },
    });
    if (admission.kind === 'bad-credentials' || (admission.kind === 'unavailable' && !admission.decision)) {
      const failure = admission.kind === 'bad-credentials' ? 'bad-credentials' : 'unavailable';
      client.log.info('smtp login refused', { event: 'smtp.auth', failure, detail: admission.detail });
      gate.metrics?.onLogin('smtp', failure === 'bad-credentials' ? 'bad-credentials' : 'tempfail');
      return fail(failure === 'bad-credentials' ? Replies.badCredentials : Replies.authTempFail());
    }
    // RFC 4954 §6: the system could not decide (store down, check error) → 454, the client retries.
    if (admission.kind === 'unavailable') {
      gate.metrics?.onLogin('smtp', 'tempfail');
      return fail(Replies.authTempFail(admission.decision?.message));
    }
    const { identity, decision, upstream: login } = admission;
    const live = admission.kind === 'allow' ? admission.session : null;
    if (live) client.unregister = () => live.end();
    client.identity = { ...identity, upstream: login };
    client.log = withUser(gate.log, client.logFields, identity.user, identity.deviceId);
    if (this.clients.get(session.id) !== client) {
      // The client left while the decision was made.
      live?.end();
      return fail(Replies.authTempFail());
    }

    // Allowed: log in upstream now, so a wrong password (passthrough) is a 535 here, and an upstream
    // outage a 454, rather than surprises at MAIL FROM. Refused with passthrough: the upstream is the
    // only judge of the password, so check it before AUTH succeeds and the sentence is shown.
    if (admission.kind === 'allow' || login.mode === 'passthrough') {
      const opened = await upstream.open(login, clientFacts(session));
      // A passthrough password is judged by the upstream: the login throttle counts its verdict.
      if (opened.ok || opened.failure === 'auth-rejected') admission.upstreamChecked?.(opened.ok);
      if (!opened.ok) {
        live?.end();
        client.identity = null;
        client.log.warn('smtp upstream login failed', { event: 'smtp.upstream', failure: opened.failure, reason: opened.reason, detail: opened.detail });
        gate.metrics?.onLogin('smtp', opened.failure === 'auth-rejected' ? 'bad-credentials' : 'upstream-error');
        return fail(opened.failure === 'auth-rejected' ? Replies.badCredentials : Replies.authTempFail());
      }
      if (admission.kind === 'allow') client.upstream = opened.session;
      else void opened.session.quit();
    }
    client.decision = decision;
    if (live) {
      // Registered before the upstream login: a revocation during it already set client.revoked;
      // a policy reload during it is caught here (the decision is re-made under the new policy).
      const now = await live.confirm();
      if (now.action !== 'allow') this.revoked(client, now);
    } else if (decision.action === 'deny') void this.options.notifier?.deviceDenied(login, decision);
    // AUTH succeeds either way; a refused device is told at MAIL FROM (the sentence needs a reply).
    gate.metrics?.onLogin('smtp', decision.action);
    if (live) {
      // Counted while the client stays connected (client.close() runs unregister exactly once).
      const end = client.unregister;
      gate.metrics?.sessionDelta('smtp', 1);
      client.unregister = () => {
        end?.();
        gate.metrics?.sessionDelta('smtp', -1);
      };
    }
    return { ok: true, user: identity.user };
  }

  async mailFrom(address: SMTPServerAddress, session: SMTPServerSession): Promise<SmtpReply | null> {
    const client = this.clients.get(session.id);
    if (!client?.identity) return { code: 530, text: Replies.authRequiredText };
    const refused = client.refusal();
    if (refused) {
      client.log.info('smtp transaction refused by policy', {
        event: 'smtp.refused',
        refId: (client.revoked ?? client.decision)?.refId,
      });
      return refused;
    }
    const relay = await this.upstreamFor(client, session);
    if (!relay) return Replies.upstreamUnavailable;
    return relay.mailFrom(address.address, mailParams(address));
  }

  async rcptTo(address: SMTPServerAddress, session: SMTPServerSession): Promise<SmtpReply | null> {
    const client = this.clients.get(session.id);
    const refused = client?.refusal();
    if (!client || refused) return refused ?? Replies.localError;
    if (!client.upstream?.usable) return Replies.upstreamLost;
    return client.upstream.rcptTo(address.address);
  }

  async data(stream: SMTPServerDataStream, session: SMTPServerSession): Promise<SmtpReply> {
    const client = this.clients.get(session.id);
    const refused = client?.refusal();
    if (!client?.identity || refused) return refused ?? Replies.localError;
    const relay = client.upstream;
    if (!relay?.usable) return Replies.upstreamLost;
    let hints: Promise<Record<string, string>> = Promise.resolve({});
    const outcome = await relay.data(stream, {
      maxBytes: this.options.maxMessageBytes,
      // The sending app does not change within a session: parse until its hints are known.
      onHeaderBlock: (block) => {
        if (block && !client.hints['x-mailer'] && !client.hints['user-agent']) hints = headerHints(block).catch(() => ({}));
      },
      // A session revoked while the message streamed is refused before the final dot.
      beforeCommit: () => client.refusal(),
    });
    Object.assign(client.hints, await hints);
    if (!relay.usable) client.upstream = null;
    client.log.info('smtp message', {
      event: 'smtp.message',
      refId: client.decision?.refId,
      recipients: session.envelope.rcptTo.length,
      bytes: outcome.bytes,
      delivered: outcome.delivered,
      reply: `${outcome.reply.code} ${outcome.reply.text}`,
      ...(outcome.aborted ? { aborted: outcome.aborted } : {}),
      hints: client.hints,
    });
    return outcome.reply;
  }

  close(session: SMTPServerSession): void {
    const client = this.clients.get(session.id);
    if (!client) return;
    this.clients.delete(session.id);
    client.close();
  }

  private client(session: SMTPServerSession): ClientSession {
    let client = this.clients.get(session.id);
    if (!client) {
      const id = `smtp-${session.id}`;
      const fields: ConnectionFields = { protocol: 'smtp', sessionId: id, remoteAddress: session.remoteAddress };
      client = new ClientSession(id, fields, connectionLogger(this.options.gate.log, fields));
      this.clients.set(session.id, client);
    }
    return client;
  }

  /** The session's upstream, reopened when the previous one went away (idle timeout, aborted DATA). */
  private async upstreamFor(client: ClientSession, session: SMTPServerSession): Promise<Relay | null> {
    if (client.upstream?.usable) return client.upstream;
    client.upstream = null;
    const opened = await this.options.upstream.open((client.identity as Identified).upstream, clientFacts(session));
    if (!opened.ok) {
      client.log.warn('smtp upstream unavailable', { event: 'smtp.upstream', detail: opened.detail });
      return null;
    }
    client.upstream = opened.session;
    return client.upstream;
  }

  /** A live re-evaluation refused the session: its next transaction is refused. */
  private revoked(client: ClientSession, decision: Decision): void {
    if (client.revoked) return;
    client.revoked = decision;
    client.log.info('smtp session revoked; its next transaction is refused', {
      event: 'smtp.revoked',
      refId: decision.refId,
    });
    // Nothing is in flight: free the upstream now (a message in flight is stopped before its dot).
    if (client.upstream?.idle) {
      void client.upstream.quit();
      client.upstream = null;
    }
  }
}
