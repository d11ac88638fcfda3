// The web console, served by the admin listener under /console/ (helpdesk and policy owner) and
// /my/ (the blocked person): routing, sign-in, role checks, CSRF and same-origin checks on every
// state-changing form, and error pages that never show a stack trace.
import type http from 'node:http';
import { errorText } from '../core/errors';
import { roleAllows, type Permission, type Principal, type Role } from '../admin/roles';
import type { Exemption } from '../store/device-store';
import { AuditFeed } from './audit-feed';
import { FormError, readForm, type Form } from './forms';
import { html, seg, type SafeHtml } from './html';
import { errorPage, page } from './layout';
import { OidcClient, OidcError, type OidcPending } from './oidc';
import { CandidateInvalidError, type ConsoleServices, type SourceView } from './ports';
import { SESSION_COOKIE, SessionKeeper, cookieHeader, isSecure, readCookie, sameOrigin, type ConsoleSession } from './session';
import { AUDIT_SCRIPT, FilterError, auditPage, auditRow, matches, parseFilter } from './pages/audit';
import { devicePage, endedPage } from './pages/device';
import { consoleLogin, myLogin } from './pages/login';
import { myPage, type MyDevice } from './pages/my';
import { overviewPage } from './pages/overview';
import { candidateErrors, killSwitchConfirm, policyPage, simulationPage } from './pages/policy';
import { REF_ID, decisionPage, searchForm, userResults } from './pages/search';

const PRE_COOKIE = 'mw_pre';
const OIDC_COOKIE = 'mw_oidc';
const FORM_LIMIT = 16 * 1024;
const UPLOAD_LIMIT = 1024 * 1024;
const EXEMPTION_MAX_HOURS = 366 * 24;
const AUDIT_ROWS = 200;
const SOURCES_MAX_AGE_MS = 30_000;
/**
 * How long the overview waits for the sources when they must be read (the first view, then at
 * most every 30 s in the background): reading 10,000 device records takes longer than a page may
 * (bench:console: the first overview after start took 1.9-2.1 s before this bound).
 */
const SOURCES_WAIT_MS = 50;
/** Until the feed has read the last day, the audit page searches only this many newest entries. */
const AUDIT_EARLY_ENTRIES = 2000;

/** Console roles: the reporter and metrics tokens have no pages. */
const CONSOLE_ROLES: readonly Role[] = ['viewer', 'helpdesk', 'admin'];

const SECURITY_HEADERS = {
  // Same-origin script only (the audit page's one file), no framing, forms only to the console.
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  // same-origin, not no-referrer: under no-referrer Chromium sends `Origin: null` on the console's own
  // form posts (Fetch: a non-CORS request's origin is serialised as null then), which sameOrigin refuses.
  'referrer-policy': 'same-origin',
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
};

/** Notices shown after an action (chosen by key, never reflected from the query). */
const NOTICES: Record<string, string> = {
  exempted: 'The device is exempted; its live sessions are re-evaluated and its next login is allowed.',
  reevaluated: 'Every instance is re-evaluating the live sessions of this device.',
  'kill-on': 'The kill switch is ON.',
  'kill-off': 'The kill switch is off.',
};

const TIMED_OUT = Symbol('timed out');

/** The value if it comes within `ms`, else TIMED_OUT (the work goes on; a later view gets it). */
function withinMs<T>(value: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<typeof TIMED_OUT>((resolve) => (timer = setTimeout(() => resolve(TIMED_OUT), ms)));
  return Promise.race([value, late]).finally(() => clearTimeout(timer));
}

class PageError extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    message: string,
  ) {
    super(message);
  }
}

/** No (valid) session: a page view is sent to the sign-in page. */
class SignInNeeded extends PageError {
  constructor() {
    super(401, 'Sign in', 'sign in first');
  }
}

interface Request {
  readonly req: http.IncomingMessage;
  readonly res: http.ServerResponse;
  readonly url: URL;
  readonly method: string;
}

