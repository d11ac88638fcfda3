// The kill switch (PUT /v1/kill-switch): every check in report mode on every instance.
import { adminAudit, badRequest, readJson, type Route } from '../route';
import type { AdminServices } from '../services';

export function killSwitchRoutes(services: AdminServices): Route[] {
  const { log } = services;
  const audit = adminAudit(services);
  return [
    {
      method: 'PUT',
      path: ['v1', 'kill-switch'],
      handle: async ({ req }) => {
        const { on } = await readJson(req);
        if (typeof on !== 'boolean') throw badRequest('"on" is required: true or false');
        await services.setKillSwitch(on);
        log.warn(on ? 'kill switch ON: every check in report mode' : 'kill switch off', { killSwitch: on });
        await audit('kill-switch', { on });
        return { status: 200, body: { on } };
      },
    },
  ];
}
