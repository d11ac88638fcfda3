// Gateway hooks without daemons: nginx auth_http parsing and answers, Dovecot policy parsing and
// answers, the Postfix attribute reader and actions, against a fake admission step.
import type { Admission, AdmissionRequest } from '../../src/admission/types';
import type { NginxHookConfig } from '../../src/core/config-types';
import type { Decision } from '../../src/policy/decision';
import { silentLogger } from '../../src/core/log';
import { asciiLine } from '../../src/hooks/hook';
import { authHttpAnswer, parseAuthHttpRequest, unescapeMailAuth, type AuthHttpLogin } from '../../src/hooks/nginx-auth-http';
import { parseClientId, parseDovecotPolicyRequest, policyAnswer, DovecotSessions } from '../../src/hooks/dovecot-policy';
import { AttributeReader } from '../../src/hooks/line-listener';
import { answerPostfix, certificateFrom, decodeXtext, policyAction } from '../../src/hooks/postfix-policy';
import { parseDistinguishedName } from '../../src/hooks/gateway-certificate';

const decision = (action: Decision['action'], message?: string, fault: Decision['fault'] = 'policy'): Decision =>
  ({ action, fault, reasonCode: action === 'allow' ? 'OK' : 'BANNED_APP', refId: 'MW-TEST0001', message, warnings: [], checks: [] }) as unknown as Decision;
const identity = { user: 'alice@example.com', deviceId: 'iphone', source: 'app-password' as const, strength: 'strong' as const };
const allow: Admission = { kind: 'allow', identity, decision: decision('allow'), upstream: { mode: 'master', username: 'alice@example.com' }, session: null };
const deny: Admission = { kind: 'refuse', identity, decision: decision('deny', 'Remove TikTok. Ref MW-TEST0001.'), upstream: { mode: 'master', username: 'alice@example.com' } };
const down: Admission = { kind: 'unavailable', detail: 'store down' };
const bad: Admission = { kind: 'bad-credentials', detail: 'wrong' };

const nginxConfig: NginxHookConfig = {
  enabled: true,
  listen: { host: '127.0.0.1', port: 0 },
  secretHeader: 'X-Mailwarden-Key',
  secret: 's',
  backends: {
    imap: { host: '192.0.2.10', port: 143, login: 'master', masterUser: 'mw', masterPassword: 'mpw', masterSeparator: '*' },
    smtp: { host: '192.0.2.11', port: 25, login: 'passthrough', masterSeparator: '*' },
  },
  maxWaitAttempts: 3,
  tempfailWaitSeconds: 2,
  maxFailedLoginWaitSeconds: 16,
  throttleWaitMaxMs: 3000,
  limits: { maxConnections: 1, maxHeaderBytes: 8192, maxBodyBytes: 1024, requestTimeoutMs: 1000, idleTimeoutMs: 1000 },
};
const login = (over: Partial<AuthHttpLogin> = {}): AuthHttpLogin => ({ protocol: 'imap', user: 'alice@example.com', password: 'pw', attempt: 1, clientIp: '192.0.2.1', ssl: true, ...over });

