// Live sessions on every instance, asked on demand over the change channel: the console publishes
// "which sessions has device D?" (or "end them") with a request id, every other instance answers
// with its own, and the asker (which answers itself at once) collects the answers for a bounded
// window. Nothing is written per login: the login path's Redis commands stay as they are
// (test/integration/login-redis-calls.test.ts).
import { randomUUID } from 'node:crypto';
import { errorText } from '../core/errors';
import type { Logger } from '../core/log';
import { newRefId } from '../policy/decider';
import { CoreReasonCodes, type Decision } from '../policy/decision';
import type { LiveSession } from '../policy/live-session';
import type { ChangeFeed } from '../store/device-store';
import type { SessionRegistry } from './sessions';

/** How long the asker waits for answers: pub/sub round trips on a LAN take milliseconds. */
export const DEFAULT_ANSWER_WINDOW_MS = 300;
/** An answer lists at most this many sessions (one device rarely has more than a few). */
const MAX_SESSIONS_PER_ANSWER = 200;
const MAX_FIELD = 512;

export interface DirectorySession {
  readonly id: string;
  readonly protocol: string;
  readonly user: string;
  readonly remoteAddress?: string;
}

/** One instance process's answer (with node:cluster workers, one per worker). */
export interface InstanceAnswer {
  readonly instance: string;
  readonly sessions: readonly DirectorySession[];
  /** For an end request: how many sessions it ended. */
  readonly ended: number;
}

export interface DirectoryAnswers {
  readonly answers: readonly InstanceAnswer[];
  /** False when the question could not be published (store unreachable): only this instance answered. */
  readonly reachedOthers: boolean;
  readonly windowMs: number;
}

export interface SessionDirectoryOptions {
  readonly feed: Pick<ChangeFeed, 'publish' | 'subscribe'>;
  readonly sessions: SessionRegistry;
  readonly log: Logger;
  instanceName(): string;
  /** The policy in force, for the sentence a session ended from the console is told. */
  policy(): { readonly version: string; readonly helpdesk: string };
  readonly answerWindowMs?: number;
}

/** `from` names the asking process, which answers its own question directly, not over the channel. */
type Question = { op: 'list' | 'end'; requestId: string; deviceId: string; by: string; from: string };
type Answer = { op: 'answer'; requestId: string; instance: string; sessions: DirectorySession[]; ended: number };

export class SessionDirectory {
  private readonly pending = new Map<string, InstanceAnswer[]>();
  private unsubscribe: (() => Promise<void>) | null = null;
  private readonly windowMs: number;
  /** This process (with node:cluster workers, each worker is one). */
  private readonly self = randomUUID();

  constructor(private readonly options: SessionDirectoryOptions) {
    this.windowMs = options.answerWindowMs ?? DEFAULT_ANSWER_WINDOW_MS;
  }

  async start(): Promise<void> {
    this.unsubscribe = await this.options.feed.subscribe((event) => {
      if (event.kind === 'sessions') this.onMessage(event.body);
    });
  }

  async stop(): Promise<void> {
    const unsubscribe = this.unsubscribe;
    this.unsubscribe = null;
    await unsubscribe?.();
  }

  /** The device's live sessions on every instance that answers within the window. */
  list(deviceId: string): Promise<DirectoryAnswers> {
    return this.ask('list', deviceId, '');
  }

  /** Ends the device's live sessions on every instance; `by` is who asked (logged by each instance). */
  end(deviceId: string, by: string): Promise<DirectoryAnswers> {
    return this.ask('end', deviceId, by);
  }

  private async ask(op: Question['op'], deviceId: string, by: string): Promise<DirectoryAnswers> {
    const question: Question = { op, requestId: randomUUID(), deviceId, by, from: this.self };
    // This process answers at once; the others over the channel, within the window.
    const answers: InstanceAnswer[] = [this.answerLocally(question)];
    this.pending.set(question.requestId, answers);
    try {
      await this.options.feed.publish({ kind: 'sessions', body: question });
    } catch (err) {
      // The store is unreachable: nobody else can be asked, so this process answers alone.
      this.pending.delete(question.requestId);
      this.options.log.warn('session directory: the other instances could not be asked', { error: errorText(err) });
      return { answers, reachedOthers: false, windowMs: this.windowMs };
    }
    await new Promise((resolve) => setTimeout(resolve, this.windowMs));
    this.pending.delete(question.requestId);
    return { answers, reachedOthers: true, windowMs: this.windowMs };
  }

