// The kill switch: GET /v1/kill-switch reads it (on/off, since, by whom, note); PUT sets it, putting
// every check in report mode on every instance.
import { ADMIN_LIMITS, adminAudit, badRequest, readJson, type Route } from '../route';
import type { AdminServices } from '../services';

/** An optional short text field of the PUT body. */
function optionalText(body: Record<string, unknown>, key: string, max: number): string | undefined {
  const value = body[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length > max) throw badRequest(`"${key}" must be a string of at most ${max} characters`);
  return value;
}

export function killSwitchRoutes(services: AdminServices): Route[] {
  const { log } = services;
  const audit = adminAudit(services);
  return [
    {
      method: 'GET',
      path: ['v1', 'kill-switch'],
      handle: async () => ({ status: 200, body: await services.killSwitch() }),
    },
    {
      method: 'PUT',
      path: ['v1', 'kill-switch'],
      handle: async (ctx) => {
        const { req } = ctx;
        const body = await readJson(req);
        const { on } = body;
        if (typeof on !== 'boolean') throw badRequest('"on" is required: true or false');
        const note = optionalText(body, 'note', ADMIN_LIMITS.noteMaxChars);
        // The caller may say who it is (the CLI: cli:<login>); otherwise the token's name. The audit
        // names the token either way.
        const by = optionalText(body, 'by', ADMIN_LIMITS.idMaxChars) ?? ctx.principal?.name ?? 'admin API';
        await services.setKillSwitch(on, { by, ...(note !== undefined && { note }) });
        log.warn(on ? 'kill switch ON: every check in report mode' : 'kill switch off', { killSwitch: on, by, ...(note !== undefined && { note }) });
        await audit(ctx, 'kill-switch', { on, by, ...(note !== undefined && { note }) });
        return { status: 200, body: await services.killSwitch() };
      },
    },
  ];
}
