// Charts drawn on the server as inline SVG (no script, no third-party code): stacked bars of
// allowed / refused / failed logins per time bucket, so a rollout going wrong shows at a glance.
import { html, type SafeHtml } from './html';

export interface Bucket {
  /** ms epoch of the bucket's start. */
  readonly start: number;
  readonly allowed: number;
  readonly refused: number;
  readonly failed: number;
}

const SERIES = [
  { key: 'allowed', colour: '#3b8a4a', label: 'allowed' },
  { key: 'refused', colour: '#c0392b', label: 'refused' },
  { key: 'failed', colour: '#d68910', label: 'failed' },
] as const;

function clock(ms: number): string {
  return new Date(ms).toISOString().slice(11, 16);
}

/** A stacked bar chart; `title` labels it for screen readers too. */
export function stackedBars(title: string, buckets: readonly Bucket[], opts: { width?: number; height?: number } = {}): SafeHtml {
  const width = opts.width ?? 600;
  const height = opts.height ?? 120;
  const axis = 18;
  const plot = height - axis;
  const max = Math.max(1, ...buckets.map((b) => b.allowed + b.refused + b.failed));
  const step = buckets.length > 0 ? width / buckets.length : width;
  const bar = Math.max(1, step - 1);
  const rects: SafeHtml[] = [];
  buckets.forEach((b, i) => {
    let y = plot;
    for (const s of SERIES) {
      const value = b[s.key];
      if (value === 0) continue;
      const h = (value / max) * (plot - 4);
      y -= h;
      rects.push(
        html`<rect x="${(i * step).toFixed(1)}" y="${y.toFixed(1)}" width="${bar.toFixed(1)}" height="${h.toFixed(1)}" fill="${s.colour}"><title>${clock(b.start)} ${s.label}: ${value}</title></rect>`,
      );
    }
  });
  const total = (key: (typeof SERIES)[number]['key']) => buckets.reduce((n, b) => n + b[key], 0);
  const ticks = buckets.length > 0 ? [0, Math.floor(buckets.length / 2), buckets.length - 1] : [];
  return html`<figure class="chart"><svg role="img" aria-label="${title}" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" xmlns="http://www.w3.org/2000/svg">
<line x1="0" y1="${plot}" x2="${width}" y2="${plot}" stroke="#999"/>${rects}${ticks.map(
    (i) => html`<text x="${Math.min(width - 30, i * step).toFixed(1)}" y="${height - 4}" font-size="11" fill="#555">${clock(buckets[i]!.start)}</text>`,
  )}<text x="${width - 4}" y="12" font-size="11" fill="#555" text-anchor="end">max ${max}</text></svg>
<figcaption>${title}: ${SERIES.map((s) => html`<span class="key" style="color:${s.colour}">■</span> ${s.label} ${total(s.key)} `)}</figcaption></figure>`;
}
