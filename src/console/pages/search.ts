// Search by reference id, user or device id, and the decision page a reference id opens.
import { html, seg, type SafeHtml } from '../html';
import type { AuditEntry, DeviceLookup } from '../../store/device-store';

/** MW- followed by 8 Crockford base32 characters (src/policy/decider.ts newRefId). */
export const REF_ID = /^MW-[0-9A-HJKMNP-TV-Z]{8}$/i;

export function searchForm(q = ''): SafeHtml {
  return html`<form method="get" action="/console/search"><label>Reference id, user or device id
<input name="q" value="${q}" size="40" autofocus></label> <button type="submit">Search</button></form>`;
}

export function userResults(user: string, devices: readonly { deviceId: string; lookup: DeviceLookup }[]): SafeHtml {
  return html`<h2>Devices of ${user}</h2>${
    devices.length === 0
      ? html`<p>No devices are stored for this user.</p>`
      : html`<table><tr><th>Device</th><th>Platform</th><th>Last report</th></tr>${devices.map(
          ({ deviceId, lookup }) =>
            html`<tr><td><a href="/console/devices/${seg(deviceId)}">${deviceId}</a></td><td>${lookup.state === 'found' ? lookup.record.platform : lookup.state}</td><td>${
              lookup.state === 'found' ? lookup.record.reportedAt : ''
            }</td></tr>`,
        )}</table>`
  }`;
}

export function decisionPage(entry: AuditEntry): SafeHtml {
  const e = entry.event as Record<string, unknown>;
  const text = (v: unknown) => (typeof v === 'string' ? v : '');
  const checks = Array.isArray(e.checks) ? (e.checks as Record<string, unknown>[]) : [];
  const device = text(e.deviceId);
  return html`<p>Login of <strong>${text(e.user)}</strong> over ${text(e.protocol)} at ${text(e.at)}${
    device ? html` from device <a href="/console/devices/${seg(device)}">${device}</a>` : ' without a device id'
  } (identity: ${text(e.identitySource)}, ${text(e.identityStrength)}).</p>
<p>Decision: <strong class="${text(e.action)}">${text(e.action)}</strong> (${text(e.reasonCode)})${
    e.decidedBy ? html`, decided by check <strong>${text(e.decidedBy)}</strong>` : ''
  }, policy ${text(e.policyVersion)}, trigger ${text(e.trigger)}.</p>
<table class="checks"><tr><th>Check</th><th>Mode</th><th>Effective</th><th>Result</th><th>Reason</th><th>User sentence</th></tr>${checks.map(
    (c) => html`<tr data-check="${text(c.checkId)}"><td>${text(c.checkId)}</td><td>${text(c.mode)}</td><td>${text(c.effectiveMode)}</td><td class="${text(c.outcome)}">${text(
      c.outcome,
    )}${c.code ? html` (${text(c.code)})` : ''}</td><td>${text(c.reason)}</td><td>${text(c.message)}</td></tr>`,
  )}</table>${device ? html`<p><a href="/console/devices/${seg(device)}">What this device would get now</a></p>` : ''}`;
}
