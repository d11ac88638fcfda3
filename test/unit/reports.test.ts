// The signed-report verifier: every 4xx code, and no side effects.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { CompactSign, importJWK, type JWK } from 'jose';
import { createReportVerifier, MAX_REPORT_APPS, parseReportPayload, type ReportVerifier } from '../../src/admin/reports';
import type { ReportsConfig } from '../../src/core/config-types';
import { REPORT_TYP } from '../../src/identity/jwks';
import { buildReport, makeOauthToken, makeReporterKeys, signReport, type ReportPayload } from '../../src/kit';
import { tempDir } from '../harness/ports';

const NOW = new Date('2025-01-31T12:00:00Z');
let dir: string;
let key: JWK;
let edKey: JWK;
let strangerKey: JWK;
let verifier: ReportVerifier;

const config = (overrides: Partial<ReportsConfig> = {}): ReportsConfig => ({
  jwksFile: 'reporters.jwks.json',
  algorithms: ['ES256', 'EdDSA'],
  maxAgeSeconds: 86400,
  maxSkewSeconds: 300,
  maxBodyBytes: 65536,
  ...overrides,
});

const payload = (overrides: Record<string, unknown> = {}): ReportPayload =>
  ({
    deviceId: 'iphone-7f3a',
    user: 'alice@example.com',
    platform: 'ios',
    osVersion: '17.4.1',
    managed: true,
    apps: ['com.apple.mobilemail', 'com.zhiliaoapp.musically'],
    reportedAt: '2025-01-31T11:58:00Z',
    ...overrides,
  }) as ReportPayload;

/** Sign any payload bytes with any header (the kit only signs valid reports). */
async function sign(body: unknown, header: Record<string, unknown> = {}, jwk: JWK = key): Promise<string> {
  const bytes = typeof body === 'string' ? body : JSON.stringify(body);
  return new CompactSign(new TextEncoder().encode(bytes))
    .setProtectedHeader({ alg: jwk.alg as string, kid: jwk.kid, typ: REPORT_TYP, ...header })
    .sign(await importJWK(jwk, jwk.alg));
}

const b64u = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

