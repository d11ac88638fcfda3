// Jamf Pro API: mobile devices (/api/v2/mobile-devices/detail) and computers
// (/api/v1/computers-inventory, path configurable) with their GENERAL, HARDWARE, USER_AND_LOCATION
// and APPLICATIONS sections, paged by page/page-size until totalCount. Jamf reports bundle ids:
// mobile devices as `identifier`, computers as `bundleId`.
import type { Connector, Inventory, ListContext, Ownership } from './contract';
import { SourceError } from './contract';
import type { HttpClient, TokenSource } from './http';
import { finishDevice, InventoryBuilder, isObject, platformFromOsName, str, type AppEntry } from './mapping';

export interface JamfOptions {
  readonly name: string;
  readonly http: HttpClient;
  readonly token: TokenSource;
  readonly baseUrl: string;
  /** mdm = Jamf id, serial = serial number, udid = the device's UDID. */
  readonly deviceId: 'mdm' | 'serial' | 'udid';
  /** Default /api/v1/computers-inventory (newer servers also offer /api/v3/computers-inventory). */
  readonly computersPath: string;
  readonly pageSize?: number;
}

const SECTIONS = ['GENERAL', 'HARDWARE', 'USER_AND_LOCATION', 'APPLICATIONS'].map((s) => `section=${s}`).join('&');

/**
 * User Enrollment (BYOD) devices report only managed apps to the MDM, so their app list says
 * nothing about TikTok: inventory not visible. Institutional devices report every app.
 */
const OWNERSHIP: Readonly<Record<string, { ownership: Ownership; inventoryVisible: boolean }>> = {
  institutional: { ownership: 'company', inventoryVisible: true },
  personaldeviceprofile: { ownership: 'personal', inventoryVisible: false },
  userenrollment: { ownership: 'personal', inventoryVisible: false },
  accountdrivenuserenrollment: { ownership: 'personal', inventoryVisible: false },
};

export function jamfConnector(options: JamfOptions): Connector {
  const base = options.baseUrl.replace(/\/+$/, '');
  const pageSize = options.pageSize ?? 100;

  async function* results(path: string, sort: string, context: ListContext): AsyncGenerator<unknown[]> {
    for (let page = 0; ; page++) {
      const url = `${base}${path}?${SECTIONS}&page=${page}&page-size=${pageSize}&sort=${sort}`;
      const body = await options.http.json(url, { auth: options.token, signal: context.signal });
      if (!isObject(body) || !Array.isArray(body.results) || typeof body.totalCount !== 'number') {
        throw new SourceError(`${options.name}: ${path} page ${page} has no results/totalCount`);
      }
      yield body.results;
      if (body.results.length === 0 || (page + 1) * pageSize >= body.totalCount) {
        // A listing that ends short of its own total dropped devices: fail rather than remove them.
        const listed = page * pageSize + body.results.length;
        if (listed < body.totalCount) throw new SourceError(`${options.name}: ${path} announced ${body.totalCount} devices but listed ${listed}`);
        return;
      }
    }
  }

  return {
    name: options.name,
    type: 'jamf',
    async listDevices(context): Promise<Inventory> {
      const builder = new InventoryBuilder();
      for await (const page of results('/api/v2/mobile-devices/detail', 'mobileDeviceId:asc', context)) {
        for (const item of page) builder.add(mapMobileDevice(item, options.deviceId));
      }
      for await (const page of results(options.computersPath, 'id:asc', context)) {
        for (const item of page) builder.add(mapComputer(item, options.deviceId));
      }
      return builder.build();
    },
  };
}

function section(item: Record<string, unknown>, name: string): Record<string, unknown> {
  const value = item[name];
  return isObject(value) ? value : {};
}

function appList(value: unknown, idKey: 'identifier' | 'bundleId'): AppEntry[] | undefined {
  if (!Array.isArray(value)) return undefined;
  return value.filter(isObject).map((app) => ({ id: str(app[idKey]), name: str(app.name) }));
}

function pickId(kind: JamfOptions['deviceId'], jamfId: string | undefined, serial: unknown, udid: unknown): string | undefined {
  return kind === 'mdm' ? jamfId : kind === 'serial' ? str(serial) : str(udid);
}

function mapMobileDevice(raw: unknown, deviceIdField: JamfOptions['deviceId']) {
  if (!isObject(raw)) return { reason: 'mobile device entry is not an object' };
  const general = section(raw, 'general');
  const hardware = section(raw, 'hardware');
  const user = section(raw, 'userAndLocation');
  const jamfId = str(raw.mobileDeviceId);
  const ownership = OWNERSHIP[String(general.deviceOwnershipType ?? 'Institutional').toLowerCase()] ?? { ownership: 'unknown' as Ownership, inventoryVisible: false };
  const deviceType = str(raw.deviceType);
  const apps = appList(raw.applications, 'identifier');
  return finishDevice(
    {
      sourceId: jamfId,
      deviceId: pickId(deviceIdField, jamfId, hardware.serialNumber, general.udid),
      user: str(user.emailAddress),
      platform: deviceType ? platformFromOsName(deviceType, str(hardware.model) ?? str(hardware.modelIdentifier)) : undefined,
      osVersion: str(general.osVersion),
      managed: general.managed !== false,
      ownership: ownership.ownership,
      // The APPLICATIONS section was asked for: a device without the list is one Jamf could not inventory.
      apps: ownership.inventoryVisible ? (apps ?? null) : null,
      lastSeenAt: str(general.lastInventoryUpdateDate),
    },
    deviceIdField,
  );
}

function mapComputer(raw: unknown, deviceIdField: JamfOptions['deviceId']) {
  if (!isObject(raw)) return { reason: 'computer entry is not an object' };
  const general = section(raw, 'general');
  const hardware = section(raw, 'hardware');
  const user = section(raw, 'userAndLocation');
  const operatingSystem = section(raw, 'operatingSystem');
  const jamfId = str(raw.id);
  const apps = appList(raw.applications, 'bundleId');
  const managed = isObject(general.remoteManagement) ? general.remoteManagement.managed !== false : true;
  return finishDevice(
    {
      sourceId: jamfId,
      deviceId: pickId(deviceIdField, jamfId, hardware.serialNumber, raw.udid),
      user: str(user.email),
      // Jamf Pro manages Macs only; `general.platform` says "Mac" on current servers.
      platform: 'macos',
      osVersion: str(operatingSystem.version) ?? str(general.osVersion),
      managed,
      // The sections read carry no ownership; the Jamf agent on a Mac inventories every app anyway.
      ownership: 'unknown',
      apps: apps ?? null,
      lastSeenAt: str(general.lastContactTime) ?? str(general.reportDate),
    },
    deviceIdField,
  );
}
