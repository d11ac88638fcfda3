// A fake Google token endpoint and Admin SDK Directory API from the documented shapes: the JWT
// bearer grant (checked against the service account's public key, with sub and scope), and
// customer/{id}/devices/mobile with projection, maxResults ≤ 100 and nextPageToken.
import { generateKeyPairSync } from 'node:crypto';
import { importSPKI, jwtVerify } from 'jose';
import { FakeHttpServer, pageToken } from './fake-http';

export type GoogleMobileDevice = Record<string, unknown>;

export interface FakeGoogle {
  readonly server: FakeHttpServer;
  readonly directoryUrl: string;
  readonly tokenUrl: string;
  /** A service-account key file as Google issues it (JSON). */
  readonly serviceAccountJson: string;
  readonly adminSubject: string;
  devices: GoogleMobileDevice[];
  /** Items per page (Google: at most 100). */
  pageSize: number;
  stop(): Promise<void>;
}

export async function startFakeGoogle(init: { devices?: GoogleMobileDevice[]; pageSize?: number } = {}): Promise<FakeGoogle> {
  let fake!: FakeGoogle;
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const spki = await importSPKI(publicKey.export({ type: 'spki', format: 'pem' }).toString(), 'RS256');
  const clientEmail = 'mailwarden@example-project.iam.gserviceaccount.com';
  const adminSubject = 'admin@example.com';

  const server: FakeHttpServer = new FakeHttpServer(async (request) => {
    if (request.method === 'POST' && request.path === '/token') {
      const form = new URLSearchParams(request.body);
      if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') return { status: 400, body: { error: 'unsupported_grant_type' } };
      try {
        const { payload } = await jwtVerify(form.get('assertion') ?? '', spki, { issuer: clientEmail, audience: fake.tokenUrl, algorithms: ['RS256'] });
        if (payload.sub !== adminSubject) return { status: 401, body: { error: 'unauthorized_client', error_description: 'Client is unauthorized to retrieve access tokens using this method' } };
        if (payload.scope !== 'https://www.googleapis.com/auth/admin.directory.device.mobile.readonly') return { status: 400, body: { error: 'invalid_scope' } };
      } catch (err) {
        return { status: 400, body: { error: 'invalid_grant', error_description: (err as Error).message } };
      }
      return { status: 200, body: server.issueToken() };
    }
    const match = /^\/admin\/directory\/v1\/customer\/([^/]+)\/devices\/mobile$/.exec(request.path);
    if (!match) return undefined;
    if (!server.authorized(request)) return { status: 401, body: { error: { code: 401, message: 'Request had invalid authentication credentials.', errors: [{ reason: 'authError' }] } } };
    if (match[1] !== 'my_customer') return { status: 404, body: { error: { code: 404, message: 'Resource Not Found: customer' } } };
    const max = Math.min(Number(request.query.get('maxResults') ?? 100), 100, fake.pageSize);
    const offset = pageToken.decode(request.query.get('pageToken'));
    const full = request.query.get('projection') === 'FULL';
    const items = fake.devices.slice(offset, offset + max).map((d) => (full ? d : { kind: d.kind, resourceId: d.resourceId, deviceId: d.deviceId, model: d.model, status: d.status, type: d.type }));
    const next = offset + max < fake.devices.length ? { nextPageToken: pageToken.encode(offset + max) } : {};
    return { status: 200, body: { kind: 'directory#mobiledevices', etag: '"etag"', ...(items.length ? { mobiledevices: items } : {}), ...next } };
  });
  await server.start();
  fake = {
    server,
    directoryUrl: `${server.url}/admin/directory/v1`,
    tokenUrl: `${server.url}/token`,
    serviceAccountJson: JSON.stringify({ type: 'service_account', project_id: 'example-project', private_key_id: 'k1', private_key: pem, client_email: clientEmail, token_uri: `${server.url}/token` }),
    adminSubject,
    devices: init.devices ?? [],
    pageSize: init.pageSize ?? 100,
    stop: () => server.stop(),
  };
  return fake;
}

export function googleAndroid(id: string, fields: { user?: string; apps?: { packageName: string; displayName: string }[] } = {}): GoogleMobileDevice {
  return {
    kind: 'admin#directory#mobiledevice',
    resourceId: `res-${id}`,
    deviceId: id,
    email: [fields.user ?? 'bob@example.com'],
    name: ['Bob'],
    model: 'SM-G960F',
    os: 'Android 14',
    type: 'ANDROID',
    status: 'APPROVED',
    serialNumber: `SN${id}`,
    lastSync: '2026-11-29T17:02:11.123Z',
    ...(fields.apps ? { applications: fields.apps.map((a) => ({ ...a, versionName: '1.0', versionCode: 1, permission: [] })) } : {}),
  };
}

export function googleIos(id: string, fields: { user?: string; model?: string } = {}): GoogleMobileDevice {
  return {
    kind: 'admin#directory#mobiledevice',
    resourceId: `res-${id}`,
    deviceId: id,
    email: [fields.user ?? 'alice@example.com'],
    model: fields.model ?? 'iPhone10,6',
    os: 'iOS 17.4.1',
    type: 'IOS_SYNC',
    status: 'APPROVED',
    lastSync: '2026-11-30T08:00:00.000Z',
  };
}
