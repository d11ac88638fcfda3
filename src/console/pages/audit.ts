// The audit page: decisions and admin actions, newest first, filtered by user, device, check, reason
// code, action and time; rows link to their device; new rows arrive over server-sent events.
import { html, queryString, seg, type SafeHtml } from '../html';
import type { AuditEntry } from '../../store/device-store';

export const AUDIT_FILTERS = ['user', 'device', 'check', 'reason', 'action', 'since', 'until', 'ref'] as const;
export type AuditFilter = Partial<Record<(typeof AUDIT_FILTERS)[number], string>>;

export class FilterError extends Error {}

interface Parsed {
  readonly filter: AuditFilter;
  readonly since: number | null;
  readonly until: number | null;
}

/** Validates the query; a malformed value is a FilterError with a sentence (shown, not thrown to the user as a trace). */
export function parseFilter(query: URLSearchParams): Parsed {
  const filter: Record<string, string> = {};
  for (const key of AUDIT_FILTERS) {
    const value = query.get(key)?.trim();
    if (!value) continue;
    if (value.length > 256) throw new FilterError(`the "${key}" filter is longer than 256 characters`);
    filter[key] = value;
  }
  if (filter.action && !['allow', 'deny', 'tempfail', 'admin'].includes(filter.action)) {
    throw new FilterError(`action must be allow, deny, tempfail or admin (got "${filter.action}")`);
  }
  const time = (key: 'since' | 'until'): number | null => {
    const raw = filter[key];
    if (!raw) return null;
    const relative = /^(\d+)\s*([mhd])$/.exec(raw);
    if (relative) return Date.now() - Number(relative[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[relative[2] as 'm' | 'h' | 'd'];
    const at = Date.parse(raw);
    if (Number.isNaN(at)) throw new FilterError(`"${key}" must be an ISO time (2026-12-03T08:00) or an age such as 30m, 2h, 1d (got "${raw}")`);
    return at;
  };
  return { filter, since: time('since'), until: time('until') };
}

type Event = Record<string, unknown>;
const str = (v: unknown): string => (typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v));

export function matches(entry: AuditEntry, p: Parsed): boolean {
  const e = entry.event as Event;
  const f = p.filter;
  if (f.user && str(e.user).toLowerCase() !== f.user.toLowerCase()) return false;
  if (f.device && str(e.deviceId) !== f.device && str(e.subject) !== f.device) return false;
  if (f.ref && str(e.refId).toUpperCase() !== f.ref.toUpperCase()) return false;
  if (f.reason && str(e.reasonCode) !== f.reason) return false;
  if (f.action) {
    if (f.action === 'admin' ? e.msg !== 'admin' : e.action !== f.action) return false;
  }
  if (f.check) {
    const checks = Array.isArray(e.checks) ? (e.checks as { checkId?: unknown; outcome?: unknown }[]) : [];
    if (str(e.decidedBy) !== f.check && !checks.some((c) => c.checkId === f.check && c.outcome !== 'pass' && c.outcome !== 'skipped')) return false;
  }
  if (p.since !== null || p.until !== null) {
    const at = Date.parse(str(e.at));
    if (Number.isNaN(at) || (p.since !== null && at < p.since) || (p.until !== null && at > p.until)) return false;
  }
  return true;
}

/** One table row; the same markup goes out over server-sent events. */
export function auditRow(entry: AuditEntry): SafeHtml {
  const e = entry.event as Event;
  const device = str(e.deviceId) || (e.scope === 'device' ? str(e.subject) : '');
  const what =
    e.msg === 'admin'
      ? html`<td class="admin">admin</td><td>${str(e.operation)}</td><td>by ${str(e.by)}${e.role ? html` (${str(e.role)})` : ''}</td>`
      : html`<td class="${str(e.action)}">${str(e.action)}</td><td>${str(e.reasonCode)}</td><td>${str(e.decidedBy)}</td>`;
  return html`<tr data-id="${entry.id}"><td>${str(e.at)}</td><td>${str(e.user)}</td><td>${
    device ? html`<a href="/console/devices/${seg(device)}">${device}</a>` : ''
  }</td>${what}<td>${e.refId ? html`<a href="/console/decisions/${seg(str(e.refId))}">${str(e.refId)}</a>` : ''}</td><td>${str(e.protocol)}</td></tr>`;
}

export function auditPage(rows: readonly AuditEntry[], p: Parsed, scanned: number, limit: number): SafeHtml {
  const f = p.filter;
  const input = (key: keyof AuditFilter, label: string, placeholder = '') =>
    html`<label>${label} <input name="${key}" value="${f[key] ?? ''}" placeholder="${placeholder}" size="18"></label>`;
  return html`<form method="get" action="/console/audit"><fieldset><legend>Filter</legend>
${input('user', 'user')}${input('device', 'device')}${input('check', 'check')}${input('reason', 'reason code', 'BANNED_APP')}
${input('action', 'action', 'allow / deny / tempfail / admin')}${input('since', 'since', '1h or ISO time')}${input('until', 'until')}
<button type="submit">Filter</button> <a href="/console/audit">clear</a></fieldset></form>
<p>${rows.length} entr${rows.length === 1 ? 'y' : 'ies'} shown (newest first, at most ${limit}) from the newest ${scanned} audit entries. New ones appear live.</p>
<table id="audit" data-stream="/console/audit/events${queryString(f)}"><thead><tr><th>Time</th><th>User</th><th>Device</th><th>Action</th><th>Reason / operation</th><th>Check / who</th><th>Ref</th><th>Protocol</th></tr></thead>
<tbody>${rows.map(auditRow)}</tbody></table>`;
}

/** The page's only script: prepend rows sent as server-sent events (data = one <tr>, already escaped). */
export const AUDIT_SCRIPT = `(function(){
var t=document.getElementById('audit');if(!t||!window.EventSource)return;
var es=new EventSource(t.getAttribute('data-stream'));
es.addEventListener('row',function(ev){var b=t.tBodies[0];var tmp=document.createElement('tbody');tmp.innerHTML=ev.data;
while(tmp.lastChild){b.insertBefore(tmp.lastChild,b.firstChild);}});
})();`;
