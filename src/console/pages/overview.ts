// The overview: logins allowed, refused and failed over the last hour and day, in total and per
// check, as server-drawn SVG charts; the report sources with their last delivery, and the inventory
// connectors with their last complete sync.
import { html, type SafeHtml } from '../html';
import { stackedBars } from '../charts';
import { ALL, type AuditFeed } from '../audit-feed';
import type { ConnectorSourceView, SourceView } from '../ports';

/** `sources`: null = the store cannot be read; 'reading' = not read yet (the page does not wait for 10,000 records). */
export function overviewPage(feed: AuditFeed, sources: readonly SourceView[] | null | 'reading', connectors: readonly ConnectorSourceView[] | null = []): SafeHtml {
  const charts = (key: string, label: string) =>
    html`<div class="series"><h3>${label}</h3>${stackedBars(`${label}, last hour (per minute)`, feed.buckets(key, 60, 1), { width: 480 })}${stackedBars(
      `${label}, last day (per 30 minutes)`,
      feed.buckets(key, 48, 30),
      { width: 480 },
    )}</div>`;
  return html`${feed.ready ? '' : html`<p class="notice">Still counting the audit stream; the charts fill in within a few seconds.</p>`}
<h2>Logins</h2>${charts(ALL, 'All logins')}
<h2>Per check</h2><p>Per check: allowed = the check passed, refused = it failed (in any mode), failed = it errored.</p>${feed.seriesKeys().map((k) => charts(k, `Check ${k}`))}
<h2>Sources</h2>${
    sources === 'reading'
      ? html`<p class="notice">The device records are being counted; reload in a few seconds.</p>`
      : sources === null
        ? html`<p>The device store cannot be read right now.</p>`
        : sources.length === 0
          ? html`<p>No device reports are stored.</p>`
          : html`<table id="sources"><tr><th>Source</th><th>Devices</th><th>Last delivery</th></tr>${sources.map(
              (s) => html`<tr><td>${s.source}</td><td>${s.devices}</td><td>${s.lastDelivery}</td></tr>`,
            )}</table>`
  }${connectorsTable(connectors)}`;
}

/**
 * A connector rewrites only the records that changed, so the newest record it wrote says little
 * about whether it still runs: its last complete sync does.
 */
function connectorsTable(connectors: readonly ConnectorSourceView[] | null): SafeHtml {
  if (connectors === null) return html`<h2>Connectors</h2><p>The connectors' sync status cannot be read right now.</p>`;
  if (connectors.length === 0) return html``;
  const state = (c: ConnectorSourceView) =>
    !c.enabled ? 'disabled' : c.stale ? 'stale' : c.held ? 'a sync is held (apply or discard it)' : c.result === undefined ? 'never synced' : c.result === 'failed' ? 'last sync failed' : 'ok';
  return html`<h2>Connectors</h2><table id="connectors"><tr><th>Connector</th><th>Type</th><th>Last complete sync</th><th>Last attempt</th><th>State</th></tr>${connectors.map(
    (c) => html`<tr data-connector="${c.name}"><td>${c.name}</td><td>${c.type}</td><td>${c.lastSuccessAt ?? 'never'}</td><td>${c.lastAttemptAt ? html`${c.lastAttemptAt} (${c.result ?? ''})` : ''}</td><td class="${c.stale || c.result === 'failed' ? 'deny' : ''}">${state(c)}</td></tr>`,
  )}</table>`;
}
