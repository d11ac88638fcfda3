// The embedded device store: everything in this process's memory (one instance, lost on restart).
// Same semantics as the Redis adapter (TTLs, expiry, first-seen NX, capped audit, change events).
import { EventEmitter } from 'node:events';
import {
  type AppPasswordCredential,
  type AuditEntry,
  type ChangeEvent,
  type DeviceLookup,
  type DeviceRecord,
  type DeviceStore,
  type Exemption,
  type ExemptionScope,
  type StoredFacts,
  KILL_SWITCH_FLAG,
} from './device-store';
import type { Logger } from '../core/log';
import {
  checkCredential,
  checkDeviceRecord,
  checkExemption,
  flagChangeEvent,
  guardListener,
  isoToMs,
  killSwitchOn,
  reportOrderMs,
  storedOrderMs,
  ttlToMs,
} from './record-codec';
import { createFailureCounters, type FailureCounters } from './failure-counters';

export interface MemoryStoreOptions {
  /** Audit entries kept (oldest dropped first). */
  readonly auditMaxLen?: number;
  /** Lifetime of first-seen times of a device that has no record (with a record they follow its TTL). */
  readonly firstSeenTtlSeconds?: number;
  /** Clock (ms epoch); tests inject one to expire records without waiting. */
  readonly now?: () => number;
  /** Where a change listener that throws is reported. */
  readonly log?: Logger;
}

interface Expiring<T> {
  readonly value: T;
  readonly expiresAtMs: number;
}

interface FirstSeen {
  readonly byCheck: Map<string, number>;
  expiresAtMs: number;
}

const CHANGES = 'change';

export class MemoryDeviceStore implements DeviceStore {
  readonly kind = 'memory' as const;
  private readonly now: () => number;
  private readonly auditMaxLen: number;
  private readonly firstSeenTtlMs: number;
  private readonly devices = new Map<string, Expiring<DeviceRecord>>();
  private readonly userIndex = new Map<string, Set<string>>();
  private readonly exemptions = new Map<string, Exemption>();
  private readonly firstSeen = new Map<string, FirstSeen>();
  private readonly credentials = new Map<string, AppPasswordCredential>();
  private readonly flags = new Map<string, string>();
  private readonly audit: AuditEntry[] = [];
  private auditSeq = 0;
  private readonly changes = new EventEmitter();
  private readonly log: Logger | undefined;

  constructor(options: MemoryStoreOptions = {}) {
    this.now = options.now ?? Date.now;
    this.auditMaxLen = options.auditMaxLen ?? 100000;
    this.firstSeenTtlMs = (options.firstSeenTtlSeconds ?? 30 * 86400) * 1000;
    this.log = options.log;
    this.changes.setMaxListeners(0);
  }

  async loadFacts(deviceId: string | null, user: string, checkIds: readonly string[]): Promise<StoredFacts> {
    const firstSeen: Record<string, number> = {};
    const seen = deviceId === null ? undefined : this.liveFirstSeen(deviceId);
    for (const checkId of checkIds) {
      const at = seen?.byCheck.get(checkId);
      if (at !== undefined) firstSeen[checkId] = at;
    }
    return {
      device: deviceId === null ? null : this.lookup(deviceId),
      exemptions: await this.getExemptions(deviceId, user),
      firstSeen,
      killSwitch: killSwitchOn(this.flags.get(KILL_SWITCH_FLAG) ?? null),
    };
  }

  async getDevice(deviceId: string): Promise<DeviceLookup> {
    return this.lookup(deviceId);
  }

  async getDevices(deviceIds: readonly string[]): Promise<DeviceLookup[]> {
    return deviceIds.map((id) => this.lookup(id));
  }

