// The device store port: what mailwarden keeps about devices, and the one interface every adapter
// (in-memory, Redis) implements. The Redis layout behind it is a public interface: docs/redis-layout.md.

import type { DeviceLookup, DeviceRecord } from '../core/device-record';
import type { FailureCounters } from './failure-counters';

export type { DeviceLookup, DeviceRecord, DeviceReport } from '../core/device-record';

export type ExemptionScope = 'device' | 'user';

export interface Exemption {
  readonly scope: ExemptionScope;
  /** Device id or user name. */
  readonly subject: string;
  /** ISO-8601; the exemption ends at this instant. */
  readonly expiresAt: string;
  readonly note: string;
  readonly createdBy: string;
  readonly createdAt: string;
  /** Check ids it applies to; absent = every check. */
  readonly checks?: readonly string[];
}

/** A device-bound app password: only the hash is stored (see src/identity/app-password.ts). */
export interface AppPasswordCredential {
  /** Public lookup id, the part of the password before the dot. */
  readonly credentialId: string;
  readonly user: string;
  readonly deviceId: string;
  /** Hex HMAC-SHA-256 of the secret part. */
  readonly hash: string;
  readonly createdAt: string;
}

/** Published on the change channel; every instance re-evaluates the live sessions concerned. */
export type ChangeEvent =
  | { readonly kind: 'device'; readonly deviceId: string; readonly user?: string }
  | { readonly kind: 'exemption'; readonly scope: ExemptionScope; readonly subject: string }
  | { readonly kind: 'policy'; readonly version: string }
  /** The kill switch: every check in `report` on every instance. */
  | { readonly kind: 'kill-switch'; readonly on: boolean }
  /**
   * The console's on-demand session directory (src/app/session-directory.ts): a question to every
   * instance about its live sessions, or one instance's answer. The store checks only that `body` is
   * an object; nothing is re-evaluated or invalidated for it.
   */
  | { readonly kind: 'sessions'; readonly body: Readonly<Record<string, unknown>> };

export interface AuditEntry {
  /** Stream id assigned by the store (Redis stream id, or a counter in memory). */
  readonly id: string;
  readonly event: Readonly<Record<string, unknown>>;
}

/** Thrown by adapters when the backing store cannot answer (down, timed out, not ready). */
export class StoreUnavailableError extends Error {
  readonly code = 'STORE_UNAVAILABLE';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreUnavailableError';
  }
}

/** Everything one decision needs from the store, fetched in one round trip. */
export interface StoredFacts {
  /** null when the login carries no device id. */
  readonly device: DeviceLookup | null;
  /** Exemptions for the device and for the user that have not expired. */
  readonly exemptions: readonly Exemption[];
  /** checkId → first-seen-non-compliant time (ms epoch), for the check ids asked for. */
  readonly firstSeen: Readonly<Record<string, number>>;
  /** The kill-switch flag (every check in report on every instance). */
  readonly killSwitch: boolean;
  /**
   * Added by CachedDeviceStore (additive): set when the store could not answer and these facts are
   * the last-known ones (younger than store.outageLastKnownMaxSeconds); absent on a live answer.
   */
  readonly fromLastKnown?: true;
}

/** The flag (getFlag/setFlag) holding the kill switch; "1", "true" or "on" mean on. */
export const KILL_SWITCH_FLAG = 'kill-switch';

/**
 * The store's ports, one per kind of thing kept; each consumer depends only on the ones it uses
 * (the decider: DecisionFacts and AuditLog; the revoker: ChangeFeed; app passwords: AppPasswords; …).
 * Every adapter (memory, Redis, the cache in front of either) implements them all: DeviceStore.
 */

