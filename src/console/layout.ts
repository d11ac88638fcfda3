// The console's page frame: head, inline styles, navigation by role, and the error page. No
// external stylesheet, font or script: the console works without any third-party network access.
import { html, SafeHtml } from './html';
import type { ConsoleSession } from './session';

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#1f3a5f;color:#fff;padding:.5em 1em;display:flex;gap:1.2em;align-items:center;flex-wrap:wrap}
header a{color:#fff;text-decoration:none}header .who{margin-left:auto;font-size:.9em}
header form{display:inline}header button{background:none;border:1px solid #fff;color:#fff;cursor:pointer}
main{padding:1em 1.5em;max-width:1200px}
table{border-collapse:collapse;margin:.5em 0 1em;background:#fff}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}th{background:#eef}
.deny,.fail{color:#a93226;font-weight:bold}.allow,.pass{color:#1e8449}.tempfail,.error{color:#b9770e}
.sentence{background:#fff3cd;border:1px solid #e0c068;padding:.6em;margin:.5em 0}
.notice{background:#e8f4e8;border:1px solid #8c8;padding:.6em}.problem{background:#fdecea;border:1px solid #d88;padding:.6em}
pre.errors{background:#fdecea;padding:.6em;white-space:pre-wrap}
fieldset{border:1px solid #ccc;margin:.5em 0;background:#fff}label{display:inline-block;margin:.2em .6em .2em 0}
.chart{display:inline-block;margin:0 1em 1em 0}.chart figcaption{font-size:.85em}
`;

export interface Frame {
  readonly title: string;
  readonly session?: ConsoleSession | null;
  readonly csrf?: string;
  /** Extra script URL (same origin), e.g. the live audit updates. */
  readonly script?: string;
}

function nav(session: ConsoleSession | null | undefined, csrf: string | undefined): SafeHtml {
  if (!session) return html``;
  if (session.role === 'self') {
    return html`<a href="/my/">My devices</a><span class="who">${session.name}
<form method="post" action="/my/logout"><input type="hidden" name="_csrf" value="${csrf}"><button>Sign out</button></form></span>`;
  }
  return html`<a href="/console/overview">Overview</a><a href="/console/search">Search</a><a href="/console/audit">Audit</a><a href="/console/policy">Policy</a>
<span class="who">${session.name} (${session.role})
<form method="post" action="/console/logout"><input type="hidden" name="_csrf" value="${csrf}"><button>Sign out</button></form></span>`;
}

export function page(frame: Frame, body: SafeHtml): string {
  return html`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>${frame.title} · mailwarden</title><style>${new SafeHtml(STYLE)}</style>${
    frame.script ? html`<script src="${frame.script}" defer></script>` : ''
  }</head><body><header><strong>mailwarden</strong>${nav(frame.session, frame.csrf)}</header><main><h1>${frame.title}</h1>${body}</main></body></html>`.value;
}

/** A page for bad input or a missing thing: a sentence, never a stack trace. */
export function errorPage(title: string, message: string, frame: Omit<Frame, 'title'> = {}): string {
  const home = frame.session?.role === 'self' ? '/my/' : '/console/search';
  return page({ ...frame, title }, html`<p class="problem">${message}</p><p><a href="${home}">Back to the console</a></p>`);
}
