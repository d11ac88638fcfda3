// A fake Fleet REST API from the documented shapes: Bearer API token, /api/v1/fleet/hosts with
// 0-based page/per_page (no total: a short page ends the listing), populate_software and
// device_mapping.
import { FakeHttpServer } from './fake-http';

export type FleetHost = Record<string, unknown>;

export interface FakeFleet {
  readonly server: FakeHttpServer;
  readonly url: string;
  /** The one API token the fake accepts; a test assigns a new one to revoke the old (a logged-out API user). */
  token: string;
  hosts: FleetHost[];
  stop(): Promise<void>;
}

export async function startFakeFleet(init: { hosts?: FleetHost[] } = {}): Promise<FakeFleet> {
  let fake!: FakeFleet;
  const server: FakeHttpServer = new FakeHttpServer((request) => {
    if (request.path !== '/api/v1/fleet/hosts') return undefined;
    if (request.headers.authorization !== `Bearer ${fake.token}`) return { status: 401, body: { message: 'Authentication required', errors: [{ name: 'base', reason: 'Authentication required' }] } };
    const page = Number(request.query.get('page') ?? 0);
    const perPage = Number(request.query.get('per_page') ?? 100);
    const withSoftware = request.query.get('populate_software') === 'true';
    const withMapping = request.query.get('device_mapping') === 'true';
    const hosts = fake.hosts.slice(page * perPage, (page + 1) * perPage).map((h) => {
      const { software, device_mapping, ...rest } = h;
      return { ...rest, ...(withSoftware && software !== undefined ? { software } : {}), ...(withMapping ? { device_mapping: device_mapping ?? null } : {}) };
    });
    return { status: 200, body: { hosts } };
  });
  await server.start();
  fake = { server, url: server.url, token: 'fleet-api-only-user-token', hosts: init.hosts ?? [], stop: () => server.stop() };
  return fake;
}

export function fleetHost(id: number, fields: { platform?: string; os?: string; user?: string; enrollment?: string; software?: { name: string; bundle_identifier?: string }[] | null } = {}): FleetHost {
  return {
    id,
    hostname: `host-${id}`,
    display_name: `Host ${id}`,
    uuid: `uuid-${id}`,
    platform: fields.platform ?? 'darwin',
    os_version: fields.os ?? 'macOS 14.5',
    hardware_serial: `SN${id}`,
    seen_time: '2026-11-30T08:00:00Z',
    status: 'online',
    team_id: null,
    mdm: { enrollment_status: fields.enrollment ?? 'On (automatic)', name: 'Fleet' },
    device_mapping: [{ email: fields.user ?? 'alice@example.com', source: 'google_chrome_profiles' }],
    ...(fields.software === null
      ? {}
      : { software: (fields.software ?? [{ name: 'Safari.app', bundle_identifier: 'com.apple.Safari' }]).map((s, i) => ({ id: i + 1, version: '1.0', source: 'apps', ...s })) }),
  };
}