  private onMessage(body: Readonly<Record<string, unknown>>): void {
    const question = readQuestion(body);
    if (question) {
      if (question.from === this.self) return; // answered when asked
      const answer = this.answerLocally(question);
      const message: Answer = { op: 'answer', requestId: question.requestId, ...answer, sessions: [...answer.sessions] };
      this.options.feed.publish({ kind: 'sessions', body: message }).catch((err: unknown) => {
        this.options.log.warn('session directory: answer not published', { requestId: question.requestId, error: errorText(err) });
      });
      return;
    }
    const answer = readAnswer(body);
    if (answer) this.pending.get(answer.requestId)?.push({ instance: answer.instance, sessions: answer.sessions, ended: answer.ended });
  }

  private answerLocally(q: Question): InstanceAnswer {
    const live = this.options.sessions.byDevice(q.deviceId);
    const instance = this.options.instanceName();
    if (q.op === 'end') {
      for (const s of live) s.revoke(this.endedDecision(s, q.deviceId));
      if (live.length > 0) this.options.log.info('live sessions ended from the console', { deviceId: q.deviceId, ended: live.length, by: q.by, instance });
    }
    return { instance, sessions: live.slice(0, MAX_SESSIONS_PER_ANSWER).map(view), ended: q.op === 'end' ? live.length : 0 };
  }

  /** What a session ended from the console is told (IMAP BYE text). */
  private endedDecision(s: LiveSession, deviceId: string): Decision {
    const { version, helpdesk } = this.options.policy();
    const refId = newRefId();
    return {
      action: 'deny',
      reasonCode: CoreReasonCodes.ENDED_BY_ADMIN,
      fault: 'policy',
      refId,
      message: `This mail session was ended by ${helpdesk}. Sign in again. Ref ${refId}.`,
      warnings: [],
      checks: [],
      user: s.user,
      deviceId,
      identitySource: 'none',
      identityStrength: 'weak',
      protocol: s.protocol,
      policyVersion: version,
      at: new Date().toISOString(),
    };
  }
}

function view(s: LiveSession): DirectorySession {
  return { id: s.id, protocol: s.protocol, user: s.user, ...(s.remoteAddress ? { remoteAddress: s.remoteAddress } : {}) };
}

const text = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= MAX_FIELD;

function readQuestion(b: Readonly<Record<string, unknown>>): Question | null {
  if ((b.op !== 'list' && b.op !== 'end') || !text(b.requestId) || !text(b.deviceId) || !text(b.from)) return null;
  return { op: b.op, requestId: b.requestId, deviceId: b.deviceId, by: typeof b.by === 'string' ? b.by.slice(0, MAX_FIELD) : '', from: b.from };
}

/** Another instance's answer, checked field by field: anything malformed is dropped, never shown half. */
function readAnswer(b: Readonly<Record<string, unknown>>): Answer | null {
  if (b.op !== 'answer' || !text(b.requestId) || !text(b.instance) || !Array.isArray(b.sessions)) return null;
  const ended = b.ended;
  if (typeof ended !== 'number' || !Number.isInteger(ended) || ended < 0) return null;
  const sessions: DirectorySession[] = [];
  for (const raw of b.sessions.slice(0, MAX_SESSIONS_PER_ANSWER) as unknown[]) {
    if (raw === null || typeof raw !== 'object') return null;
    const s = raw as Record<string, unknown>;
    if (!text(s.id) || !text(s.protocol) || typeof s.user !== 'string' || s.user.length > MAX_FIELD) return null;
    if (s.remoteAddress !== undefined && !text(s.remoteAddress)) return null;
    sessions.push({ id: s.id, protocol: s.protocol, user: s.user, ...(s.remoteAddress ? { remoteAddress: s.remoteAddress } : {}) });
  }
  return { op: 'answer', requestId: b.requestId, instance: b.instance, sessions, ended };
}
