// A fake Jamf Pro API from the documented shapes: POST /api/oauth/token (API client credentials),
// POST /api/v1/auth/token (Basic → bearer), /api/v2/mobile-devices/detail and
// /api/v1/computers-inventory with sections, 0-based page/page-size and totalCount.
import { FakeHttpServer, type FakeRequest, type FakeResponse } from './fake-http';

export type JamfMobileDevice = Record<string, unknown>;
export type JamfComputer = Record<string, unknown>;

export interface FakeJamf {
  readonly server: FakeHttpServer;
  readonly url: string;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly username: string;
  readonly password: string;
  mobileDevices: JamfMobileDevice[];
  computers: JamfComputer[];
  stop(): Promise<void>;
}

export async function startFakeJamf(init: { mobileDevices?: JamfMobileDevice[]; computers?: JamfComputer[] } = {}): Promise<FakeJamf> {
  let fake!: FakeJamf;
  const clientId = '6cabf059-0000-4c8e-9d7a-000000000001';
  const clientSecret = 'jamf-client-secret';
  const username = 'api-reader';
  const password = 'jamf-password';

  const paged = (request: FakeRequest, items: unknown[]): FakeResponse => {
    const sections = request.query.getAll('section');
    const page = Number(request.query.get('page') ?? 0);
    const size = Number(request.query.get('page-size') ?? 100);
    const results = items.slice(page * size, (page + 1) * size).map((item) => {
      // A section that was not asked for is not in the answer (GENERAL is the default).
      const copy = { ...(item as Record<string, unknown>) };
      if (!sections.includes('APPLICATIONS')) delete copy.applications;
      if (!sections.includes('USER_AND_LOCATION')) delete copy.userAndLocation;
      return copy;
    });
    return { status: 200, body: { totalCount: items.length, results } };
  };

  const server: FakeHttpServer = new FakeHttpServer((request) => {
    if (request.method === 'POST' && request.path === '/api/oauth/token') {
      const form = new URLSearchParams(request.body);
      if (form.get('grant_type') !== 'client_credentials' || form.get('client_id') !== clientId || form.get('client_secret') !== clientSecret) {
        return { status: 401, body: { error: 'invalid_client' } };
      }
      return { status: 200, body: { ...server.issueToken(), scope: 'api-role:2' } };
    }
    if (request.method === 'POST' && request.path === '/api/v1/auth/token') {
      if (request.headers.authorization !== `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`) {
        return { status: 401, body: { httpStatus: 401, errors: [] } };
      }
      const issued = server.issueToken();
      return { status: 200, body: { token: issued.access_token, expires: new Date(Date.now() + issued.expires_in * 1000).toISOString() } };
    }
    if (!request.path.startsWith('/api/')) return undefined;
    if (!server.authorized(request)) return { status: 401, body: { httpStatus: 401, errors: [{ code: 'INVALID_TOKEN', description: 'Unauthorized' }] } };
    if (request.path === '/api/v2/mobile-devices/detail') return paged(request, fake.mobileDevices);
    if (request.path === '/api/v1/computers-inventory') return paged(request, fake.computers);
    return undefined;
  });
  await server.start();
  fake = { server, url: server.url, clientId, clientSecret, username, password, mobileDevices: init.mobileDevices ?? [], computers: init.computers ?? [], stop: () => server.stop() };
  return fake;
}

export function jamfMobileDevice(id: string, fields: { user?: string; model?: string; ownership?: string; apps?: { identifier: string; name: string }[] | null } = {}): JamfMobileDevice {
  return {
    mobileDeviceId: id,
    deviceType: 'iOS',
    general: { displayName: `Device ${id}`, osVersion: '17.5.1', udid: `udid-${id}`, managed: true, deviceOwnershipType: fields.ownership ?? 'Institutional', lastInventoryUpdateDate: '2026-11-30T08:12:44Z' },
    hardware: { model: fields.model ?? 'iPhone 15', modelIdentifier: 'iPhone15,4', serialNumber: `SN${id}` },
    userAndLocation: { username: 'alice', emailAddress: fields.user ?? 'alice@example.com' },
    ...(fields.apps === null
      ? {}
      : {
          applications: (fields.apps ?? []).map((a) => ({ ...a, version: '1.0', shortVersion: '1.0', managementStatus: 'UNMANAGED', validationStatus: true, bundleSize: '1', dynamicSize: '1' })),
        }),
  };
}

export function jamfComputer(id: string, fields: { user?: string; apps?: { bundleId: string; name: string }[] } = {}): JamfComputer {
  return {
    id,
    udid: `udid-mac-${id}`,
    general: { name: `Mac ${id}`, platform: 'Mac', remoteManagement: { managed: true }, lastContactTime: '2026-11-30T08:00:00Z' },
    hardware: { model: 'MacBook Pro', serialNumber: `MSN${id}` },
    operatingSystem: { name: 'macOS', version: '14.5' },
    userAndLocation: { email: fields.user ?? 'alice@example.com' },
    applications: (fields.apps ?? [{ bundleId: 'com.apple.Safari', name: 'Safari.app' }]).map((a) => ({ ...a, path: `/Applications/${a.name}`, version: '17.5', macAppStore: false, sizeMegabytes: 12, updateAvailable: false, externalVersionId: '0' })),
  };
}
