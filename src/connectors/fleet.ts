// Fleet (fleetdm) REST API: /api/v1/fleet/hosts with populate_software and device_mapping, paged
// by page/per_page until a short page (the list carries no total). Software entries give a
// `bundle_identifier` where Fleet knows one, else only the name.
import type { Connector, Inventory } from './contract';
import { SourceError } from './contract';
import type { HttpClient, TokenSource } from './http';
import { finishDevice, InventoryBuilder, isObject, platformFromOsName, str } from './mapping';

export interface FleetOptions {
  readonly name: string;
  readonly http: HttpClient;
  readonly token: TokenSource;
  readonly baseUrl: string;
  /** mdm = Fleet host id, udid = the host's uuid, serial = hardware_serial. */
  readonly deviceId: 'mdm' | 'udid' | 'serial';
  readonly pageSize?: number;
}

/** Fleet platform strings (osquery's, plus Fleet's Apple MDM ones) → ours. */
const FLEET_PLATFORMS: Readonly<Record<string, string>> = { darwin: 'macos', ios: 'ios', ipados: 'ipados', windows: 'windows', android: 'android', chrome: 'chromeos' };

export function fleetConnector(options: FleetOptions): Connector {
  const base = options.baseUrl.replace(/\/+$/, '');
  const pageSize = options.pageSize ?? 100;
  return {
    name: options.name,
    type: 'fleet',
    async listDevices(context): Promise<Inventory> {
      const builder = new InventoryBuilder();
      for (let page = 0; ; page++) {
        const url = `${base}/api/v1/fleet/hosts?page=${page}&per_page=${pageSize}&order_key=id&order_direction=asc&populate_software=true&device_mapping=true`;
        const body = await options.http.json(url, { auth: options.token, signal: context.signal });
        if (!isObject(body) || !Array.isArray(body.hosts)) throw new SourceError(`${options.name}: hosts page ${page} has no "hosts" list`);
        for (const host of body.hosts) builder.add(mapHost(host, options.deviceId));
        if (body.hosts.length < pageSize) break;
      }
      return builder.build();
    },
  };
}

function mapHost(raw: unknown, deviceIdField: FleetOptions['deviceId']) {
  if (!isObject(raw)) return { reason: 'host entry is not an object' };
  const hostId = str(raw.id);
  const rawPlatform = str(raw.platform)?.toLowerCase();
  const platform = rawPlatform ? (FLEET_PLATFORMS[rawPlatform] ?? platformFromOsName(rawPlatform)) : undefined;
  // os_version is "macOS 14.5" / "iOS 17.5.1": keep the number.
  const osVersion = str(raw.os_version)?.match(/(\d+(?:\.\d+)*)/)?.[1];
  const mapping = Array.isArray(raw.device_mapping) ? raw.device_mapping.filter(isObject) : [];
  const mdm = isObject(raw.mdm) ? raw.mdm : {};
  const enrollment = str(mdm.enrollment_status)?.toLowerCase() ?? '';
  // "On (personal)" is Apple User Enrollment: only managed apps are visible.
  const personal = enrollment.includes('personal');
  const software = Array.isArray(raw.software) ? raw.software.filter(isObject) : null;
  return finishDevice(
    {
      sourceId: hostId,
      deviceId: deviceIdField === 'mdm' ? hostId : deviceIdField === 'udid' ? str(raw.uuid) : str(raw.hardware_serial),
      user: str(mapping[0]?.email),
      platform,
      osVersion,
      managed: enrollment.startsWith('on'),
      ownership: personal ? 'personal' : enrollment.includes('automatic') ? 'company' : 'unknown',
      // populate_software was asked for: a host without `software` is one Fleet has not inventoried.
      apps: personal || software === null ? null : software.map((s) => ({ id: str(s.bundle_identifier), name: str(s.name) })),
      lastSeenAt: str(raw.seen_time),
    },
    deviceIdField,
  );
}