export interface WebConsole {
  /** Answers the request if it is for /console or /my; false = not the console's. */
  handle(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<boolean>;
  readonly feed: AuditFeed;
  close(): Promise<void>;
}

export function createConsole(services: ConsoleServices, options: { pollMs?: number } = {}): WebConsole {
  const keeper = new SessionKeeper();
  const feed = new AuditFeed(services, services.log, () => services.config().auditScanEntries);
  feed.start(options.pollMs ?? 1000);
  const streams = new Set<http.ServerResponse>();
  let oidc: { issuer: string; client: OidcClient } | null = null;
  let sources: { at: number; value: Promise<SourceView[] | null> } | null = null;

  const oidcClient = (): OidcClient | null => {
    const config = services.config().oidc;
    if (!config) return null;
    if (oidc?.issuer !== config.issuer) oidc = { issuer: config.issuer, client: new OidcClient(config) };
    return oidc.client;
  };

  function send(r: Request, status: number, body: string, headers: Record<string, string | string[]> = {}): void {
    r.res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body), ...SECURITY_HEADERS, ...headers });
    r.res.end(body);
  }
  const redirect = (r: Request, location: string, headers: Record<string, string | string[]> = {}) =>
    send(r, 303, '', { location, ...headers });

  const secure = (r: Request) => isSecure(r.req, services.config().publicUrl, services.config().secureCookies);
  const sessionCookie = (r: Request, s: ConsoleSession | null) =>
    cookieHeader(SESSION_COOKIE, s ? keeper.seal(s) : '', { secure: secure(r), maxAgeSeconds: s ? (s.expires - Date.now()) / 1000 : 0 });

  /** The anonymous pre-session whose CSRF token protects the sign-in forms (login CSRF). */
  function preSession(r: Request): { session: ConsoleSession; cookie?: string } {
    const existing = keeper.read(r.req, PRE_COOKIE);
    if (existing) return { session: existing };
    const session = keeper.create('', 'self', 'mail', 30);
    return { session, cookie: cookieHeader(PRE_COOKIE, keeper.seal(session), { secure: secure(r), maxAgeSeconds: 1800 }) };
  }

  function currentSession(r: Request): ConsoleSession | null {
    const s = keeper.read(r.req);
    if (!s) return null;
    // A token removed from the configuration ends its console sessions at once.
    if (s.via === 'token' && s.role !== 'self' && !services.tokenExists(s.name, s.role)) return null;
    return s;
  }

  function staffSession(r: Request, permission: Permission): ConsoleSession & { role: Role } {
    const s = currentSession(r);
    if (!s || s.role === 'self') throw new SignInNeeded();
    if (!roleAllows(s.role, permission)) {
      throw new PageError(403, 'Not allowed', `your role (${s.role}) may not do this; it needs ${permission}`);
    }
    return s as ConsoleSession & { role: Role };
  }

  /** Every POST: from the console's own pages (Fetch Metadata / Origin) and with the session's CSRF token. */
  async function checkedForm(r: Request, session: ConsoleSession, limit = FORM_LIMIT): Promise<Form> {
    if (!sameOrigin(r.req)) throw new PageError(403, 'Refused', 'this form was not sent from the console\'s own pages');
    const form = await readForm(r.req, limit);
    if (!keeper.csrfValid(session, form.get('_csrf'))) throw new PageError(403, 'Refused', 'the form has expired or was not sent from the console; reload the page and try again');
    return form;
  }

  const principal = (s: ConsoleSession & { role: Role }): Principal => ({ name: s.name, role: s.role });
  const audit = (operation: string, s: ConsoleSession & { role: Role }, fields: Record<string, unknown>) =>
    services.audit(operation, principal(s), { via: 'console', ...fields });

  function render(r: Request, title: string, body: SafeHtml, s: ConsoleSession | null, extra: { status?: number; script?: string; headers?: Record<string, string | string[]> } = {}): void {
    send(r, extra.status ?? 200, page({ title, session: s, csrf: s ? keeper.csrfToken(s) : undefined, script: extra.script }, body), extra.headers);
  }

  function loadSources(): Promise<SourceView[] | null> {
    if (!sources || Date.now() - sources.at > SOURCES_MAX_AGE_MS) {
      const value = services.sources().catch((err: unknown) => {
        services.log.warn('console: sources could not be read', { error: errorText(err) });
        return null;
      });
      // Serve the previous answer while a new one is read (the overview must not wait for 10,000 records).
      const previous = sources?.value;
      sources = { at: Date.now(), value };
      if (previous) return previous;
    }
    return sources.value;
  }

  // ------------------------------------------------------------------ staff pages

  async function consoleLoginPost(r: Request): Promise<void> {
    const pre = preSession(r).session;
    const form = await checkedForm(r, pre);
    const p = services.principalFor(form.get('token')?.trim() ?? '');
    const minutes = services.config().sessionMinutes;
    if (!p || !CONSOLE_ROLES.includes(p.role)) {
      const problem = p ? `a ${p.role} token has no console access (viewer, helpdesk or admin)` : 'that token is not valid';
      render(r, 'Sign in', consoleLogin(keeper.csrfToken(pre), oidcClient() !== null, problem), null, { status: 401 });
      return;
    }
    const session = keeper.create(p.name, p.role, 'token', minutes);
    await services.audit('console-sign-in', p, { via: 'console' });
    const next = form.get('next') ?? '';
    redirect(r, next.startsWith('/console/') ? next : '/console/overview', { 'set-cookie': sessionCookie(r, session) });
  }

  async function oidcStart(r: Request): Promise<void> {
    const client = oidcClient();
    if (!client) throw new PageError(404, 'Not found', 'OpenID Connect sign-in is not configured');
    const { url, pending } = await client.start(redirectUri(r));
    // Lax, not Strict: the provider's redirect back is a cross-site navigation (RFC 6265bis §5.5.7.1).
    const cookie = `${OIDC_COOKIE}=${keeper.seal(pending)}; Path=/console/oidc; HttpOnly; SameSite=Lax; Max-Age=600${secure(r) ? '; Secure' : ''}`;
    redirect(r, url, { 'set-cookie': cookie });
  }

  function redirectUri(r: Request): string {
    const base = services.config().publicUrl ?? `${secure(r) ? 'https' : 'http'}://${r.req.headers.host ?? 'localhost'}`;
    return `${base.replace(/\/$/, '')}/console/oidc/callback`;
  }

  async function oidcCallback(r: Request): Promise<void> {
    const client = oidcClient();
    if (!client) throw new PageError(404, 'Not found', 'OpenID Connect sign-in is not configured');
    const pending = keeper.unseal<OidcPending>(readCookie(r.req, OIDC_COOKIE));
    let who: { name: string; role: Role };
    try {
      who = await client.finish(r.url.searchParams, pending, redirectUri(r));
    } catch (err) {
      if (err instanceof OidcError) throw new PageError(401, 'Sign-in refused', err.message);
      throw err;
    }
    if (!CONSOLE_ROLES.includes(who.role)) throw new PageError(403, 'Sign-in refused', `the role ${who.role} has no console access`);
    const session = keeper.create(who.name, who.role, 'oidc', services.config().sessionMinutes);
    await services.audit('console-sign-in', who, { via: 'console-oidc' });
    // A page, not a redirect: after the provider's cross-site redirect a SameSite=Strict cookie would
    // not be sent on a redirected request; a same-site navigation from this page sends it.
    const clear = `${OIDC_COOKIE}=; Path=/console/oidc; HttpOnly; SameSite=Lax; Max-Age=0`;
    send(r, 200, page({ title: 'Signed in' }, html`<meta http-equiv="refresh" content="0;url=/console/overview"><p>Signed in as ${who.name} (${who.role}). <a href="/console/overview">Continue</a></p>`), {
      'set-cookie': [sessionCookie(r, session), clear],
    });
  }

  async function overview(r: Request): Promise<void> {
    const s = staffSession(r, 'audit:read');
    const connectors = services.connectors().catch((err: unknown) => {
      services.log.warn('console: connector statuses could not be read', { error: errorText(err) });
      return null;
    });
    const [sourceRows, connectorRows] = await Promise.all([withinMs(loadSources(), SOURCES_WAIT_MS), connectors]);
    render(r, 'Overview', overviewPage(feed, sourceRows === TIMED_OUT ? 'reading' : sourceRows, connectorRows), s);
  }

  async function search(r: Request): Promise<void> {
    const s = staffSession(r, 'devices:read');
    const q = (r.url.searchParams.get('q') ?? '').trim();
    if (q === '') return render(r, 'Search', searchForm(), s);
    if (q.length > 256) throw new PageError(400, 'Search', 'the search is longer than 256 characters');
    if (REF_ID.test(q)) return redirect(r, `/console/decisions/${seg(q.toUpperCase())}`);
    const lookup = await services.getDevice(q);
    if (lookup.state !== 'missing') return redirect(r, `/console/devices/${seg(q)}`);
    const ids = await services.listUserDevices(q);
    const devices = await Promise.all(ids.map(async (deviceId) => ({ deviceId, lookup: await services.getDevice(deviceId) })));
    render(r, 'Search', html`${searchForm(q)}${
      ids.length === 0 && !q.includes('@') ? html`<p>No device, user or reference id matches ${q}.</p>` : userResults(q, devices)
    }`, s);
  }

  async function decision(r: Request, refId: string): Promise<void> {
    const s = staffSession(r, 'audit:read');
    if (!REF_ID.test(refId)) throw new PageError(400, 'Decision', `${refId} is not a reference id (MW- and 8 characters)`);
    const { entry } = await feed.findRef(refId);
    if (!entry) {
      throw new PageError(404, 'Decision', `no decision with reference ${refId} in the audit stream (it keeps the newest store.auditMaxLen entries)`);
    }
    render(r, `Decision ${refId}`, decisionPage(entry), s);
  }

  async function device(r: Request, deviceId: string): Promise<void> {
    const s = staffSession(r, 'devices:read');
    const lookup = await services.getDevice(deviceId);
    if (lookup.state === 'missing' && (await services.getExemptions(deviceId, '')).length === 0) {
      throw new PageError(404, 'Device', `no report is stored for device ${deviceId} (never reported, or expired)`);
    }
    const user = lookup.state === 'found' ? lookup.record.user : '';
    const [exemptions, decisionNow, sessions] = await Promise.all([
      services.getExemptions(deviceId, user),
      lookup.state === 'found' ? services.decideForDevice(deviceId, user) : Promise.resolve(null),
      services.liveSessions(deviceId),
    ]);
    const notice = NOTICES[r.url.searchParams.get('done') ?? ''];
    const body = devicePage({
      deviceId,
      lookup,
      decision: decisionNow,
      exemptions,
      sessions,
      may: { exempt: roleAllows(s.role, 'exemptions:write'), endSessions: roleAllows(s.role, 'sessions:end') },
      csrf: keeper.csrfToken(s),
      notice,
    });
    render(r, `Device ${deviceId}`, body, s);
  }

  async function deviceAction(r: Request, deviceId: string, action: string): Promise<void> {
    const permission: Permission = action === 'exempt' ? 'exemptions:write' : 'sessions:end';
    const s = staffSession(r, permission);
    const form = await checkedForm(r, s);
    const lookup = await services.getDevice(deviceId);
    const user = lookup.state === 'found' ? lookup.record.user : '';
    if (action === 'exempt') {
      const hours = Number(form.get('hours'));
      const note = (form.get('note') ?? '').trim();
      if (!Number.isFinite(hours) || hours <= 0 || hours > EXEMPTION_MAX_HOURS) throw new PageError(400, 'Exempt', `hours must be a number above 0 and at most ${EXEMPTION_MAX_HOURS}`);
      if (note === '' || note.length > 500) throw new PageError(400, 'Exempt', 'a note (why, and who asked; at most 500 characters) is required');
      const now = Date.now();
      const exemption: Exemption = {
        scope: 'device',
        subject: deviceId,
        expiresAt: new Date(now + hours * 3_600_000).toISOString(),
        note,
        createdBy: s.name,
        createdAt: new Date(now).toISOString(),
      };
      await services.putExemption(exemption);
      await audit('exemption-set', s, { scope: 'device', subject: deviceId, deviceId, user, expiresAt: exemption.expiresAt, note });
      return redirect(r, `/console/devices/${seg(deviceId)}?done=exempted`);
    }
    if (action === 'end-sessions') {
      const ended = await services.endSessions(deviceId, principal(s));
      const byInstance = Object.fromEntries(ended.byInstance.map((row) => [row.instance, row.ended]));
      await audit('sessions-ended', s, { deviceId, user, ended: ended.total, byInstance, reachedOthers: ended.reachedOthers });
      // A page, not a redirect: the counts per instance are shown once, never reflected from a query.
      return render(r, `Device ${deviceId}`, endedPage(deviceId, ended), s);
    }
    await services.reevaluate(deviceId, user);
    await audit('re-evaluate', s, { deviceId, user });
    redirect(r, `/console/devices/${seg(deviceId)}?done=reevaluated`);
  }

  async function auditView(r: Request): Promise<void> {
    const s = staffSession(r, 'audit:read');
    const parsed = parseFilterOrPage(r.url.searchParams);
    // Right after start the feed is still reading the last day: the newest entries straight from the
    // store, rather than a wait of seconds (or the oldest of the day shown as the newest).
    const newest = feed.ready ? (await feed.refresh(), feed.newest()) : [...(await services.readAuditLast(AUDIT_EARLY_ENTRIES))].reverse();
    const rows = [];
    for (const entry of newest) {
      if (rows.length >= AUDIT_ROWS) break;
      if (matches(entry, parsed)) rows.push(entry);
    }
    render(r, 'Audit', auditPage(rows, parsed, newest.length, AUDIT_ROWS), s, { script: '/console/assets/audit.js' });
  }

  function auditEvents(r: Request): void {
    staffSession(r, 'audit:read');
    const parsed = parseFilterOrPage(r.url.searchParams);
    r.res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream; charset=utf-8', connection: 'keep-alive' });
    r.res.write(': live audit entries\n\n');
    streams.add(r.res);
    const unsubscribe = feed.subscribe((entries) => {
      for (const entry of entries) {
        if (!matches(entry, parsed)) continue;
        // One `data:` line per line of markup (the HTML Standard's event-stream format).
        const data = auditRow(entry).value.split('\n').map((line) => `data: ${line}`).join('\n');
        r.res.write(`event: row\nid: ${entry.id}\n${data}\n\n`);
      }
    });
    const heartbeat = setInterval(() => r.res.write(': keep-alive\n\n'), 15_000);
    heartbeat.unref();
    r.res.on('close', () => {
      unsubscribe();
      clearInterval(heartbeat);
      streams.delete(r.res);
    });
  }

  function parseFilterOrPage(query: URLSearchParams) {
    try {
      return parseFilter(query);
    } catch (err) {
      if (err instanceof FilterError) throw new PageError(400, 'Audit', err.message);
      throw err;
    }
  }

  async function policy(r: Request): Promise<void> {
    const s = staffSession(r, 'policy:read');
    const notice = NOTICES[r.url.searchParams.get('done') ?? ''];
    render(r, 'Policy', policyPage(services.policy(), await services.killSwitch(), keeper.csrfToken(s), roleAllows(s.role, 'kill-switch:write'), notice), s);
  }

  async function killSwitch(r: Request): Promise<void> {
    const s = staffSession(r, 'kill-switch:write');
    const form = await checkedForm(r, s);
    const on = form.get('on') === 'on';
    if (form.get('confirm') !== 'yes') return render(r, 'Confirm the kill switch', killSwitchConfirm(on, keeper.csrfToken(s)), s);
    await services.setKillSwitch(on, `${s.name} (console)`);
    await audit('kill-switch', s, { on });
    redirect(r, `/console/policy?done=${on ? 'kill-on' : 'kill-off'}`);
  }

  async function candidate(r: Request): Promise<void> {
    const s = staffSession(r, 'policy:read');
    const form = await checkedForm(r, s, UPLOAD_LIMIT);
    const text = (form.get('file') ?? '').trim() !== '' ? form.get('file')! : (form.get('text') ?? '');
    if (text.trim() === '') throw new PageError(400, 'Candidate policy', 'choose a policy file or paste one');
    try {
      const sim = await services.simulate(text);
      await audit('policy-simulated', s, { candidateVersion: sim.candidateVersion, newlyDenied: sim.newlyDenied.length });
      render(r, 'Candidate policy', simulationPage(sim), s);
    } catch (err) {
      if (!(err instanceof CandidateInvalidError)) throw err;
      render(r, 'Candidate policy', candidateErrors(err.issues), s, { status: 400 });
    }
  }

  // ------------------------------------------------------------------ the blocked person's page

  function selfSession(r: Request): ConsoleSession | null {
    const s = currentSession(r);
    return s && s.role === 'self' ? s : null;
  }

  async function my(r: Request): Promise<void> {
    if (!services.config().selfService) throw new PageError(404, 'Not found', 'this page is not enabled');
    const s = selfSession(r);
    if (!s) return redirect(r, '/my/login');
    const ids = await services.listUserDevices(s.name);
    const lookups = await Promise.all(ids.map((id) => services.getDevice(id)));
    const devices: MyDevice[] = [];
    for (const lookup of lookups) {
      // Only records that name this person: an index entry never shows someone else's device.
      if (lookup.state !== 'found' || lookup.record.user.toLowerCase() !== s.name.toLowerCase()) continue;
      devices.push({ deviceId: lookup.record.deviceId, record: lookup.record, decision: await services.decideForDevice(lookup.record.deviceId, lookup.record.user) });
    }
    render(r, 'My devices', myPage(s.name, devices, services.policy().helpdesk), s);
  }

  async function myLoginPost(r: Request): Promise<void> {
    const pre = preSession(r).session;
    const form = await checkedForm(r, pre);
    const user = (form.get('user') ?? '').trim();
    const password = form.get('password') ?? '';
    const again = (problem: string, status: number) => render(r, 'Sign in', myLogin(keeper.csrfToken(pre), problem), null, { status });
    if (user === '' || password === '' || user.length > 256 || /[\s\u0000-\u001f{}]/.test(user)) return again('enter your mail address and mail password', 400);
    const checked = await services.checkMailLogin(user, password, r.req.socket.remoteAddress);
    if (checked.result === 'unavailable') return again('your mail server cannot be reached right now; try again in a minute', 503);
    if (checked.result !== 'ok') return again('the mail address or password is not right', 401);
    const session = keeper.create(checked.user, 'self', 'mail', Math.min(60, services.config().sessionMinutes));
    redirect(r, '/my/', { 'set-cookie': sessionCookie(r, session) });
  }

  async function logout(r: Request, home: string): Promise<void> {
    const s = currentSession(r);
    if (s) await checkedForm(r, s);
    if (s) keeper.signOut(s);
    if (s && s.role !== 'self') await services.audit('console-sign-out', { name: s.name, role: s.role }, { via: s.via === 'oidc' ? 'console-oidc' : 'console' });
    redirect(r, home, { 'set-cookie': sessionCookie(r, null) });
  }

  function loginPage(r: Request, which: 'console' | 'my', problem?: string): void {
    const pre = preSession(r);
    const headers = pre.cookie ? { 'set-cookie': pre.cookie } : undefined;
    const csrf = keeper.csrfToken(pre.session);
    const next = r.url.searchParams.get('next') ?? '';
    if (which === 'console') render(r, 'Sign in', consoleLogin(csrf, oidcClient() !== null, problem, next.startsWith('/console/') ? next : ''), null, { headers });
    else render(r, 'Sign in', myLogin(csrf, problem), null, { headers });
  }

  // ------------------------------------------------------------------ routing

  async function route(r: Request): Promise<void> {
    const p = r.url.pathname;
    const get = r.method === 'GET' || r.method === 'HEAD';
    const post = r.method === 'POST';
    const param = (re: RegExp): string[] | null => {
      const m = re.exec(p);
      if (!m) return null;
      try {
        return m.slice(1).map((x) => decodeURIComponent(x));
      } catch {
        throw new PageError(400, 'Bad address', 'the address is not valid percent-encoding');
      }
    };
    let m: string[] | null;
    if (get && (p === '/console' || p === '/console/')) return redirect(r, '/console/overview');
    if (get && p === '/console/login') return loginPage(r, 'console');
    if (post && p === '/console/login') return consoleLoginPost(r);
    if (post && p === '/console/logout') return logout(r, '/console/login');
    if (get && p === '/console/oidc/start') return oidcStart(r);
    if (get && p === '/console/oidc/callback') return oidcCallback(r);
    if (get && p === '/console/assets/audit.js') {
      return send(r, 200, AUDIT_SCRIPT, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'max-age=300' });
    }
    if (get && p === '/console/overview') return overview(r);
    if (get && p === '/console/search') return search(r);
    if (get && (m = param(/^\/console\/decisions\/([^/]+)$/))) return decision(r, m[0]!);
    if (get && (m = param(/^\/console\/devices\/([^/]+)$/))) return device(r, m[0]!);
    if (post && (m = param(/^\/console\/devices\/([^/]+)\/(exempt|end-sessions|reevaluate)$/))) return deviceAction(r, m[0]!, m[1]!);
    if (get && p === '/console/audit') return auditView(r);
    if (get && p === '/console/audit/events') return auditEvents(r);
    if (get && p === '/console/policy') return policy(r);
    if (post && p === '/console/policy/kill-switch') return killSwitch(r);
    if (post && p === '/console/policy/candidate') return candidate(r);
    if (get && (p === '/my' || p === '/my/')) return my(r);
    if (get && p === '/my/login') return loginPage(r, 'my');
    if (post && p === '/my/login') return myLoginPost(r);
    if (post && p === '/my/logout') return logout(r, '/my/login');
    throw new PageError(404, 'Not found', `there is no console page at ${p}`);
  }

  return {
    feed,
    async handle(req, res, url) {
      if (!/^\/(console|my)(\/|$)/.test(url.pathname)) return false;
      const r: Request = { req, res, url, method: req.method ?? 'GET' };
      try {
        if (!services.config().enabled) throw new PageError(404, 'Not found', 'the console is not enabled (admin.console.enabled)');
        await route(r);
      } catch (err) {
        if (res.headersSent) {
          res.destroy();
          return true;
        }
        const s = (() => {
          try {
            return currentSession(r);
          } catch {
            return null;
          }
        })();
        const frame = { session: s, csrf: s ? keeper.csrfToken(s) : undefined };
        if (err instanceof SignInNeeded) {
          if (r.method === 'GET') redirect(r, `/console/login?next=${encodeURIComponent(url.pathname + url.search)}`);
          else send(r, 401, errorPage('Sign in', 'sign in first', frame));
        } else if (err instanceof PageError) {
          send(r, err.status, errorPage(err.title, err.message, frame));
        } else if (err instanceof FormError) {
          send(r, err.status, errorPage('Form refused', err.message, frame));
        } else if ((err as { code?: unknown } | null)?.code === 'STORE_UNAVAILABLE') {
          send(r, 503, errorPage('Try again', 'the device store is unavailable right now; try again in a few seconds', frame), { 'retry-after': '5' });
        } else {
          services.log.error('console page failed', { path: url.pathname, error: errorText(err) });
          send(r, 500, errorPage('Something went wrong', 'the page could not be made; the mailwarden log says why', frame));
        }
      }
      return true;
    },
    async close() {
      for (const stream of streams) stream.destroy();
      await feed.stop();
    },
  };
}

