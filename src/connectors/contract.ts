// The connector contract: a connector lists the devices its MDM knows and maps each one to a
// normalised device with what the source could see. It fetches and maps; it never writes.

/** Ownership as the MDM reports it; `unknown` when the source does not say. */
export type Ownership = 'company' | 'personal' | 'unknown';

/** One device as a connector maps it, before the sync engine turns it into a stored record. */
export interface SourceDevice {
  /** The id the device presents at login (the configured `deviceId` field of the source). */
  readonly deviceId: string;
  readonly user: string;
  /** Lower-case: ios, ipados, android, macos, windows, linux, ... */
  readonly platform: string;
  readonly osVersion: string;
  readonly managed: boolean;
  readonly ownership: Ownership;
  /**
   * Installed app ids (bundle ids, package names), lower-cased, sorted. Absent = the source cannot
   * see this device's app inventory (Intune personal devices, Google iOS): never "no apps".
   */
  readonly apps?: readonly string[];
  /** Display names of the installed apps, sorted; absent exactly when `apps` is. */
  readonly appNames?: readonly string[];
  /** When the MDM last heard from the device (ISO-8601), when it says. */
  readonly lastSeenAt?: string;
}

/** An item the source returned that could not be mapped; its device counts as unknown. */
export interface SkippedItem {
  /** The source's own id of the item, when it has one. */
  readonly sourceId?: string;
  /** The login device id, when the item had a usable one (its stored record is then withdrawn). */
  readonly deviceId?: string;
  readonly platform?: string;
  readonly reason: string;
}

/** A complete listing: every page read to the end. A connector throws rather than return a partial one. */
export interface Inventory {
  readonly devices: readonly SourceDevice[];
  readonly skipped: readonly SkippedItem[];
}

/** Counters a connector reports while it fetches (metrics: API errors by status, throttling waits). */
export interface FetchObserver {
  onApiError(status: number | 'network' | 'timeout'): void;
  onThrottleWait(seconds: number): void;
}

export interface ListContext {
  /** Aborted when the per-sync timeout passes or the process stops. */
  readonly signal: AbortSignal;
  readonly observer?: FetchObserver;
}

export interface Connector {
  /** The configured name (`connectors[].name`). */
  readonly name: string;
  readonly type: ConnectorType;
  listDevices(context: ListContext): Promise<Inventory>;
}

export type ConnectorType = 'intune' | 'jamf' | 'google' | 'fleet';

/** A sync that could not read the whole inventory: nothing is written. */
export class SourceError extends Error {
  readonly code = 'SOURCE_ERROR';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SourceError';
  }
}