describe('nginx auth_http', () => {
  test('Auth-User / Auth-Pass unescaping as nginx escapes them (measured: space and % as %XX)', () => {
    expect(unescapeMailAuth('p%20w%25x')).toBe('p w%x');
    expect(unescapeMailAuth('alice@example.com')).toBe('alice@example.com');
    expect(unescapeMailAuth('%C3%A9')).toBe('é');
    expect(unescapeMailAuth('%zz')).toBeNull();
    expect(unescapeMailAuth('%FF')).toBeNull();
  });

  test('request parsing: required headers, pop3 and cram-md5 unsupported, unknown protocol bad', () => {
    const base = { 'auth-method': 'plain', 'auth-user': 'alice@example.com', 'auth-pass': 'p%20w', 'auth-protocol': 'imap', 'auth-login-attempt': '2', 'client-ip': '192.0.2.1' };
    const ok = parseAuthHttpRequest(base);
    expect(ok).toMatchObject({ ok: true, login: { protocol: 'imap', password: 'p w', attempt: 2, clientIp: '192.0.2.1' } });
    expect(parseAuthHttpRequest({ ...base, 'auth-protocol': 'pop3' })).toMatchObject({ ok: false, kind: 'unsupported' });
    expect(parseAuthHttpRequest({ ...base, 'auth-method': 'cram-md5' })).toMatchObject({ ok: false, kind: 'unsupported' });
    expect(parseAuthHttpRequest({ ...base, 'auth-protocol': 'xmpp' })).toMatchObject({ ok: false, kind: 'bad-request' });
    expect(parseAuthHttpRequest({ ...base, 'auth-login-attempt': '0' })).toMatchObject({ ok: false, kind: 'bad-request' });
    const { 'client-ip': _ip, ...noIp } = base;
    expect(parseAuthHttpRequest(noIp)).toMatchObject({ ok: false, kind: 'bad-request' });
  });

  test('a client certificate counts only when nginx verified it', () => {
    const base = { 'auth-method': 'plain', 'auth-user': 'a', 'auth-pass': 'p', 'auth-protocol': 'imap', 'auth-login-attempt': '1', 'client-ip': '192.0.2.1' };
    const subject = 'emailAddress=a@example.com,CN=alice-iphone';
    const unverified = parseAuthHttpRequest({ ...base, 'auth-ssl-verify': 'FAILED:x', 'auth-ssl-subject': subject });
    expect(unverified.ok && 'certificate' in unverified.login).toBe(false);
    expect(parseAuthHttpRequest({ ...base, 'auth-ssl-verify': 'SUCCESS', 'auth-ssl-subject': subject })).toMatchObject({
      ok: true,
      login: { certificate: { subject: { CN: 'alice-iphone', emailAddress: 'a@example.com' } } },
    });
  });

  test('answers: allow with backend and master login, deny with sentence and no wait, tempfail/bad credentials with bounded waits', () => {
    expect(authHttpAnswer(nginxConfig, login(), allow)).toEqual({
      'Auth-Status': 'OK',
      'Auth-Server': '192.0.2.10',
      'Auth-Port': '143',
      'Auth-User': 'alice@example.com*mw',
      'Auth-Pass': 'mpw',
    });
    expect(authHttpAnswer(nginxConfig, login({ protocol: 'smtp' }), allow)).toEqual({ 'Auth-Status': 'OK', 'Auth-Server': '192.0.2.11', 'Auth-Port': '25', 'Auth-User': 'alice@example.com' });
    expect(authHttpAnswer(nginxConfig, login(), deny)).toEqual({ 'Auth-Status': '[CONTACTADMIN] Remove TikTok. Ref MW-TEST0001.' });
    expect(authHttpAnswer(nginxConfig, login({ protocol: 'smtp' }), deny)).toEqual({ 'Auth-Status': 'Remove TikTok. Ref MW-TEST0001.', 'Auth-Error-Code': '550 5.7.1' });
    expect(authHttpAnswer(nginxConfig, login({ attempt: 1 }), down)).toMatchObject({ 'Auth-Status': expect.stringMatching(/^\[UNAVAILABLE\] /), 'Auth-Wait': '2' });
    expect(authHttpAnswer(nginxConfig, login({ attempt: 3 }), down)['Auth-Wait']).toBeUndefined();
    expect(authHttpAnswer(nginxConfig, login({ attempt: 1 }), bad)['Auth-Wait']).toBe('1');
    expect(authHttpAnswer(nginxConfig, login({ attempt: 2 }), bad)['Auth-Wait']).toBe('2');
    expect(authHttpAnswer(nginxConfig, login({ attempt: 3 }), bad)['Auth-Wait']).toBeUndefined();
    expect(authHttpAnswer(nginxConfig, login({ protocol: 'smtp' }), bad)).toMatchObject({ 'Auth-Error-Code': '535 5.7.8' });
    // No backend for the protocol: never OK.
    expect(authHttpAnswer({ ...nginxConfig, backends: {} }, login(), allow)['Auth-Status']).not.toBe('OK');
  });

  test('sentences become one printable ASCII line', () => {
    expect(asciiLine('Entfernen Sie TikTök\r\nInjected: 1')).toBe('Entfernen Sie TikTok Injected: 1');
    expect(asciiLine('中文')).toBe('?');
    expect(asciiLine('x'.repeat(1000)).length).toBe(400);
  });
});

describe('Dovecot policy', () => {
  test('the request: login required, protocol mapped, device from the passdb field, ID as hints', () => {
    const parsed = parseDovecotPolicyRequest(
      JSON.stringify({ login: 'alice@example.com', user: 'alice@example.com', protocol: 'imap', remote: '192.0.2.1', session_id: 's1', device: 'iphone', device_id: '"name" "iPhone Mail" "version" NIL', tls: true }),
    );
    expect(parsed).toEqual({
      ok: true,
      request: { login: 'alice@example.com', user: 'alice@example.com', protocol: 'imap', remote: '192.0.2.1', sessionId: 's1', device: 'iphone', hints: { name: 'iPhone Mail', version: '' } },
    });
    expect(parseDovecotPolicyRequest('{"login":"a","protocol":"submission"}')).toMatchObject({ ok: true, request: { protocol: 'smtp' } });
    expect(parseDovecotPolicyRequest('{"login":"a","protocol":"pop3"}')).toMatchObject({ ok: false, kind: 'unsupported' });
    expect(parseDovecotPolicyRequest('{"protocol":"imap"}')).toMatchObject({ ok: false, kind: 'bad-request' });
    expect(parseDovecotPolicyRequest('{"login":1,"protocol":"imap"}')).toMatchObject({ ok: false, kind: 'bad-request' });
    expect(parseDovecotPolicyRequest('[1]')).toMatchObject({ ok: false, kind: 'bad-request' });
    expect(parseDovecotPolicyRequest('{')).toMatchObject({ ok: false, kind: 'bad-request' });
  });

  test('ID strings that do not parse are dropped, not trusted', () => {
    expect(parseClientId('garbage')).toEqual({});
    expect(parseClientId('"a" "b\\"c"')).toEqual({ a: 'b"c' });
  });

  test('answers: 0 for allow only; every refusal is negative', () => {
    expect(policyAnswer(allow)).toEqual({ status: 0, msg: '' });
    expect(policyAnswer(deny)).toEqual({ status: -1, msg: 'Remove TikTok. Ref MW-TEST0001.' });
    expect(policyAnswer(down)).toEqual({ status: -1, msg: '[UNAVAILABLE] Service temporarily unavailable, try again later.' });
    expect(policyAnswer(bad).status).toBe(-1);
  });

  test('remembered sessions expire and are capped (oldest first), ending their registration', () => {
    const ended: string[] = [];
    const sessions = new DovecotSessions(() => ({ ttlMs: 1000, max: 2 }));
    sessions.add('a', () => ended.push('a'), 0);
    sessions.add('b', () => ended.push('b'), 10);
    sessions.add('c', () => ended.push('c'), 20);
    expect(ended).toEqual(['a']);
    sessions.add('d', () => ended.push('d'), 5000);
    expect(ended).toEqual(['a', 'b', 'c']);
    expect(sessions.size).toBe(1);
  });
});

