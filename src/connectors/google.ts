// Google Workspace through the Admin SDK Directory API: customer/{id}/devices/mobile with
// projection=FULL, paged by nextPageToken. Google lists installed apps for Android only
// ("not applicable to Google Sync and iOS devices"), so iOS devices get no inventory (unknown).
import type { Connector, Inventory } from './contract';
import { SourceError } from './contract';
import type { HttpClient, TokenSource } from './http';
import { finishDevice, InventoryBuilder, isObject, platformFromOsName, str } from './mapping';

export interface GoogleOptions {
  readonly name: string;
  readonly http: HttpClient;
  readonly token: TokenSource;
  /** Default https://admin.googleapis.com/admin/directory/v1 */
  readonly directoryUrl: string;
  /** Default my_customer (the customer of the admin the service account acts for). */
  readonly customerId: string;
  /** mdm = resourceId, udid = deviceId (Google's per-device id), serial = serialNumber. */
  readonly deviceId: 'mdm' | 'udid' | 'serial';
}

/** Scope for reading mobile devices (Directory API discovery document). */
export const GOOGLE_MOBILE_SCOPE = 'https://www.googleapis.com/auth/admin.directory.device.mobile.readonly';

/** 403 with these reasons is Google's throttling, retried like a 429. */
export function googleThrottled(status: number, body: string): boolean {
  return status === 403 && /"(rateLimitExceeded|userRateLimitExceeded|quotaExceeded)"/.test(body);
}

export function googleConnector(options: GoogleOptions): Connector {
  const base = `${options.directoryUrl.replace(/\/+$/, '')}/customer/${encodeURIComponent(options.customerId)}/devices/mobile`;
  return {
    name: options.name,
    type: 'google',
    async listDevices(context): Promise<Inventory> {
      const builder = new InventoryBuilder();
      let pageToken: string | undefined;
      do {
        const url = `${base}?projection=FULL&maxResults=100${pageToken ? `&pageToken=${encodeURIComponent(pageToken)}` : ''}`;
        const body = await options.http.json(url, { auth: options.token, signal: context.signal });
        if (!isObject(body)) throw new SourceError(`${options.name}: a mobiledevices page is not an object`);
        // An empty directory answers without the list at all.
        const items = body.mobiledevices ?? [];
        if (!Array.isArray(items)) throw new SourceError(`${options.name}: "mobiledevices" is not a list`);
        for (const item of items) builder.add(mapDevice(item, options.deviceId));
        const next = body.nextPageToken;
        if (next !== undefined && typeof next !== 'string') throw new SourceError(`${options.name}: nextPageToken is not a string`);
        pageToken = next || undefined;
      } while (pageToken);
      return builder.build();
    },
  };
}

function mapDevice(raw: unknown, deviceIdField: GoogleOptions['deviceId']) {
  if (!isObject(raw)) return { reason: 'mobile device entry is not an object' };
  const type = str(raw.type);
  const os = str(raw.os);
  const model = str(raw.model);
  const isAndroid = type === 'ANDROID';
  const platform = isAndroid ? 'android' : type === 'IOS_SYNC' || os?.toLowerCase().startsWith('ios') ? platformFromOsName('ios', model) : os ? platformFromOsName(os, model) : undefined;
  // `os` is "Android 9" / "iOS 15.4.1": the version is what follows the name.
  const osVersion = os?.match(/(\d+(?:\.\d+)*)/)?.[1];
  const emails = Array.isArray(raw.email) ? raw.email : [];
  const resourceId = str(raw.resourceId);
  const applications = Array.isArray(raw.applications) ? raw.applications.filter(isObject) : [];
  return finishDevice(
    {
      sourceId: resourceId,
      deviceId: deviceIdField === 'mdm' ? resourceId : deviceIdField === 'udid' ? str(raw.deviceId) : str(raw.serialNumber),
      user: str(emails[0]),
      platform,
      osVersion,
      managed: raw.status === 'APPROVED',
      // mobiledevices.list covers user-owned devices only (company-owned ones are in Cloud Identity).
      ownership: 'personal',
      // Android: the list Google has (absent = none). Everything else: not visible.
      apps: isAndroid ? applications.map((a) => ({ id: str(a.packageName), name: str(a.displayName) })) : null,
      lastSeenAt: str(raw.lastSync),
    },
    deviceIdField,
  );
}
