// A fake Microsoft Graph v1.0 (Intune) and Entra token endpoint, from the documented shapes:
// POST /{tenant}/oauth2/v2.0/token (client credentials), managedDevices, detectedApps and
// /detectedApps/{id}/managedDevices, each paged with opaque $skiptoken nextLinks.
import { FakeHttpServer, pageToken, type FakeRequest, type FakeResponse } from './fake-http';

export interface GraphManagedDevice {
  id: string;
  userPrincipalName?: string;
  emailAddress?: string;
  deviceName?: string;
  operatingSystem?: string;
  osVersion?: string;
  model?: string;
  complianceState?: string;
  managedDeviceOwnerType?: 'unknown' | 'company' | 'personal';
  managementAgent?: string;
  lastSyncDateTime?: string;
  serialNumber?: string;
  azureADDeviceId?: string;
  [extra: string]: unknown;
}

export interface FakeDetectedApp {
  id: string;
  displayName: string;
  version?: string;
  platform?: string;
  /** Intune ids of the devices it is detected on. */
  deviceIds: string[];
}

export interface FakeIntune {
  readonly server: FakeHttpServer;
  readonly graphUrl: string;
  readonly tokenUrl: string;
  readonly tenantId: string;
  readonly clientId: string;
  readonly clientSecret: string;
  devices: GraphManagedDevice[];
  apps: FakeDetectedApp[];
  /** Items per page (Graph pages managedDevices by 1000; tests use a few). */
  pageSize: number;
  stop(): Promise<void>;
}

const CONTEXT = 'https://graph.microsoft.com/v1.0/$metadata#deviceManagement';

export async function startFakeIntune(init: { devices?: GraphManagedDevice[]; apps?: FakeDetectedApp[]; pageSize?: number } = {}): Promise<FakeIntune> {
  const tenantId = 'contoso-tenant';
  const clientId = 'app-1111';
  const clientSecret = 'intune-secret-value';
  let fake!: FakeIntune;

  // Device id → index in fake.devices, so that no request scans the whole fleet. Rebuilt when a test
  // replaces or resizes the list, or a lookup finds another id at the index (a reordered list).
  let index = new Map<string, number>();
  let indexed: { list: GraphManagedDevice[]; length: number } | null = null;
  const deviceById = (id: string): GraphManagedDevice | undefined => {
    const at = index.get(id);
    if (at !== undefined && fake.devices[at]?.id === id) return fake.devices[at];
    if (at === undefined && indexed?.list === fake.devices && indexed.length === fake.devices.length) return undefined;
    index = new Map(fake.devices.map((d, i) => [d.id, i]));
    indexed = { list: fake.devices, length: fake.devices.length };
    const again = index.get(id);
    return again === undefined ? undefined : fake.devices[again];
  };

  const graphError = (status: number, code: string, message: string): FakeResponse => ({ status, body: { error: { code, message } } });

  /** One page of `items`, each shaped by `shape` — only the page's items, so a page costs its size, not the list's. */
  function page<T>(request: FakeRequest, items: readonly T[], shape: (item: T) => object, path: string, type: string): FakeResponse {
    const offset = pageToken.decode(request.query.get('$skiptoken'));
    const size = Math.min(fake.pageSize, Number(request.query.get('$top') ?? fake.pageSize));
    const value = items.slice(offset, offset + size).map((item) => ({ '@odata.type': `#microsoft.graph.${type}`, ...shape(item) }));
    const next = offset + size < items.length ? `${fake.graphUrl}${path}?$skiptoken=${pageToken.encode(offset + size)}` : undefined;
    return { status: 200, body: { '@odata.context': `${CONTEXT}/${path.split('/').pop()}`, ...(next ? { '@odata.nextLink': next } : {}), value } };
  }

  const server: FakeHttpServer = new FakeHttpServer((request) => {
    if (request.method === 'POST' && request.path === `/${tenantId}/oauth2/v2.0/token`) {
      const form = new URLSearchParams(request.body);
      if (form.get('grant_type') !== 'client_credentials' || form.get('client_id') !== clientId || form.get('client_secret') !== clientSecret) {
        return { status: 401, body: { error: 'invalid_client', error_description: 'AADSTS7000215: Invalid client secret provided.' } };
      }
      if (form.get('scope') !== 'https://graph.microsoft.com/.default') return { status: 400, body: { error: 'invalid_scope' } };
      return { status: 200, body: server.issueToken() };
    }
    if (!request.path.startsWith('/v1.0/')) return undefined;
    if (!server.authorized(request)) return graphError(401, 'InvalidAuthenticationToken', 'Access token has expired or is not yet valid.');
    const path = request.path.slice('/v1.0'.length);
    if (path === '/deviceManagement/managedDevices') {
      const select = request.query.get('$select')?.split(',');
      const shape = (d: GraphManagedDevice) => (select ? Object.fromEntries(Object.entries(d).filter(([k]) => select.includes(k))) : d);
      return page(request, fake.devices, shape, path, 'managedDevice');
    }
    if (path === '/deviceManagement/detectedApps') {
      if (request.query.has('$expand')) return graphError(400, 'BadRequest', 'managedDevices is not a property of detectedApps');
      const shape = ({ deviceIds, ...app }: FakeDetectedApp) => ({ sizeInByte: 0, publisher: '', version: '1.0', platform: 'ios', ...app, deviceCount: deviceIds.length });
      return page(request, fake.apps, shape, path, 'detectedApp');
    }
    const appDevices = /^\/deviceManagement\/detectedApps\/([^/]+)\/managedDevices$/.exec(path);
    if (appDevices) {
      const app = fake.apps.find((a) => a.id === appDevices[1]);
      if (!app) return graphError(404, 'ResourceNotFound', 'detectedApp not found');
      return page(request, app.deviceIds, (id) => ({ id, deviceName: deviceById(id)?.deviceName }), path, 'managedDevice');
    }
    return undefined;
  });
  await server.start();
  fake = {
    server,
    graphUrl: `${server.url}/v1.0`,
    tokenUrl: `${server.url}/${tenantId}/oauth2/v2.0/token`,
    tenantId,
    clientId,
    clientSecret,
    devices: init.devices ?? [],
    apps: init.apps ?? [],
    pageSize: init.pageSize ?? 1000,
    stop: () => server.stop(),
  };
  return fake;
}

/** A Graph managedDevice with the documented fields filled in. */
export function graphDevice(id: string, fields: Partial<GraphManagedDevice> = {}): GraphManagedDevice {
  return {
    id,
    userPrincipalName: 'alice@example.com',
    emailAddress: 'alice@example.com',
    deviceName: `Device ${id}`,
    operatingSystem: 'iOS',
    osVersion: '17.5.1',
    model: 'iPhone 15',
    complianceState: 'compliant',
    managedDeviceOwnerType: 'company',
    managementAgent: 'mdm',
    lastSyncDateTime: '2026-11-30T08:12:44Z',
    serialNumber: `SN${id}`,
    azureADDeviceId: `entra-${id}`,
    ...fields,
  };
}
