// What one SMTP client session goes through: identity and policy decision at AUTH, the policy's
// sentence at MAIL FROM for a refused device, relaying for an allowed one, and refusal of the next
// MAIL FROM once its session is revoked.
import type { PeerCertificate, TLSSocket } from 'node:tls';
import type { SMTPServerAddress, SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import type { Gate } from '../core/gate';
import type { LiveSession } from '../core/sessions';
import type { Credential, IdentityResult } from '../identity/types';
import type { Decision } from '../policy/decision';
import { headerHints } from './hints';
import type { AuthOutcome, SmtpHandlers } from './listener';
import type { Notifier } from './notify';
import type { ClientFacts, MailParams, Relay, RelaySession } from './relay';
import { isSystemFault, refusal, Replies, type SmtpReply } from './replies';

type Identified = Extract<IdentityResult, { ok: true }>;

/** The state of one client connection. */
class ClientSession {
  peerCertificate?: PeerCertificate;
  identity: Identified | null = null;
  /** The decision at AUTH. */
  decision: Decision | null = null;
  /** Set when a live re-evaluation refused the session after login. */
  revoked: Decision | null = null;
  relay: RelaySession | null = null;
  /** Hints seen so far (EHLO name, X-Mailer, User-Agent); shared with the registered LiveSession. */
  readonly hints: Record<string, string> = {};
  unregister: (() => void) | null = null;

  constructor(readonly id: string) {}

  /** The reply that refuses this session's next transaction, or null if it may send. */
  refusal(): SmtpReply | null {
    if (this.revoked) return refusal(this.revoked);
    if (this.decision && this.decision.action !== 'allow') return refusal(this.decision);
    return null;
  }

  close(): void {
    this.unregister?.();
    this.unregister = null;
    const relay = this.relay;
    this.relay = null;
    if (relay) void relay.quit();
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

export interface SmtpProxyOptions {
  readonly gate: Gate;
  readonly relay: Relay;
  readonly notifier: Notifier | null;
  /** The limit smtp-server advertises with SIZE (RFC 1870), enforced while streaming. */
  readonly maxMessageBytes: number;
  /** smtp.upstream.login now: with 'master', identities the proxy verified log in with the proxy credential. */
  readonly upstreamLogin: () => 'passthrough' | 'master';
}

export class SmtpProxy implements SmtpHandlers {
  private readonly clients = new Map<string, ClientSession>();

  constructor(private readonly options: SmtpProxyOptions) {}

  /** Sessions open now (for tests and shutdown). */
  get size(): number {
    return this.clients.size;
  }

  secure(socket: TLSSocket, session: SMTPServerSession): void {
    // Only a certificate that chained to the configured MDM CA identifies a device.
    if (socket.authorized) this.client(session).peerCertificate = socket.getPeerCertificate();
  }

  async auth(credential: Credential, session: SMTPServerSession): Promise<AuthOutcome> {
    const { gate, relay } = this.options;
    const client = this.client(session);
    if (session.hostNameAppearsAs) client.hints.ehlo = session.hostNameAppearsAs;
    let identity: IdentityResult;
    try {
      identity = await gate.identity.resolve({
        credential,
        peerCertificate: client.peerCertificate,
        remoteAddress: session.remoteAddress,
        upstreamLogin: this.options.upstreamLogin(),
      });
    } catch (err) {
      gate.log.error('identity resolver failed', { event: 'smtp.auth', error: (err as Error).message });
      return fail(Replies.authTempFail());
    }
    if (!identity.ok) {
      gate.log.info('smtp login refused', { event: 'smtp.auth', failure: identity.failure, detail: identity.detail, remoteAddress: session.remoteAddress });
      return fail(identity.failure === 'bad-credentials' ? Replies.badCredentials : Replies.authTempFail());
    }
    const decision = await gate.decide({
      user: identity.user,
      deviceId: identity.deviceId,
      protocol: 'smtp',
      identitySource: identity.source,
      identityStrength: identity.strength,
      hints: { ...client.hints },
      remoteAddress: session.remoteAddress,
      trigger: 'login',
    });
    // RFC 4954 §6: the system could not decide (store down, check error) → 454, the client retries.
    if (isSystemFault(decision)) return fail(Replies.authTempFail(decision.message));

    // Allowed: log in upstream now, so a wrong password (passthrough) is a 535 here, and an upstream
    // outage a 454, rather than surprises at MAIL FROM. Refused with passthrough: the upstream is the
    // only judge of the password, so check it before AUTH succeeds and the sentence is shown.
    const needsUpstream = decision.action === 'allow' || identity.upstream.mode === 'passthrough';
    if (needsUpstream) {
      const opened = await relay.open(identity.upstream, clientFacts(session));
      if (!opened.ok) {
        gate.log.warn('smtp upstream login failed', { event: 'smtp.upstream', user: identity.user, failure: opened.failure, detail: opened.detail });
        return fail(opened.failure === 'auth-rejected' ? Replies.badCredentials : Replies.authTempFail());
      }
      if (decision.action === 'allow') client.relay = opened.session;
      else void opened.session.quit();
    }
    client.identity = identity;
    client.decision = decision;
    if (decision.action === 'allow') this.register(client, identity, session);
    else if (decision.action === 'deny') void this.options.notifier?.deviceDenied(identity.upstream, decision);
    return { ok: true, user: identity.user };
  }

  async mailFrom(address: SMTPServerAddress, session: SMTPServerSession): Promise<SmtpReply | null> {
    const client = this.clients.get(session.id);
    if (!client?.identity) return { code: 530, text: Replies.authRequiredText };
    const refused = client.refusal();
    if (refused) {
      this.options.gate.log.info('smtp transaction refused by policy', {
        event: 'smtp.refused',
        sessionId: client.id,
        user: client.identity.user,
        deviceId: client.identity.deviceId,
        refId: (client.revoked ?? client.decision)?.refId,
      });
      return refused;
    }
    const relay = await this.relayFor(client, session);
    if (!relay) return Replies.upstreamUnavailable;
    return relay.mailFrom(address.address, mailParams(address));
  }

  async rcptTo(address: SMTPServerAddress, session: SMTPServerSession): Promise<SmtpReply | null> {
    const client = this.clients.get(session.id);
    const refused = client?.refusal();
    if (!client || refused) return refused ?? Replies.localError;
    if (!client.relay?.usable) return Replies.upstreamLost;
    return client.relay.rcptTo(address.address);
  }

  async data(stream: SMTPServerDataStream, session: SMTPServerSession): Promise<SmtpReply> {
    const client = this.clients.get(session.id);
    const refused = client?.refusal();
    if (!client?.identity || refused) return refused ?? Replies.localError;
    const relay = client.relay;
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
    if (!relay.usable) client.relay = null;
    this.options.gate.log.info('smtp message', {
      event: 'smtp.message',
      sessionId: client.id,
      refId: client.decision?.refId,
      user: client.identity.user,
      deviceId: client.identity.deviceId,
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
      client = new ClientSession(`smtp-${session.id}`);
      this.clients.set(session.id, client);
    }
    return client;
  }

  /** The session's upstream, reopened when the previous one went away (idle timeout, aborted DATA). */
  private async relayFor(client: ClientSession, session: SMTPServerSession): Promise<RelaySession | null> {
    if (client.relay?.usable) return client.relay;
    client.relay = null;
    const opened = await this.options.relay.open((client.identity as Identified).upstream, clientFacts(session));
    if (!opened.ok) {
      this.options.gate.log.warn('smtp upstream unavailable', { event: 'smtp.upstream', sessionId: client.id, detail: opened.detail });
      return null;
    }
    client.relay = opened.session;
    return client.relay;
  }

  private register(client: ClientSession, identity: Identified, session: SMTPServerSession): void {
    const log = this.options.gate.log;
    const live: LiveSession = {
      id: client.id,
      protocol: 'smtp',
      user: identity.user,
      deviceId: identity.deviceId,
      identitySource: identity.source,
      identityStrength: identity.strength,
      hints: client.hints,
      remoteAddress: session.remoteAddress,
      revoke: (decision) => {
        if (client.revoked) return;
        client.revoked = decision;
        log.info('smtp session revoked; its next transaction is refused', {
          event: 'smtp.revoked',
          sessionId: client.id,
          user: identity.user,
          deviceId: identity.deviceId,
          refId: decision.refId,
        });
        // Nothing is in flight: free the upstream now (a message in flight is stopped before its dot).
        if (client.relay?.idle) {
          void client.relay.quit();
          client.relay = null;
        }
      },
    };
    client.unregister = this.options.gate.sessions.add(live);
  }
}
