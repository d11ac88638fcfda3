// Health, readiness and the Prometheus scrape (GET /healthz, /readyz, /metrics).
import { type Route } from '../route';
import type { AdminServices } from '../services';

export function healthRoutes(services: AdminServices): Route[] {
  const { metrics } = services;
  return [
    {
      method: 'GET',
      path: ['healthz'],
      public: true,
      quiet: true,
      handle: async () => ({ status: 200, body: { status: 'ok' } }),
    },
    {
      method: 'GET',
      path: ['readyz'],
      public: true,
      quiet: true,
      handle: async () => {
        try {
          const { ready, checks, connectors } = await services.ready();
          return { status: ready ? 200 : 503, body: { status: ready ? 'ready' : 'not ready', checks, ...(connectors ? { connectors } : {}) } };
        } catch (err) {
          return { status: 503, body: { status: 'not ready', checks: { ready: (err as Error).message } } };
        }
      },
    },
    {
      method: 'GET',
      path: ['metrics'],
      quiet: true,
      handle: async () => ({ status: 200, text: await metrics.text(), contentType: metrics.contentType }),
    },
  ];
}
