// The policy page: the active version and its checks with modes, brake and kill switch (with a
// confirmation step), and the candidate upload whose simulation is shown before anything changes.
import { html, seg, type SafeHtml } from '../html';
import type { PolicyView, Simulation } from '../ports';
import type { SimulationRow } from '../../policy/simulate';

export function policyPage(p: PolicyView, killSwitch: boolean, csrf: string, mayKill: boolean, notice?: string): SafeHtml {
  const hidden = html`<input type="hidden" name="_csrf" value="${csrf}">`;
  return html`${notice ? html`<p class="notice">${notice}</p>` : ''}
<p>Active policy <strong>${p.version}</strong> from ${p.file}${p.reportOnly ? html` — <strong>reportOnly: every check reports only</strong>` : ''}.</p>
<table id="checks"><tr><th>Check</th><th>Plugin</th><th>Mode</th><th>Action</th><th>Platforms</th><th>Grace (h)</th><th>Brake</th></tr>${p.checks.map(
    (c) => html`<tr><td>${c.id}</td><td>${c.plugin}</td><td>${c.mode}</td><td>${c.action}</td><td>${c.platforms?.join(', ') ?? 'all'}</td><td>${c.graceHours}</td><td>${
      p.brakeReportOnly.includes(c.id) ? html`<strong class="deny">tripped: report only</strong>` : 'ok'
    }</td></tr>`,
  )}</table>
<h2>Kill switch</h2><p id="kill-switch-state">The kill switch is <strong>${killSwitch ? 'ON: every check reports only, on every instance' : 'off'}</strong>.</p>${
    mayKill
      ? html`<form method="post" action="/console/policy/kill-switch">${hidden}<input type="hidden" name="on" value="${killSwitch ? 'off' : 'on'}">
<button type="submit">${killSwitch ? 'Turn the kill switch off…' : 'Turn the kill switch on…'}</button></form>`
      : html`<p>Only an admin may change the kill switch.</p>`
  }
<h2>Try a candidate policy</h2><p>Nothing is activated: the candidate is simulated against every known device.</p>
<form method="post" action="/console/policy/candidate" enctype="multipart/form-data">${hidden}
<p><label>policy file <input type="file" name="file" accept=".yaml,.yml,.json"></label></p>
<p><label>or paste it<br><textarea name="text" rows="8" cols="90"></textarea></label></p><button type="submit">Simulate</button></form>`;
}

export function killSwitchConfirm(on: boolean, csrf: string): SafeHtml {
  return html`<p class="problem">${
    on
      ? 'Turning the kill switch ON puts every check in report mode on every instance: every device is allowed until it is turned off.'
      : 'Turning the kill switch off puts every check back in its configured mode: devices that fail an enforcing check are refused again.'
  }</p><form method="post" action="/console/policy/kill-switch"><input type="hidden" name="_csrf" value="${csrf}">
<input type="hidden" name="on" value="${on ? 'on' : 'off'}"><input type="hidden" name="confirm" value="yes">
<button type="submit">Yes, turn it ${on ? 'on' : 'off'}</button> <a href="/console/policy">Cancel</a></form>`;
}

function rows(title: string, list: readonly SimulationRow[]): SafeHtml {
  return html`<h3>${title}</h3><table class="simulation"><tr><th></th><th>Denied now</th><th>Denied under the candidate</th><th>Newly denied</th><th>Newly allowed</th></tr>${list.map(
    (r) => html`<tr><td>${r.key}</td><td>${r.deniedNow}</td><td>${r.deniedCandidate}</td><td class="${r.newlyDenied > 0 ? 'deny' : ''}">${r.newlyDenied}</td><td>${r.newlyAllowed}</td></tr>`,
  )}</table>`;
}

export function simulationPage(sim: Simulation): SafeHtml {
  return html`<p>Candidate <strong>${sim.candidateVersion}</strong> against ${sim.devices} known devices (policy in force: ${sim.currentVersion ?? 'none'}). Nothing has been activated.</p>${
    sim.blastRadius && !sim.blastRadius.ok ? html`<p class="problem">The blast-radius guard would refuse it: ${sim.blastRadius.message ?? ''}</p>` : ''
  }${rows('All devices', [sim.total])}${rows('Per check', sim.byCheck)}${rows('Per platform', sim.byPlatform)}
<h3>Newly denied devices (${sim.newlyDenied.length})</h3>${
    sim.newlyDenied.length === 0
      ? html`<p>None.</p>`
      : html`<table id="newly-denied"><tr><th>Device</th><th>User</th><th>Platform</th><th>Check</th><th>Reason</th></tr>${sim.newlyDenied.map(
          (d) => html`<tr><td><a href="/console/devices/${seg(d.deviceId)}">${d.deviceId}</a></td><td>${d.user}</td><td>${d.platform}</td><td>${d.checkId ?? ''}</td><td>${d.reasonCode}</td></tr>`,
        )}</table>`
  }<h3>Newly allowed devices (${sim.newlyAllowed.length})</h3>${sim.newlyAllowed.map((d) => html`${d.deviceId} (${d.platform}) `)}
<p>To activate it, install it as the policy file on every instance; mailwarden reloads it (and the blast-radius guard checks it again). <a href="/console/policy">Back to the policy</a></p>`;
}

export function candidateErrors(issues: readonly string[]): SafeHtml {
  return html`<p class="problem">The candidate policy is not valid; nothing was simulated or activated.</p><pre class="errors">${issues.join('\n')}</pre><p><a href="/console/policy">Back to the policy</a></p>`;
}
