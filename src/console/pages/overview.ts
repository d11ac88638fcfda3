// The overview: logins allowed, refused and failed over the last hour and day, in total and per
// check, as server-drawn SVG charts; and the report sources with their last delivery.
import { html, type SafeHtml } from '../html';
import { stackedBars } from '../charts';
import { ALL, type AuditFeed } from '../audit-feed';
import type { SourceView } from '../ports';

export function overviewPage(feed: AuditFeed, sources: readonly SourceView[] | null): SafeHtml {
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
    sources === null
      ? html`<p>The device store cannot be read right now.</p>`
      : sources.length === 0
        ? html`<p>No device reports are stored.</p>`
        : html`<table id="sources"><tr><th>Source</th><th>Devices</th><th>Last delivery</th></tr>${sources.map(
            (s) => html`<tr><td>${s.source}</td><td>${s.devices}</td><td>${s.lastDelivery}</td></tr>`,
          )}</table>`
  }`;
}