describe('Postfix policy', () => {
  const reader = () => new AttributeReader({ maxLineBytes: 64, maxAttributes: 4 });

  test('requests end with an empty line; several per chunk, split across chunks', () => {
    const r = reader();
    expect(r.push(Buffer.from('request=smtpd_access_policy\nsasl_user'))).toEqual({ requests: [], problem: null });
    const { requests, problem } = r.push(Buffer.from('name=a\n\nrequest=x\n\n'));
    expect(problem).toBeNull();
    expect(requests.map((m) => Object.fromEntries(m))).toEqual([{ request: 'smtpd_access_policy', sasl_username: 'a' }, { request: 'x' }]);
  });

  test('limits and malformed lines end the connection', () => {
    expect(reader().push(Buffer.from(`a=${'x'.repeat(100)}\n`)).problem).toMatch(/longer than 64/);
    expect(reader().push(Buffer.from('x'.repeat(100))).problem).toMatch(/longer than 64/);
    expect(reader().push(Buffer.from('a=1\nb=2\nc=3\nd=4\ne=5\n')).problem).toMatch(/more than 4/);
    expect(reader().push(Buffer.from('no equals sign\n')).problem).toMatch(/name=value/);
    expect(reader().push(Buffer.from('\n')).problem).toMatch(/empty request/);
  });

  test('xtext and the certificate attributes (a subject is required: fingerprints come for untrusted certificates too)', () => {
    expect(decodeXtext('alice+2Biphone')).toBe('alice+iphone');
    expect(decodeXtext('bad+zz')).toBeNull();
    expect(certificateFrom(new Map([['ccert_fingerprint', 'AB:CD']]))).toBeUndefined();
    expect(certificateFrom(new Map([['ccert_subject', 'alice-iphone'], ['ccert_fingerprint', 'abcd']]))).toEqual({ subject: { CN: 'alice-iphone' }, issuer: {}, fingerprint256: 'AB:CD' });
  });

  test('actions: DUNNO for allow, never OK; 550 5.7.1 deny; 451 4.7.1 policy tempfail; DEFER_IF_PERMIT outage', () => {
    expect(policyAction(allow)).toBe('DUNNO');
    expect(policyAction(deny)).toBe('550 5.7.1 Remove TikTok. Ref MW-TEST0001.');
    expect(policyAction({ ...deny, decision: decision('tempfail', 'Report is stale.') } as Admission)).toBe('451 4.7.1 Report is stale.');
    expect(policyAction(down)).toMatch(/^DEFER_IF_PERMIT /);
  });

  test('one decision per message: the same instance on a connection is answered from memory', async () => {
    const asked: AdmissionRequest[] = [];
    const deps = { log: silentLogger(), admit: async (r: AdmissionRequest) => (asked.push(r), deny) };
    const state = {};
    const attrs = (instance: string) => new Map([['request', 'smtpd_access_policy'], ['sasl_username', 'alice@example.com'], ['instance', instance]]);
    expect((await answerPostfix(deps, attrs('i1'), state)).reply).toBe('action=550 5.7.1 Remove TikTok. Ref MW-TEST0001.');
    await answerPostfix(deps, attrs('i1'), state);
    await answerPostfix(deps, attrs('i2'), state);
    expect(asked).toHaveLength(2);
    expect(asked[0]).toMatchObject({ frontEnd: 'postfix', verification: { by: 'gateway', user: 'alice@example.com' } });
    expect(await answerPostfix(deps, new Map([['request', 'smtpd_access_policy']]), state)).toEqual({ outcome: 'ignored', reply: 'action=DUNNO' });
    expect(await answerPostfix(deps, new Map([['request', 'other']]), state)).toEqual({ outcome: 'bad-request', reply: null });
  });
});

test('distinguished names: escapes kept, a repeated attribute dropped', () => {
  expect(parseDistinguishedName('CN=a\\,b,O=x')).toEqual({ CN: 'a,b', O: 'x' });
  expect(parseDistinguishedName('CN=a,CN=b,O=x')).toEqual({ O: 'x' });
});
