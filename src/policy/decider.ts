// The Gate's decide(): loads the stored facts in one round trip, runs the engine, records grace
// marks, writes one audit event, feeds the brake. Never throws: an outage or a bug is a tempfail.
import { randomBytes } from 'node:crypto';
import type { Logger } from '../core/log';
import type { MailwardenConfig, PolicyConfig } from '../core/config-types';
import { StoreUnavailableError, type AuditLog, type DecisionFacts, type StoredFacts } from '../store/device-store';
import { CoreReasonCodes, type Decision, type DecisionRequest } from './decision';
import type { CompiledPolicy } from './compile';
import { evaluatePolicy, groupsOf, tempfailDecision, type SourceFreshness } from './engine';
import { errorText } from '../core/errors';
import { Brake } from './brake';

/** Crockford base32: no I, L, O, U, so a reference read over the phone is unambiguous. */
const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** CSPRNG bytes fetched 4 KiB at a time: one randomBytes() call per login cost more than the id itself. */
let randomPool = Buffer.alloc(0);
let randomAt = 0;

/** `MW-` + 8 Crockford base32 characters (40 random bits). */
export function newRefId(): string {
  if (randomAt + 5 > randomPool.length) {
    randomPool = randomBytes(4096);
    randomAt = 0;
  }
  // 40 bits fit a double exactly: no BigInt needed.
  let bits = 0;
  for (let i = 0; i < 5; i++) bits = bits * 256 + randomPool[randomAt++]!;
  let out = '';
  for (let i = 7; i >= 0; i--) out += CROCKFORD[Math.floor(bits / 2 ** (i * 5)) % 32];
  return `MW-${out}`;
}

export interface DeciderOptions {
  readonly store: DecisionFacts & AuditLog;
  readonly log: Logger;
  readonly getPolicy: () => CompiledPolicy;
  readonly getConfig: () => MailwardenConfig;
  /** src/admin/metrics.ts satisfies this (time in seconds, the Prometheus unit). */
  readonly metrics?: { onDecision(decision: Decision, seconds: number): void; onBrakeTrip?(): void };
  readonly alert?: (kind: 'brake-tripped', details: Readonly<Record<string, unknown>>) => unknown;
  readonly now?: () => Date;
  /** Defaults to a brake of this decider's own. */
  readonly brake?: Brake;
  /** How current connector-written records are (src/app/connectors.ts); absent = by reportedAt. */
  readonly sourceFreshness?: (source: string) => SourceFreshness | undefined;
}

const NO_FACTS: StoredFacts = { device: null, exemptions: [], firstSeen: {}, killSwitch: false };

