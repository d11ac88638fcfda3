// Devices (GET /v1/devices, GET /v1/devices/:id): paging, and the decision a device would get now.
import { AdminError } from '../errors';
import { ADMIN_LIMITS, badRequest, intParam, type Route } from '../route';
import type { AdminServices } from '../services';
import type { DeviceRecord } from '../../store/device-store';

export function deviceRoutes(services: AdminServices): Route[] {
  const { store } = services;
  return [
    {
      method: 'GET',
      path: ['v1', 'devices'],
      handle: async ({ query }) => {
        const limit = intParam(query, 'limit', ADMIN_LIMITS.pageDefault, ADMIN_LIMITS.pageMax);
        const after = query.get('after') ?? '';
        const user = query.get('user');
        let records: DeviceRecord[];
        if (user) {
          const lookups = await store.getDevices(await store.listUserDevices(user));
          records = lookups.flatMap((l) => (l.state === 'found' ? [l.record] : []));
        } else {
          records = await store.listDevices();
        }
        // Paging by device id: stable under concurrent writes, unlike an offset.
        const sorted = records.filter((r) => r.deviceId > after).sort((a, b) => (a.deviceId < b.deviceId ? -1 : 1));
        const page = sorted.slice(0, limit);
        const next = sorted.length > limit ? page[page.length - 1].deviceId : null;
        return { status: 200, body: { devices: page, next } };
      },
    },
    {
      method: 'GET',
      path: ['v1', 'devices', ':'],
      handle: async ({ params: [deviceId], query }) => {
        const protocol = query.get('protocol') ?? 'imap';
        if (protocol !== 'imap' && protocol !== 'smtp') throw badRequest(`protocol must be imap or smtp (got "${protocol}")`);
        const lookup = await store.getDevice(deviceId);
        if (lookup.state === 'missing') {
          throw new AdminError('DEVICE_NOT_FOUND', `no report stored for device ${deviceId} (never reported, or expired)`);
        }
        if (lookup.state === 'malformed') {
          // Unknown user, so only device exemptions; a malformed record is never compliant anyway.
          const exemptions = (await store.getExemptions(deviceId, '')).filter((e) => e.scope === 'device');
          return {
            status: 200,
            body: { deviceId, state: 'malformed', detail: lookup.detail, record: null, exemptions, decision: null },
          };
        }
        const { record } = lookup;
        const [exemptions, decision] = await Promise.all([
          store.getExemptions(deviceId, record.user),
          services.decideForDevice(deviceId, record.user, protocol),
        ]);
        return { status: 200, body: { deviceId, state: 'found', record, exemptions, decision } };
      },
    },
  ];
}
