// What the console needs from the rest of mailwarden, as one small port: the admin server's
// composition wires it (src/admin), tests wire fakes. The console itself imports no store adapter,
// policy engine or protocol code.
import type { ConsoleConfig } from '../core/config-types';
import type { Logger } from '../core/log';
import type { Principal, Role } from '../admin/roles';
import type { Decision } from '../policy/decision';
import type { SimulationResult } from '../policy/simulate';
import type { AuditEntry, DeviceLookup, Exemption } from '../store/device-store';

export interface LiveSessionView {
  readonly instance: string;
  readonly id: string;
  readonly protocol: string;
  readonly user: string;
  readonly remoteAddress?: string;
}

/** The live sessions of a device on every instance that answered the console's question in time. */
export interface LiveSessionsView {
  readonly sessions: readonly LiveSessionView[];
  /** Instance names that answered (each once, sorted). */
  readonly answered: readonly string[];
  /** False when the other instances could not be asked (store unreachable): only this one's are shown. */
  readonly reachedOthers: boolean;
  readonly windowMs: number;
}

/** What "end sessions" did: per answering instance, how many sessions it ended. */
export interface EndedSessionsView {
  readonly byInstance: readonly { readonly instance: string; readonly ended: number }[];
  readonly total: number;
  readonly reachedOthers: boolean;
  readonly windowMs: number;
}

export interface PolicyView {
  readonly version: string;
  readonly file: string;
  readonly reportOnly: boolean;
  readonly helpdesk: string;
  readonly checks: readonly { id: string; plugin: string; mode: string; action: string; platforms?: readonly string[]; graceHours: number }[];
  /** Check ids the runtime brake has put in report mode. */
  readonly brakeReportOnly: readonly string[];
}

export interface SourceView {
  readonly source: string;
  readonly devices: number;
  /** ISO time of the newest record it delivered. */
  readonly lastDelivery: string;
}

/** An inventory connector as a source: when it last completed a sync (it rewrites only changed records). */
export interface ConnectorSourceView {
  readonly name: string;
  readonly type: string;
  readonly enabled: boolean;
  /** ISO time of the last sync that completed. */
  readonly lastSuccessAt?: string;
  readonly lastAttemptAt?: string;
  readonly result?: string;
  readonly stale: boolean;
  readonly held: boolean;
}

export type Simulation = SimulationResult & { readonly blastRadius?: { ok: boolean; message?: string } };

/** Thrown by `simulate` for a candidate that does not validate; `issues` are `file:line: key: message` lines. */
export class CandidateInvalidError extends Error {
  constructor(readonly issues: readonly string[]) {
    super(issues.join('\n'));
    this.name = 'CandidateInvalidError';
  }
}

export interface ConsoleServices {
  readonly log: Logger;
  /** Read per request so a reload takes effect at once. */
  config(): ConsoleConfig;
  instanceName(): string;
  /** The principal a bearer token belongs to, or null. */
  principalFor(token: string): Principal | null;
  /** Whether a token of this name and role is still configured (sessions end when it is removed). */
  tokenExists(name: string, role: Role): boolean;

  getDevice(deviceId: string): Promise<DeviceLookup>;
  listUserDevices(user: string): Promise<string[]>;
  getExemptions(deviceId: string, user: string): Promise<Exemption[]>;
  putExemption(exemption: Exemption): Promise<void>;
  /** Oldest first. */
  readAudit(afterId: string, count: number): Promise<AuditEntry[]>;
  /** The newest `count` entries, oldest first. */
  readAuditLast(count: number): Promise<AuditEntry[]>;
  /** Appends an admin event to the audit stream (console actions, with who). */
  audit(operation: string, by: Principal, fields: Record<string, unknown>): Promise<void>;

  /** The decision this device would get now (a dry run: no audit, no grace marks). */
  decideForDevice(deviceId: string, user: string): Promise<Decision>;
  /** Asks every instance (bounded wait); never throws for instances that do not answer. */
  liveSessions(deviceId: string): Promise<LiveSessionsView>;
  /** Every instance that hears the request ends the device's sessions; `by` is who asked. */
  endSessions(deviceId: string, by: Principal): Promise<EndedSessionsView>;
  /** Publishes a device change so every instance re-evaluates the device's live sessions. */
  reevaluate(deviceId: string, user: string): Promise<void>;

  policy(): PolicyView;
  killSwitch(): Promise<boolean>;
  /** `by` is recorded with the switch (shown by `mailwarden kill-switch status`). */
  setKillSwitch(on: boolean, by: string): Promise<void>;
  /** Throws CandidateInvalidError for a candidate that does not validate. */
  simulate(candidateYaml: string): Promise<Simulation>;
  sources(): Promise<SourceView[]>;
  /** The configured inventory connectors and their last syncs (none configured: empty). */
  connectors(): Promise<ConnectorSourceView[]>;

  /**
   * Checks a person's own mail credentials against the upstream, as a login would: 'ok' with the
   * user name as the upstream knows it, 'bad' for wrong credentials, 'unavailable' when it cannot tell.
   * Throttled like a login (failures counted for the user and `remoteAddress`, later tries delayed).
   */
  checkMailLogin(user: string, password: string, remoteAddress?: string): Promise<{ result: 'ok'; user: string } | { result: 'bad' | 'unavailable' }>;
}
