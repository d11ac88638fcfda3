// The device page: the stored record, the decision it would get now with every check and the user's
// sentence, exemptions and grace windows, live sessions on every instance, and the helpdesk's actions.
import { html, seg, type SafeHtml } from '../html';
import type { Decision } from '../../policy/decision';
import type { DeviceLookup, Exemption } from '../../store/device-store';
import type { EndedSessionsView, LiveSessionsView } from '../ports';

export interface DeviceView {
  readonly deviceId: string;
  readonly lookup: DeviceLookup;
  readonly decision: Decision | null;
  readonly exemptions: readonly Exemption[];
  readonly sessions: LiveSessionsView;
  /** Which actions the signed-in role may take. */
  readonly may: { readonly exempt: boolean; readonly endSessions: boolean };
  readonly csrf: string;
  readonly notice?: string;
}

function age(iso: string): string {
  const minutes = Math.round((Date.now() - Date.parse(iso)) / 60_000);
  if (Number.isNaN(minutes)) return '';
  if (minutes < 90) return `${minutes} min ago`;
  const hours = Math.round(minutes / 60);
  return hours < 48 ? `${hours} h ago` : `${Math.round(hours / 24)} days ago`;
}

export function checksTable(decision: Decision): SafeHtml {
  return html`<table class="checks"><tr><th>Check</th><th>Mode</th><th>Effective</th><th>Result</th><th>Reason</th><th>Grace until</th></tr>${decision.checks.map(
    (c) => html`<tr data-check="${c.checkId}"><td>${c.checkId}</td><td>${c.mode}</td><td>${c.effectiveMode}</td><td class="${c.outcome}">${c.outcome}${
      c.code ? html` (${c.code})` : ''
    }</td><td>${c.reason ?? ''}</td><td>${c.graceUntil ?? ''}</td></tr>`,
  )}</table>`;
}

export function decisionSummary(decision: Decision): SafeHtml {
  return html`<p>Decision now: <strong class="${decision.action}">${decision.action}</strong> (${decision.reasonCode}${
    decision.decidedBy ? html`, decided by check <strong>${decision.decidedBy}</strong>` : ''
  }), policy ${decision.policyVersion}.</p>${
    decision.message ? html`<p>The user is told:</p><p class="sentence">${decision.message}</p>` : ''
  }${decision.warnings.map((w) => html`<p class="sentence">Warning shown: ${w}</p>`)}`;
}

export function recordTable(lookup: DeviceLookup): SafeHtml {
  if (lookup.state === 'missing') return html`<p class="problem">No report is stored for this device (never reported, or expired).</p>`;
  if (lookup.state === 'malformed') return html`<p class="problem">What is stored for this device is not a valid record (${lookup.detail}); it counts as unknown.</p>`;
  const r = lookup.record;
  return html`<table class="record">
<tr><th>User</th><td>${r.user}</td></tr><tr><th>Platform</th><td>${r.platform}</td></tr><tr><th>OS version</th><td>${r.osVersion}</td></tr>
<tr><th>Managed</th><td>${r.managed ? 'yes' : 'no'}</td></tr><tr><th>Source</th><td>${r.source}</td></tr>
<tr><th>Reported</th><td>${r.reportedAt} (${age(r.reportedAt)})</td></tr><tr><th>Received</th><td>${r.receivedAt}</td></tr>
<tr><th>Apps</th><td>${r.apps === undefined ? html`<em>inventory not visible to the reporter</em>` : html`<ul class="apps">${r.apps.map((a) => html`<li>${a}</li>`)}</ul>`}</td></tr></table>`;
}

export function devicePage(v: DeviceView): SafeHtml {
  const exemptions =
    v.exemptions.length === 0
      ? html`<p>None.</p>`
      : html`<table><tr><th>Scope</th><th>Subject</th><th>Checks</th><th>Until</th><th>Note</th><th>By</th></tr>${v.exemptions.map(
          (e) => html`<tr><td>${e.scope}</td><td>${e.subject}</td><td>${e.checks?.join(', ') ?? 'all'}</td><td>${e.expiresAt}</td><td>${e.note}</td><td>${e.createdBy}</td></tr>`,
        )}</table>`;
  const sessions = html`${
    v.sessions.sessions.length === 0
      ? html`<p>No live sessions.</p>`
      : html`<table class="sessions"><tr><th>Instance</th><th>Session</th><th>Protocol</th><th>User</th><th>From</th></tr>${v.sessions.sessions.map(
          (s) => html`<tr data-instance="${s.instance}"><td>${s.instance}</td><td>${s.id}</td><td>${s.protocol}</td><td>${s.user}</td><td>${s.remoteAddress ?? ''}</td></tr>`,
        )}</table>`
  }${answeredLine(v.sessions.answered, v.sessions.reachedOthers, v.sessions.windowMs)}`;
  const action = (path: string) => `/console/devices/${seg(v.deviceId)}/${path}`;
  const csrf = html`<input type="hidden" name="_csrf" value="${v.csrf}">`;
  const actions = html`<h2>Actions</h2>${
    v.may.exempt
      ? html`<form method="post" action="${action('exempt')}" class="exempt"><fieldset><legend>Exempt this device</legend>${csrf}
<label>for <input name="hours" type="number" min="0.25" step="0.25" value="1" required> hours</label>
<label>note <input name="note" size="40" required placeholder="why, and who asked"></label><button type="submit">Exempt</button></fieldset></form>`
      : html`<p>Your role may not exempt devices.</p>`
  }${
    v.may.endSessions
      ? html`<form method="post" action="${action('end-sessions')}" class="end-sessions">${csrf}<button type="submit">End live sessions</button></form>
<form method="post" action="${action('reevaluate')}" class="reevaluate">${csrf}<button type="submit">Re-evaluate live sessions now</button></form>`
      : ''
  }`;
  return html`${v.notice ? html`<p class="notice">${v.notice}</p>` : ''}<h2>Record</h2>${recordTable(v.lookup)}
${v.decision ? html`<h2>Decision now</h2>${decisionSummary(v.decision)}${checksTable(v.decision)}` : ''}
<h2>Exemptions</h2>${exemptions}<h2>Live sessions</h2>${sessions}${actions}
<p><a href="/console/audit?device=${seg(v.deviceId)}">Audit entries for this device</a></p>`;
}

/** Which instances answered: an instance that is down or slow is missing here, not silently counted as "no sessions". */
function answeredLine(answered: readonly string[], reachedOthers: boolean, windowMs: number): SafeHtml {
  if (!reachedOthers) {
    return html`<p class="problem answered">Only this instance (${answered.join(', ')}) was asked: the device store is unreachable, so the other instances could not be.</p>`;
  }
  return html`<p class="answered">Instances that answered within ${windowMs} ms: ${answered.length === 0 ? 'none' : answered.join(', ')}.</p>`;
}

/** After "end live sessions": how many each instance ended. */
export function endedPage(deviceId: string, v: EndedSessionsView): SafeHtml {
  const rows = v.byInstance.map((row) => html`<tr data-instance="${row.instance}"><td>${row.instance}</td><td>${row.ended}</td></tr>`);
  return html`<p class="notice">${v.total === 1 ? '1 live session was' : `${v.total} live sessions were`} ended.</p>
<table class="ended"><tr><th>Instance</th><th>Sessions ended</th></tr>${rows}</table>${answeredLine(
    v.byInstance.map((row) => row.instance),
    v.reachedOthers,
    v.windowMs,
  )}<p><a href="/console/devices/${seg(deviceId)}">Back to the device</a></p>`;
}
