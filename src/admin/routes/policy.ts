// Policy simulation (POST /v1/policy/simulate): what a candidate policy would change.
import { ADMIN_LIMITS, readBody, type Route } from '../route';
import type { AdminServices } from '../services';

export function policyRoutes(services: AdminServices): Route[] {
  return [
    {
      method: 'POST',
      path: ['v1', 'policy', 'simulate'],
      handle: async ({ req }) => {
        const yaml = (await readBody(req, ADMIN_LIMITS.policyBodyBytes)).toString('utf8');
        const result = await services.simulate(yaml.trim() === '' ? null : yaml);
        return { status: 200, body: result };
      },
    },
  ];
}