/** What one decision reads, and the grace-period marks it writes. */
export interface DecisionFacts {
  /** The facts for one decision in one round trip (Redis: one pipeline). */
  loadFacts(deviceId: string | null, user: string, checkIds: readonly string[]): Promise<StoredFacts>;
  /** First time check `checkId` saw this device non-compliant (ms epoch), or null. */
  getFirstSeenNoncompliant(deviceId: string, checkId: string): Promise<number | null>;
  /** Set only if not already set (SET NX); returns the value now stored. */
  markFirstSeenNoncompliant(deviceId: string, checkId: string, atMs: number): Promise<number>;
  clearFirstSeenNoncompliant(deviceId: string, checkId: string): Promise<void>;
}

/** Device records as reports and connectors write them. */
export interface DeviceRecords {
  getDevice(deviceId: string): Promise<DeviceLookup>;
  /** Many at once (one round trip for Redis); same order as the ids. */
  getDevices(deviceIds: readonly string[]): Promise<DeviceLookup[]>;
  /**
   * Store a report atomically: record with TTL, per-user index, and a change event. A report older
   * than the one stored (by reportedAt) is ignored and `false` returned.
   */
  putDevice(record: DeviceRecord, ttlSeconds: number): Promise<boolean>;
  deleteDevice(deviceId: string): Promise<void>;
  /** Device ids reported for a user (index entries whose record expired are pruned). */
  listUserDevices(user: string): Promise<string[]>;
  /** Every stored device record (for simulate and the blast-radius guard). */
  listDevices(): Promise<DeviceRecord[]>;
}

export interface Exemptions {
  getExemptions(deviceId: string, user: string): Promise<Exemption[]>;
  putExemption(exemption: Exemption): Promise<void>;
  removeExemption(scope: ExemptionScope, subject: string): Promise<void>;
  listExemptions(): Promise<Exemption[]>;
}

export interface AppPasswords {
  putAppPassword(credential: AppPasswordCredential): Promise<void>;
  getAppPassword(credentialId: string): Promise<AppPasswordCredential | null>;
  removeAppPasswords(deviceId: string): Promise<number>;
}

export interface AuditLog {
  /** Append to the capped audit stream. */
  appendAudit(event: Record<string, unknown>): Promise<string>;
  /** Entries after `afterId` (exclusive; '0' = from the start), oldest first, at most `count`. */
  readAudit(afterId: string, count: number): Promise<AuditEntry[]>;
  /** Optional: the newest `count` entries, oldest first (Redis: XREVRANGE); else page through readAudit. */
  readAuditLast?(count: number): Promise<AuditEntry[]>;
}

export interface ChangeFeed {
  publish(event: ChangeEvent): Promise<void>;
  /** Subscribe to the change channel; returns an unsubscribe function. */
  subscribe(listener: (event: ChangeEvent) => void): Promise<() => Promise<void>>;
  /**
   * Called after the change channel was (re)connected: events may have been lost meanwhile, so
   * callers revalidate everything. Returns an unsubscribe function.
   */
  onReconnect(listener: () => void): () => void;
}

/** Shared flags (the kill switch lives here so every instance sees it). */
export interface Flags {
  getFlag(name: string): Promise<string | null>;
  setFlag(name: string, value: string | null): Promise<void>;
}

export interface Health {
  readonly kind: 'memory' | 'redis';
  /** Throws StoreUnavailableError when the store cannot answer. */
  ping(): Promise<void>;
  /**
   * Optional: false while the adapter knows it cannot reach its backend (connection lost). Lets the
   * cache stop serving entries older than the outage bound at once, before a lookup has failed.
   */
  isConnected?(): boolean;
  close(): Promise<void>;
}

/** Failed-login counters for the login throttle, kept where the store keeps its data (shared by instances on Redis). */
export interface LoginFailures {
  /** Counters whose failures count for `windowSeconds`; build once per process. */
  loginFailureCounters(windowSeconds: number): FailureCounters;
}

/** Every port: what each adapter implements. */
export interface DeviceStore extends DecisionFacts, DeviceRecords, Exemptions, AppPasswords, AuditLog, ChangeFeed, Flags, Health, LoginFailures {}
