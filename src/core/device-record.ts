// A device report and the stored record: the one shape posture sources, connectors, the store and
// the policy share (the Redis layout that keeps it is docs/redis-layout.md).

/** A device report as a posture source sends it (the payload of the signed JWS). */
export interface DeviceReport {
  readonly deviceId: string;
  readonly user: string;
  /** Lower-case platform id: ios, ipados, android, macos, windows, linux, ... */
  readonly platform: string;
  readonly osVersion: string;
  readonly managed: boolean;
  /** Installed app ids (bundle ids / package names). Absent = inventory not visible to the reporter. */
  readonly apps?: readonly string[];
  /** Display names of the installed apps as the MDM shows them (Intune gives only these); absent when `apps` is. */
  readonly appNames?: readonly string[];
  /** Ownership as the MDM reports it (connectors); absent from reports that do not say. */
  readonly ownership?: 'company' | 'personal' | 'unknown';
  /** ISO-8601 time the device state was observed. */
  readonly reportedAt: string;
  /** Who sent it: the reporter key id, or "cli". */
  readonly source: string;
}

/** A stored device record: the report plus what the store added. */
export interface DeviceRecord extends DeviceReport {
  /** ISO-8601 time the store accepted the report. */
  readonly receivedAt: string;
}

/**
 * The outcome of one device lookup. `malformed` means something is stored under the key that does
 * not parse as a record: it counts as unknown, never as compliant.
 */
export type DeviceLookup =
  | { readonly state: 'found'; readonly record: DeviceRecord }
  | { readonly state: 'missing' }
  | { readonly state: 'malformed'; readonly detail: string };
