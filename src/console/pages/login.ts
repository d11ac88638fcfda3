// Sign-in pages: the console (a role token, or the OpenID Connect provider) and the /my/ page (the
// person's own mail credentials).
import { html, type SafeHtml } from '../html';

export function consoleLogin(csrf: string, oidc: boolean, problem?: string, next = ''): SafeHtml {
  return html`${problem ? html`<p class="problem">${problem}</p>` : ''}
<form method="post" action="/console/login"><input type="hidden" name="_csrf" value="${csrf}"><input type="hidden" name="next" value="${next}">
<label>Admin token <input type="password" name="token" size="50" autocomplete="off" required></label> <button type="submit">Sign in</button></form>${
    oidc ? html`<p>or <a href="/console/oidc/start">sign in with your organisation's account</a></p>` : ''
  }`;
}

export function myLogin(csrf: string, problem?: string): SafeHtml {
  return html`<p>Sign in with your own mail address and mail password to see your devices and why mail is blocked on one.</p>${
    problem ? html`<p class="problem">${problem}</p>` : ''
  }<form method="post" action="/my/login"><input type="hidden" name="_csrf" value="${csrf}">
<p><label>Mail address <input name="user" size="40" autocomplete="username" required></label></p>
<p><label>Mail password <input type="password" name="password" size="40" autocomplete="current-password" required></label></p><button type="submit">Sign in</button></form>`;
}
