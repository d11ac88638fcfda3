// Microsoft Intune through Graph v1.0: detectedApps and, per app, /detectedApps/{id}/managedDevices
// (the app → devices direction: one request per app page, not one per device), then managedDevices,
// each page mapped as it comes. Intune lists unmanaged apps only on corporate-owned devices and gives display
// names, not bundle ids: personal devices get no inventory (unknown), corporate ones the names.
import type { Connector, Inventory, ListContext, Ownership } from './contract';
import { SourceError } from './contract';
import type { HttpClient, TokenSource } from './http';
import { finishDevice, InventoryBuilder, isObject, platformFromOsName, str } from './mapping';
import { eachWithConcurrency } from '../core/concurrency';

export interface IntuneOptions {
  readonly name: string;
  readonly http: HttpClient;
  readonly token: TokenSource;
  /** Default https://graph.microsoft.com/v1.0 */
  readonly graphUrl: string;
  /** mdm = Intune id, entra = azureADDeviceId (what OAuth device claims carry), serial = serialNumber. */
  readonly deviceId: 'mdm' | 'entra' | 'serial';
  /** upn = userPrincipalName, email = emailAddress. */
  readonly userField: 'upn' | 'email';
  /** Follow only detected apps with these display names (case-insensitive); absent = every app. */
  readonly onlyApps?: readonly string[];
  /** Detected apps whose device lists are read at the same time. */
  readonly concurrency?: number;
}

const DEVICE_FIELDS = [
  'id',
  'userPrincipalName',
  'emailAddress',
  'deviceName',
  'operatingSystem',
  'osVersion',
  'model',
  'managedDeviceOwnerType',
  'managementAgent',
  'lastSyncDateTime',
  'serialNumber',
  'azureADDeviceId',
].join(',');

/** Entra writes this for a device that is not registered: it identifies nothing. */
const NIL_GUID = '00000000-0000-0000-0000-000000000000';

export function intuneConnector(options: IntuneOptions): Connector {
  const base = options.graphUrl.replace(/\/+$/, '');
  const onlyApps = options.onlyApps ? new Set(options.onlyApps.map((n) => n.toLowerCase())) : null;

  /** Every item of a Graph collection, following @odata.nextLink until it is absent. */
  async function* pages(url: string, context: ListContext): AsyncGenerator<unknown[]> {
    let next: string | undefined = url;
    let count: number | undefined;
    let seen = 0;
    while (next) {
      const body = await options.http.json(next, { auth: options.token, signal: context.signal });
      if (!isObject(body) || !Array.isArray(body.value)) throw new SourceError(`${options.name}: a Graph page has no "value" list`);
      if (typeof body['@odata.count'] === 'number') count = body['@odata.count'];
      seen += body.value.length;
      yield body.value;
      const link = body['@odata.nextLink'];
      if (link !== undefined && link !== null && typeof link !== 'string') throw new SourceError(`${options.name}: @odata.nextLink is not a URL`);
      next = link ?? undefined;
      // Only follow links to the same Graph endpoint: a page must not send our token elsewhere.
      if (next && !next.startsWith(`${new URL(base).origin}/`)) throw new SourceError(`${options.name}: @odata.nextLink points outside ${new URL(base).origin}`);
    }
    // Graph has been seen ending a listing early without a nextLink; a count says so.
    if (count !== undefined && seen < count) throw new SourceError(`${options.name}: Graph announced ${count} items but listed ${seen}`);
  }

  return {
    name: options.name,
    type: 'intune',
    async listDevices(context): Promise<Inventory> {
      // App → devices first, so that each managedDevices page is mapped as it arrives and dropped:
      // the raw Graph objects of the whole fleet are never held at once.
      const apps: { id: string; name: string }[] = [];
      for await (const page of pages(`${base}/deviceManagement/detectedApps?$top=1000`, context)) {
        for (const item of page) {
          const id = isObject(item) ? str(item.id) : undefined;
          const name = isObject(item) ? str(item.displayName) : undefined;
          if (!id || !name) continue; // a nameless detected app cannot match any policy entry
          if (onlyApps && !onlyApps.has(name.toLowerCase())) continue;
          apps.push({ id, name });
        }
      }
      const namesByDevice = new Map<string, string[]>();
      await eachWithConcurrency(apps, Math.max(1, options.concurrency ?? 4), async (app) => {
        const url = `${base}/deviceManagement/detectedApps/${encodeURIComponent(app.id)}/managedDevices?$select=id`;
        for await (const page of pages(url, context)) {
          for (const device of page) {
            const id = isObject(device) ? str(device.id) : undefined;
            if (!id) continue;
            const list = namesByDevice.get(id);
            if (list) list.push(app.name);
            else namesByDevice.set(id, [app.name]);
          }
        }
      });

      const builder = new InventoryBuilder();
      for await (const page of pages(`${base}/deviceManagement/managedDevices?$select=${DEVICE_FIELDS}&$top=1000`, context)) {
        for (const item of page) {
          if (!isObject(item) || !str(item.id)) {
            builder.skip({ reason: 'managedDevice without an id' });
            continue;
          }
          // namesByDevice is kept whole until the end: Graph may list one device twice, and the
          // second copy must not come out with an empty (clean) app list.
          builder.add(mapDevice(item, namesByDevice, options));
        }
      }
      return builder.build();
    },
  };
}

const OWNERSHIP: Readonly<Record<string, Ownership>> = { company: 'company', personal: 'personal' };

function mapDevice(item: Record<string, unknown>, namesByDevice: ReadonlyMap<string, readonly string[]>, options: IntuneOptions) {
  const intuneId = str(item.id)!;
  const entra = str(item.azureADDeviceId);
  const deviceId = options.deviceId === 'mdm' ? intuneId : options.deviceId === 'serial' ? str(item.serialNumber) : entra === NIL_GUID ? undefined : entra;
  const os = str(item.operatingSystem);
  const ownership = OWNERSHIP[String(item.managedDeviceOwnerType)] ?? 'unknown';
  const agent = str(item.managementAgent);
  return finishDevice(
    {
      sourceId: intuneId,
      deviceId,
      user: options.userField === 'upn' ? str(item.userPrincipalName) : str(item.emailAddress),
      platform: os ? platformFromOsName(os, str(item.model)) : undefined,
      osVersion: str(item.osVersion),
      // Exchange ActiveSync alone is not device management.
      managed: agent !== undefined && agent !== 'eas' && agent !== 'unknown',
      ownership,
      // Unmanaged apps appear only for corporate-owned devices: elsewhere an empty list means "not visible".
      apps: ownership === 'company' ? (namesByDevice.get(intuneId) ?? []).map((name) => ({ name })) : null,
      lastSeenAt: str(item.lastSyncDateTime),
    },
    options.deviceId,
  );
}