beforeAll(async () => {
  dir = tempDir('reports');
  key = (await makeReporterKeys({ kid: 'mdm-1', outDir: dir })).privateJwk;
  edKey = (await makeReporterKeys({ kid: 'agent-ed', alg: 'EdDSA', outDir: dir })).privateJwk;
  strangerKey = (await makeReporterKeys({ kid: 'mdm-1' })).privateJwk; // same kid, not trusted
  verifier = await createReportVerifier(config(), dir);
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('report verifier', () => {
  it('accepts a signed report: source = key id, receivedAt = now, time normalised to UTC', async () => {
    const result = await verifier.verify(await sign(payload({ reportedAt: '2025-01-31T12:58:00+01:00' })), NOW);
    expect(result).toEqual({
      ok: true,
      record: { ...payload(), reportedAt: '2025-01-31T11:58:00.000Z', source: 'mdm-1', receivedAt: NOW.toISOString() },
    });
  });

  it('accepts every trusted key (EdDSA too), and a report without an inventory', async () => {
    const { apps: _apps, ...noApps } = payload();
    const result = await verifier.verify(await sign(noApps, {}, edKey), NOW);
    expect(result).toMatchObject({ ok: true, record: { source: 'agent-ed' } });
    if (result.ok) expect('apps' in result.record).toBe(false);
  });

  const cases: [string, () => Promise<string> | string, number, string, RegExp][] = [
    ['a body over maxBodyBytes', () => 'a'.repeat(65537), 413, 'TOO_LARGE', /larger than 65536 bytes/],
    ['garbage', () => 'not a jws', 400, 'MALFORMED_JWS', /compact JWS/],
    ['a JWE', () => 'a.b.c.d.e', 400, 'MALFORMED_JWS', /JWE/],
    ['a header that is not JSON', () => `${Buffer.from('{nope').toString('base64url')}.e30.AAAA`, 400, 'MALFORMED_JWS', /header/],
    ['an unknown crit header', () => `${b64u({ alg: 'ES256', kid: 'mdm-1', typ: REPORT_TYP, crit: ['x'], x: 1 })}.${b64u(payload())}.AAAA`, 400, 'MALFORMED_JWS', /"x"/],
    ['a login token replayed as a report', () => makeOauthToken({ privateJwk: key, issuer: 'i', audience: 'a', user: 'alice@example.com', deviceId: 'd' }), 401, 'WRONG_TYPE', /typ must be/],
    ['no typ', () => sign(payload(), { typ: undefined }), 401, 'WRONG_TYPE', /got null/],
    ['alg none', () => `${b64u({ alg: 'none', kid: 'mdm-1', typ: REPORT_TYP })}.${b64u(payload())}.`, 400, 'MALFORMED_JWS', /compact JWS/],
    ['alg none with a signature', () => `${b64u({ alg: 'none', kid: 'mdm-1', typ: REPORT_TYP })}.${b64u(payload())}.AAAA`, 401, 'ALG_NOT_ALLOWED', /"none"/],
    ['HS256', () => `${b64u({ alg: 'HS256', kid: 'mdm-1', typ: REPORT_TYP })}.${b64u(payload())}.AAAA`, 401, 'ALG_NOT_ALLOWED', /ES256, EdDSA/],
    ['an unknown kid', () => sign(payload(), { kid: 'someone-else' }), 401, 'UNKNOWN_KEY', /someone-else/],
    ['no kid', () => sign(payload(), { kid: undefined }), 401, 'UNKNOWN_KEY', /kid/],
    ['a kid with CRLF', () => sign(payload(), { kid: 'mdm-1\r\n' }), 401, 'UNKNOWN_KEY', /control/],
    ['a signature by an untrusted key with a trusted kid', () => sign(payload(), {}, strangerKey), 401, 'BAD_SIGNATURE', /mdm-1/],
    [
      'a tampered payload',
      async () => {
        const [h, , s] = (await sign(payload())).split('.');
        return `${h}.${b64u(payload({ apps: [] }))}.${s}`;
      },
      401,
      'BAD_SIGNATURE',
      /does not verify/,
    ],
    ['a payload that is not JSON', () => sign('{"deviceId":'), 422, 'SCHEMA_ERROR', /not UTF-8 JSON/],
    ['a payload that is an array', () => sign([1, 2]), 422, 'SCHEMA_ERROR', /expected a JSON object/],
    ['a non-string app', () => sign(payload({ apps: ['a', 'b', 'c', 42] })), 422, 'SCHEMA_ERROR', /^apps\[3\]: expected an app id/],
    ['too many apps', () => sign(payload({ apps: Array.from({ length: MAX_REPORT_APPS + 1 }, (_, i) => `app.${i}`) })), 422, 'SCHEMA_ERROR', /more than 2000/],
    ['an unknown field', () => sign(payload({ jailbroken: false })), 422, 'SCHEMA_ERROR', /^jailbroken: unknown field$/],
    ['an unknown field named with CR/LF (found by the property test)', () => sign(payload({ 'x\r\nINJECTED': 1 })), 422, 'SCHEMA_ERROR', /^payload: unknown field whose name is not a plain word/],
    ['a __proto__ field', () => sign(`{"__proto__":{"managed":true},${JSON.stringify(payload()).slice(1)}`), 422, 'SCHEMA_ERROR', /__proto__/],
    ['a source field', () => sign(payload({ source: 'forged' })), 422, 'SCHEMA_ERROR', /^source:/],
    ['an upper-case platform', () => sign(payload({ platform: 'iOS' })), 422, 'SCHEMA_ERROR', /^platform:/],
    ['a missing managed flag', () => sign(payload({ managed: undefined })), 422, 'SCHEMA_ERROR', /^managed:/],
    ['a device id with CRLF', () => sign(payload({ deviceId: 'dev\r\nx' })), 422, 'SCHEMA_ERROR', /^deviceId:/],
    ['a user with NUL', () => sign(payload({ user: 'a\0b' })), 422, 'SCHEMA_ERROR', /^user:/],
    ['a time without a zone', () => sign(payload({ reportedAt: '2025-01-31T11:58:00' })), 422, 'SCHEMA_ERROR', /^reportedAt:/],
    ['a report older than maxAgeSeconds', () => sign(payload({ reportedAt: '2025-01-30T11:59:59Z' })), 422, 'REPORT_TOO_OLD', /older than 86400 s/],
    ['a report from the future', () => sign(payload({ reportedAt: '2025-01-31T12:05:01Z' })), 422, 'REPORT_IN_FUTURE', /300 s ahead/],
  ];

  it.each(cases)('rejects %s', async (_name, make, status, code, message) => {
    const result = await verifier.verify(await make(), NOW);
    expect(result).toMatchObject({ ok: false, status, code });
    if (!result.ok) expect(result.message).toMatch(message);
  });

  it('accepts the edges: exactly maxAgeSeconds old and maxSkewSeconds ahead', async () => {
    expect(await verifier.verify(await sign(payload({ reportedAt: '2025-01-30T12:00:00Z' })), NOW)).toMatchObject({ ok: true });
    expect(await verifier.verify(await sign(payload({ reportedAt: '2025-01-31T12:05:00Z' })), NOW)).toMatchObject({ ok: true });
  });

  it('has no side effects: same answer twice, the key file untouched, a trailing newline tolerated', async () => {
    const jwksFile = path.join(dir, 'reporters.jwks.json');
    const before = fs.readFileSync(jwksFile, 'utf8');
    const jws = await sign(payload());
    const first = await verifier.verify(`${jws}\n`, NOW);
    const second = await verifier.verify(jws, NOW);
    expect(first).toEqual(second);
    expect(first.ok).toBe(true);
    expect(fs.readFileSync(jwksFile, 'utf8')).toBe(before);
  });

  it('refuses everything when no reporter keys are configured', async () => {
    const none = await createReportVerifier(config({ jwksFile: undefined }), dir);
    expect(await none.verify(await sign(payload()), NOW)).toMatchObject({ ok: false, status: 401, code: 'UNKNOWN_KEY' });
  });

  it('answers 503 KEYS_UNAVAILABLE when a remote JWKS cannot be fetched', async () => {
    const server = http.createServer((_req, res) => res.writeHead(500).end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
      const remote = await createReportVerifier(config({ jwksFile: undefined, jwksUrl: url }), dir);
      expect(await remote.verify(await sign(payload()), NOW)).toMatchObject({ ok: false, status: 503, code: 'KEYS_UNAVAILABLE' });
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('parseReportPayload returns a copy, so later changes to the input do not leak into the record', () => {
    const input = payload();
    const parsed = parseReportPayload(input);
    (input.apps as string[]).push('late.app');
    expect(parsed.ok && parsed.report.apps).toEqual(['com.apple.mobilemail', 'com.zhiliaoapp.musically']);
    expect(buildReport({ ...input, apps: ['x'] }).apps).toEqual(['x']);
  });

  it('signReport from the kit produces what the verifier accepts', async () => {
    const report = buildReport({ deviceId: 'pixel-1', user: 'bob@example.com', platform: 'android', osVersion: '14', managed: false, apps: [], reportedAt: NOW });
    expect(await verifier.verify(await signReport(report, key), NOW)).toMatchObject({ ok: true, record: { deviceId: 'pixel-1', managed: false, apps: [] } });
  });
});