  async putDevice(record: DeviceRecord, ttlSeconds: number): Promise<boolean> {
    const clean = checkDeviceRecord(record);
    const ttlMs = ttlToMs(ttlSeconds);
    const stored = this.live(clean.deviceId);
    if (stored && (storedOrderMs(stored, this.now()) ?? -Infinity) > reportOrderMs(clean)) return false;
    if (stored && stored.user !== clean.user) this.userIndex.get(stored.user)?.delete(clean.deviceId);
    const expiresAtMs = this.now() + ttlMs;
    this.devices.set(clean.deviceId, { value: clean, expiresAtMs });
    const seen = this.firstSeen.get(clean.deviceId);
    if (seen) seen.expiresAtMs = expiresAtMs;
    let index = this.userIndex.get(clean.user);
    if (!index) this.userIndex.set(clean.user, (index = new Set()));
    index.add(clean.deviceId);
    this.emit({ kind: 'device', deviceId: clean.deviceId, user: clean.user });
    return true;
  }

  async deleteDevice(deviceId: string): Promise<void> {
    const stored = this.live(deviceId);
    this.devices.delete(deviceId);
    this.firstSeen.delete(deviceId);
    if (stored) this.userIndex.get(stored.user)?.delete(deviceId);
    this.emit(stored ? { kind: 'device', deviceId, user: stored.user } : { kind: 'device', deviceId });
  }

  async listUserDevices(user: string): Promise<string[]> {
    const index = this.userIndex.get(user);
    if (!index) return [];
    for (const deviceId of index) {
      if (this.live(deviceId)?.user !== user) index.delete(deviceId);
    }
    if (index.size === 0) this.userIndex.delete(user);
    return [...index].sort();
  }

  async listDevices(): Promise<DeviceRecord[]> {
    const out: DeviceRecord[] = [];
    for (const deviceId of [...this.devices.keys()]) {
      const record = this.live(deviceId);
      if (record) out.push(record);
    }
    return out;
  }

  async getExemptions(deviceId: string | null, user: string): Promise<Exemption[]> {
    const keys = [...(deviceId === null ? [] : [exemptionKey('device', deviceId)]), exemptionKey('user', user)];
    return keys.map((key) => this.liveExemption(key)).filter((e): e is Exemption => e !== undefined);
  }

  async putExemption(exemption: Exemption): Promise<void> {
    const clean = checkExemption(exemption, this.now());
    this.exemptions.set(exemptionKey(clean.scope, clean.subject), clean);
    this.emit({ kind: 'exemption', scope: clean.scope, subject: clean.subject });
  }

  async removeExemption(scope: ExemptionScope, subject: string): Promise<void> {
    this.exemptions.delete(exemptionKey(scope, subject));
    this.emit({ kind: 'exemption', scope, subject });
  }

  async listExemptions(): Promise<Exemption[]> {
    return [...this.exemptions.keys()].map((key) => this.liveExemption(key)).filter((e): e is Exemption => e !== undefined);
  }

  async getFirstSeenNoncompliant(deviceId: string, checkId: string): Promise<number | null> {
    return this.liveFirstSeen(deviceId)?.byCheck.get(checkId) ?? null;
  }

  async markFirstSeenNoncompliant(deviceId: string, checkId: string, atMs: number): Promise<number> {
    let seen = this.liveFirstSeen(deviceId);
    if (!seen) {
      const record = this.devices.get(deviceId);
      const expiresAtMs = record && record.expiresAtMs > this.now() ? record.expiresAtMs : this.now() + this.firstSeenTtlMs;
      seen = { byCheck: new Map(), expiresAtMs };
      this.firstSeen.set(deviceId, seen);
    }
    const existing = seen.byCheck.get(checkId);
    if (existing !== undefined) return existing;
    seen.byCheck.set(checkId, atMs);
    return atMs;
  }

  async clearFirstSeenNoncompliant(deviceId: string, checkId: string): Promise<void> {
    this.firstSeen.get(deviceId)?.byCheck.delete(checkId);
  }

  async putAppPassword(credential: AppPasswordCredential): Promise<void> {
    const clean = checkCredential(credential);
    this.credentials.set(clean.credentialId, clean);
  }