export class Decider {
  readonly brake: Brake;
  private readonly now: () => Date;
  /** Background writes (grace marks, audit stream); `idle()` waits for them. */
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly options: DeciderOptions) {
    this.now = options.now ?? (() => new Date());
    this.brake =
      options.brake ??
      new Brake({ log: options.log, alert: options.alert, onTrip: () => options.metrics?.onBrakeTrip?.() });
  }

  /** The runtime calls this after a reload swapped the policy (arms the brake; `recent`: see Brake.policyChanged). */
  policyChanged(previous: CompiledPolicy | null, next: CompiledPolicy, recent: readonly PolicyConfig[] = []): void {
    this.brake.policyChanged(previous, next, this.now(), recent);
  }

  async decide(request: DecisionRequest): Promise<Decision> {
    const started = performance.now();
    const { decision, policy, now, fromLastKnown, firstSeen } = await this.evaluate(request);
    if (firstSeen) this.applyFirstSeen(request.deviceId, firstSeen.mark, firstSeen.clear, now);
    this.finish(decision, request, policy, now, fromLastKnown, (performance.now() - started) / 1000);
    return decision;
  }

  /**
   * The decision a login would get now, without any effect: no audit event, no grace mark, not
   * counted by the brake or the metrics ("why is device X blocked?"). Never throws.
   */
  async dryRun(request: DecisionRequest): Promise<Decision> {
    return (await this.evaluate(request)).decision;
  }

  private async evaluate(request: DecisionRequest): Promise<{
    decision: Decision;
    policy: CompiledPolicy | null;
    now: Date;
    fromLastKnown: boolean;
    firstSeen?: { mark: string[]; clear: string[] };
  }> {
    const refId = newRefId();
    let now = new Date();
    let policy: CompiledPolicy | null = null;
    try {
      now = this.now();
      policy = this.options.getPolicy();
      const loaded = await this.loadFacts(request, policy, refId, now);
      if ('decision' in loaded) return { decision: loaded.decision, policy, now, fromLastKnown: false };
      const config = this.options.getConfig();
      const result = await evaluatePolicy(policy, request, loaded.facts, {
        now,
        refId,
        maxReportAgeHours: config.store.maxReportAgeHours,
        groups: groupsOf(config.groups, request.user),
        brakeReportOnly: this.brake.reportOnly(),
        sourceFreshness: this.options.sourceFreshness,
        myUrl: myUrlOf(config),
      });
      return {
        decision: result.decision,
        policy,
        now,
        fromLastKnown: loaded.facts.fromLastKnown === true,
        firstSeen: { mark: result.firstSeenToMark, clear: result.firstSeenToClear },
      };
    } catch (err) {
      this.safeLog('decision failed: internal error, answering tempfail', err, { refId, user: request.user });
      return { decision: tempfailDecision(policy, request, refId, now, CoreReasonCodes.INTERNAL_ERROR), policy, now, fromLastKnown: false };
    }
  }

  /** Resolves when every background write started so far has finished (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  private async loadFacts(
    request: DecisionRequest,
    policy: CompiledPolicy,
    refId: string,
    now: Date,
  ): Promise<{ facts: StoredFacts } | { decision: Decision }> {
    // A login without a device id that the policy refuses needs nothing from the store (and is
    // answered the same during an outage).
    const unidentified = request.deviceId === null || request.identitySource === 'none';
    if (unidentified && policy.config.unidentified.action !== 'allow') return { facts: NO_FACTS };
    const graceChecks = policy.checks.filter((c) => c.config.graceHours > 0 && c.config.mode !== 'off').map((c) => c.id);
    try {
      return { facts: await this.options.store.loadFacts(request.deviceId, request.user, graceChecks) };
    } catch (err) {
      const unavailable = err instanceof StoreUnavailableError || (err as { code?: unknown } | null)?.code === 'STORE_UNAVAILABLE';
      const code = unavailable ? CoreReasonCodes.STORE_UNAVAILABLE : CoreReasonCodes.INTERNAL_ERROR;
      this.options.log[unavailable ? 'warn' : 'error']('device store cannot answer: tempfail', { refId, user: request.user, error: errorText(err) });
      return { decision: tempfailDecision(policy, request, refId, now, code) };
    }
  }

  private applyFirstSeen(deviceId: string | null, mark: readonly string[], clear: readonly string[], now: Date): void {
    if (deviceId === null) return;
    const { store } = this.options;
    for (const checkId of mark) this.background('first-seen mark', () => store.markFirstSeenNoncompliant(deviceId, checkId, now.getTime()));
    for (const checkId of clear) this.background('first-seen clear', () => store.clearFirstSeenNoncompliant(deviceId, checkId));
  }

  /** Audit line + audit stream, brake, metrics. Each step is guarded: none may change the decision. */
  private finish(decision: Decision, request: DecisionRequest, policy: CompiledPolicy | null, now: Date, fromLastKnown: boolean, seconds: number): void {
    const event = {
      msg: 'decision',
      user: decision.user,
      deviceId: decision.deviceId,
      identitySource: decision.identitySource,
      identityStrength: decision.identityStrength,
      protocol: decision.protocol,
      checks: decision.checks,
      action: decision.action,
      reasonCode: decision.reasonCode,
      ...(decision.decidedBy ? { decidedBy: decision.decidedBy } : {}),
      refId: decision.refId,
      policyVersion: decision.policyVersion,
      trigger: request.trigger ?? 'login',
      ...(request.frontEnd ? { frontEnd: request.frontEnd } : {}),
      ...(request.sessionId ? { sessionId: request.sessionId } : {}),
      ...(request.remoteAddress ? { remoteAddress: request.remoteAddress } : {}),
      ...(decision.warnings.length > 0 ? { warnings: decision.warnings } : {}),
      fromLastKnown,
      at: decision.at,
    };
    // winston formats (redacts, stringifies) an entry before its transports drop it by level.
    this.guard('audit log', () => {
      if (this.options.log.isInfoEnabled()) this.options.log.info('decision', event);
    });
    this.background('audit stream', () => this.options.store.appendAudit(event));
    if (policy) this.guard('brake', () => this.brake.record(decision, policy, now));
    this.guard('metrics', () => this.options.metrics?.onDecision(decision, seconds));
  }

  private guard(what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.safeLog(`${what} failed`, err);
    }
  }

  private background(what: string, fn: () => Promise<unknown>): void {
    const task = (async () => {
      try {
        await fn();
      } catch (err) {
        this.safeLog(`${what} failed (the decision stands)`, err);
      }
    })();
    this.pending.add(task);
    void task.finally(() => this.pending.delete(task));
  }

  private safeLog(message: string, err: unknown, context: Record<string, unknown> = {}): void {
    try {
      this.options.log.error(message, { ...context, error: errorText(err) });
    } catch {
      // The logger itself is broken: nothing left to tell.
    }
  }
}

/** `{myUrl}` for sentences: where the blocked person signs in to see why (empty when not configured). */
export function myUrlOf(config: MailwardenConfig): string | undefined {
  const base = config.admin?.console.enabled && config.admin.console.selfService ? config.admin.console.publicUrl : undefined;
  return base ? `${base.replace(/\/$/, '')}/my/` : undefined;
}
