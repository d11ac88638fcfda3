// The page for the person whose mail is blocked: their own devices only, what mailwarden holds about
// each, whether it may sync now, and if not why and what to do.
import { html, type SafeHtml } from '../html';
import type { Decision } from '../../policy/decision';
import type { DeviceRecord } from '../../store/device-store';

export interface MyDevice {
  readonly deviceId: string;
  readonly record: DeviceRecord;
  readonly decision: Decision;
}

export function myPage(user: string, devices: readonly MyDevice[], helpdesk: string): SafeHtml {
  if (devices.length === 0) {
    return html`<p>mailwarden holds no device reports for ${user}. If your mail app is refused, enrol the device in the company portal, then try again. Questions: ${helpdesk}.</p>`;
  }
  return html`<p>What mailwarden holds about your devices (${user}). Questions: ${helpdesk}.</p>${devices.map(
    (d) => html`<section class="my-device" data-device="${d.deviceId}"><h2>${d.record.platform} device ${d.deviceId}</h2>
<p>Last report ${d.record.reportedAt} from ${d.record.source}; OS ${d.record.osVersion}; ${d.record.managed ? 'managed' : 'not managed'}.</p>${
      d.decision.action === 'allow'
        ? html`<p class="notice">Company mail is allowed on this device.</p>${d.decision.warnings.map((w) => html`<p class="sentence">${w}</p>`)}`
        : html`<p class="problem">Company mail is ${d.decision.action === 'deny' ? 'blocked' : 'paused'} on this device.</p><p><strong>What to do:</strong></p><p class="sentence">${
            d.decision.message ?? ''
          }</p>`
    }<details><summary>Apps mailwarden knows of</summary>${
      d.record.apps === undefined ? html`<p>The app list is not visible to your device management.</p>` : html`<ul>${d.record.apps.map((a) => html`<li>${a}</li>`)}</ul>`
    }</details></section>`,
  )}`;
}
