// Signed device reports from an MDM (POST /v1/reports): verify, store, count.
import { AdminError } from '../errors';
import { readBody, type Route } from '../route';
import type { AdminServices } from '../services';

export function reportRoutes(services: AdminServices): Route[] {
  const { store, log, metrics } = services;
  return [
    {
      method: 'POST',
      path: ['v1', 'reports'],
      handle: async ({ req }) => {
        // A compact JWS is application/jose (RFC 7515 §9.2.1).
        const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
        if (type !== 'application/jose') {
          throw new AdminError('UNSUPPORTED_MEDIA_TYPE', 'a report must be sent as Content-Type: application/jose');
        }
        const jws = (await readBody(req, services.reportMaxBytes())).toString('utf8').trim();
        const verified = await services.verifyReport(jws);
        if (!verified.ok) {
          metrics.onReport('rejected');
          throw new AdminError(verified.code, verified.message);
        }
        const { record } = verified;
        let stored: boolean;
        try {
          stored = await store.putDevice(record, services.recordTtlSeconds());
        } catch (err) {
          metrics.onReport('store-unavailable');
          throw err;
        }
        metrics.onReport(stored ? 'stored' : 'ignored-older');
        log.info('device report', { deviceId: record.deviceId, user: record.user, source: record.source, stored });
        return stored
          ? { status: 202, body: { stored: true, deviceId: record.deviceId } }
          : { status: 200, body: { stored: false, deviceId: record.deviceId, reason: 'older than stored report' } };
      },
    },
  ];
}
