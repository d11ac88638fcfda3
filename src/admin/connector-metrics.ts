// Prometheus metrics per connector, on the process registry: last successful sync time, last sync
// duration, devices seen, items skipped, syncs by result, API errors by status, throttling waits,
// and whether the source is stale.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { FetchObserver } from '../connectors/contract';
import type { ConnectorStatus } from '../core/connector-state';
import type { SyncReport } from '../connectors/sync';
import { METRIC_PREFIX } from './metrics';

export interface ConnectorMetrics {
  observer(connector: string): FetchObserver;
  onSync(connector: string, report: SyncReport): void;
  /** The shared status as this instance last read it (every instance exports the same values). */
  onStatus(connector: string, status: ConnectorStatus | null, stale: boolean): void;
}

export function createConnectorMetrics(registry: Registry): ConnectorMetrics {
  const registers = [registry];
  const name = (n: string) => `${METRIC_PREFIX}connector_${n}`;
  const gauge = (n: string, help: string) => new Gauge<'connector'>({ name: name(n), help, labelNames: ['connector'], registers });
  const lastSuccess = gauge('last_success_timestamp_seconds', 'Unix time of the last complete sync of the connector (applied or held)');
  const duration = gauge('last_sync_duration_seconds', 'Duration of the last sync attempt');
  const devices = gauge('devices', 'Devices the source listed in the last complete sync');
  const stale = gauge('source_stale', '1 while the source has had no complete sync within staleAfterSeconds');
  const skipped = new Counter<'connector'>({ name: name('skipped_items_total'), help: 'Source items skipped as malformed (their devices count as unknown)', labelNames: ['connector'], registers });
  const syncs = new Counter<'connector' | 'result'>({ name: name('syncs_total'), help: 'Syncs run by this instance, by result (applied, held, failed, dry-run)', labelNames: ['connector', 'result'], registers });
  const apiErrors = new Counter<'connector' | 'status'>({ name: name('api_errors_total'), help: 'Source API answers that were errors, by HTTP status (or network, timeout)', labelNames: ['connector', 'status'], registers });
  const throttleWaits = new Counter<'connector'>({ name: name('throttle_waits_total'), help: 'Waits because the source throttled (429 or its equivalent)', labelNames: ['connector'], registers });
  const throttleSeconds = new Counter<'connector'>({ name: name('throttle_wait_seconds_total'), help: 'Time spent waiting because the source throttled', labelNames: ['connector'], registers });

  return {
    observer: (connector) => ({
      onApiError: (status) => apiErrors.inc({ connector, status: String(status) }),
      onThrottleWait: (seconds) => {
        throttleWaits.inc({ connector });
        throttleSeconds.inc({ connector }, seconds);
      },
    }),
    onSync(connector, report) {
      syncs.inc({ connector, result: report.result });
      if (report.total.skipped > 0) skipped.inc({ connector }, report.total.skipped);
    },
    onStatus(connector, status, isStale) {
      stale.set({ connector }, isStale ? 1 : 0);
      if (!status) return;
      if (status.lastSuccessAt) lastSuccess.set({ connector }, Date.parse(status.lastSuccessAt) / 1000);
      duration.set({ connector }, status.durationSeconds);
      devices.set({ connector }, status.devicesSeen);
    },
  };
}
