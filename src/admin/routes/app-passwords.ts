// Device-bound app passwords (POST and DELETE /v1/devices/:id/app-passwords).
import { validateUserName } from '../../core/identifiers';
import { AdminError } from '../errors';
import { adminAudit, badRequest, readJson, type Route } from '../route';
import type { AdminServices } from '../services';

export function appPasswordRoutes(services: AdminServices): Route[] {
  const { store } = services;
  const audit = adminAudit(services);
  return [
    {
      method: 'POST',
      path: ['v1', 'devices', ':', 'app-passwords'],
      handle: async (ctx) => {
        const { req, params: [deviceId] } = ctx;
        const body = await readJson(req);
        const { user, force = false } = body;
        if (typeof user !== 'string' || user.trim() === '') throw badRequest('"user" is required: the mail login name');
        // The user name becomes part of Redis keys (docs/redis-layout.md): same grammar as the path's device id.
        const invalid = validateUserName(user);
        if (invalid) throw new AdminError('INVALID_IDENTIFIER', invalid);
        if (typeof force !== 'boolean') throw badRequest('"force" must be true or false');
        // An app password logs in through the master user: only for a device whose stored record
        // (a signed report or a connector's sync) names this user, unless an admin says otherwise.
        if (force && ctx.principal?.role !== 'admin') throw new AdminError('FORBIDDEN', 'only an admin token may force an enrolment');
        const lookup = await store.getDevice(deviceId);
        const reported = lookup.state === 'found';
        if (!force && !reported) {
          throw new AdminError('DEVICE_NOT_REPORTED',
            `device ${deviceId} has no stored report; enrol it once its MDM has reported it for ${user}, or send "force": true (admin) to enrol it anyway`,
          );
        }
        if (!force && lookup.state === 'found' && lookup.record.user.toLowerCase() !== user.toLowerCase()) {
          throw new AdminError('DEVICE_USER_MISMATCH',
            `device ${deviceId} reports user ${lookup.record.user}, not ${user}; enrol it for that user, send a new report first, or send "force": true (admin)`,
          );
        }
        const issued = await services.issueAppPassword(user, deviceId);
        await audit(ctx, 'app-password-issued', { deviceId, user, credentialId: issued.credentialId, reported, forced: force });
        return { status: 201, body: { password: issued.password, credentialId: issued.credentialId, user, deviceId } };
      },
    },
    {
      method: 'DELETE',
      path: ['v1', 'devices', ':', 'app-passwords'],
      handle: async (ctx) => {
        const [deviceId] = ctx.params;
        const removed = await store.removeAppPasswords(deviceId);
        await audit(ctx, 'app-passwords-removed', { deviceId, removed });
        return { status: 200, body: { deviceId, removed } };
      },
    },
  ];
}