  async getAppPassword(credentialId: string): Promise<AppPasswordCredential | null> {
    return this.credentials.get(credentialId) ?? null;
  }

  async removeAppPasswords(deviceId: string): Promise<number> {
    let removed = 0;
    for (const [id, credential] of this.credentials) {
      if (credential.deviceId === deviceId) {
        this.credentials.delete(id);
        removed += 1;
      }
    }
    return removed;
  }

  async appendAudit(event: Record<string, unknown>): Promise<string> {
    this.auditSeq += 1;
    const id = String(this.auditSeq);
    // A JSON round trip: the caller's object may change later; the stored entry must not.
    this.audit.push({ id, event: JSON.parse(JSON.stringify(event)) as Record<string, unknown> });
    if (this.audit.length > this.auditMaxLen) this.audit.splice(0, this.audit.length - this.auditMaxLen);
    return id;
  }

  async readAudit(afterId: string, count: number): Promise<AuditEntry[]> {
    const after = Number(afterId);
    if (!Number.isSafeInteger(after) || after < 0) throw new RangeError(`audit id: expected a number, got "${afterId}"`);
    return this.audit.filter((entry) => Number(entry.id) > after).slice(0, Math.max(0, count));
  }

  async readAuditLast(count: number): Promise<AuditEntry[]> {
    return count <= 0 ? [] : this.audit.slice(-count);
  }

  async publish(event: ChangeEvent): Promise<void> {
    this.emit(event);
  }

  async subscribe(listener: (event: ChangeEvent) => void): Promise<() => Promise<void>> {
    const guarded = guardListener(listener, this.log);
    this.changes.on(CHANGES, guarded);
    return async () => {
      this.changes.off(CHANGES, guarded);
    };
  }

  /** The embedded store never disconnects, so this never fires. */
  onReconnect(_listener: () => void): () => void {
    return () => undefined;
  }

  async getFlag(name: string): Promise<string | null> {
    return this.flags.get(name) ?? null;
  }

  async setFlag(name: string, value: string | null): Promise<void> {
    if (value === null) this.flags.delete(name);
    else this.flags.set(name, value);
    const event = flagChangeEvent(name, value);
    if (event) this.emit(event);
  }

  async ping(): Promise<void> {}

  loginFailureCounters(windowSeconds: number): FailureCounters {
    return createFailureCounters({ windowSeconds });
  }

  async close(): Promise<void> {
    this.changes.removeAllListeners();
  }

  /** The stored record if it has not expired (an expired one is dropped on the way). */
  private live(deviceId: string): DeviceRecord | undefined {
    const entry = this.devices.get(deviceId);
    if (entry && entry.expiresAtMs <= this.now()) {
      this.devices.delete(deviceId);
      return undefined;
    }
    return entry?.value;
  }

  private lookup(deviceId: string): DeviceLookup {
    const record = this.live(deviceId);
    return record ? { state: 'found', record } : { state: 'missing' };
  }

  private liveExemption(key: string): Exemption | undefined {
    const exemption = this.exemptions.get(key);
    if (exemption && (isoToMs(exemption.expiresAt) ?? 0) <= this.now()) {
      this.exemptions.delete(key);
      return undefined;
    }
    return exemption;
  }

  private liveFirstSeen(deviceId: string): FirstSeen | undefined {
    const seen = this.firstSeen.get(deviceId);
    if (seen && seen.expiresAtMs <= this.now()) {
      this.firstSeen.delete(deviceId);
      return undefined;
    }
    return seen;
  }

  /** Delivered after the current call returns, like a Redis message (listeners never run inside a write). */
  private emit(event: ChangeEvent): void {
    setImmediate(() => this.changes.emit(CHANGES, event));
  }
}

function exemptionKey(scope: ExemptionScope, subject: string): string {
  return `${scope}\u0000${subject}`;
}
