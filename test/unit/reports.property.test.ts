// Property-based tests (fast-check) of the report codec: the signed-report verifier and payload
// parser, and the decoder of records read back from Redis. Any input gets an answer, never a throw;
// a valid signed report round-trips; a changed byte never yields a different record; whatever is
// accepted obeys the identifier grammar (src/core/identifiers.ts).
import fs from 'node:fs';
import { CompactSign, importJWK, type JWK } from 'jose';
import fc from 'fast-check';
import { createReportVerifier, parseReportPayload, ReportErrorCodes, type ReportVerifier } from '../../src/admin/reports';
import { PLATFORMS, validateAppId, validateDeviceId, validatePlatform, validateUserName } from '../../src/core/identifiers';
import { REPORT_TYP } from '../../src/identity/jwks';
import { makeReporterKeys } from '../../src/kit';
import { decodeDeviceRecord } from '../../src/store/record-codec';
import { tempDir } from '../harness/ports';
import { fuzzRuns } from './fuzz-runs';

const NOW = new Date('2025-01-31T12:00:00Z');
let dir: string;
let key: JWK;
let verifier: ReportVerifier;

beforeAll(async () => {
  dir = tempDir('reports-fuzz');
  key = (await makeReporterKeys({ kid: 'mdm-1', outDir: dir })).privateJwk;
  verifier = await createReportVerifier({ jwksFile: 'reporters.jwks.json', algorithms: ['ES256', 'EdDSA'], maxAgeSeconds: 86400, maxSkewSeconds: 300, maxBodyBytes: 65536 }, dir);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function sign(payload: unknown): Promise<string> {
  return new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader({ alg: key.alg as string, kid: key.kid, typ: REPORT_TYP })
    .sign(await importJWK(key, key.alg));
}

const name = fc.stringMatching(/^[a-z0-9][a-z0-9.@_+-]{0,30}$/);
const appId = fc.stringMatching(/^[a-z][a-z0-9]{0,8}(\.[a-z0-9_]{1,8}){1,3}$/);
const validPayload = fc.record({
  deviceId: name,
  user: name,
  platform: fc.constantFrom(...PLATFORMS),
  osVersion: fc.stringMatching(/^\d{1,2}(\.\d{1,2}){0,2}$/),
  managed: fc.boolean(),
  apps: fc.array(appId, { maxLength: 8 }),
  reportedAt: fc.integer({ min: 0, max: 3600_000 }).map((ago) => new Date(NOW.getTime() - ago).toISOString()),
});
const b64urlish = fc.stringMatching(/^[A-Za-z0-9_-]{0,120}$/);
const anyInput = fc.oneof(
  fc.string({ maxLength: 300 }),
  fc.tuple(b64urlish, b64urlish, b64urlish).map((parts) => parts.join('.')),
  fc.tuple(fc.json(), fc.json()).map(([h, p]) => `${Buffer.from(h).toString('base64url')}.${Buffer.from(p).toString('base64url')}.AAAA`),
);
const CODES = Object.keys(ReportErrorCodes);

test('any input: the verifier answers with one of its codes and never throws', async () => {
  await fc.assert(fc.asyncProperty(anyInput, async (input) => {
    const result = await verifier.verify(input, NOW);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(CODES).toContain(result.code);
  }), fuzzRuns(200));
});

test('a valid signed report round-trips into the record; changing one character never gives another record', async () => {
  await fc.assert(fc.asyncProperty(validPayload, fc.nat(), fc.constantFrom(...'ABCabc019-_'), async (payload, at, ch) => {
    const jws = await sign(payload);
    const result = await verifier.verify(jws, NOW);
    expect(result).toEqual({ ok: true, record: { ...payload, source: 'mdm-1', receivedAt: NOW.toISOString() } });
    const i = at % jws.length;
    const mutated = jws.slice(0, i) + ch + jws.slice(i + 1);
    const again = await verifier.verify(mutated, NOW);
    // The last character of a base64url part carries unused bits, so a change there may decode to
    // the same bytes; then the record must be the same one.
    if (again.ok) expect(again).toEqual(result);
  }), fuzzRuns(60, 0.2));
});

test('any JSON value as a payload: a result, never a throw; what is accepted obeys the grammar', () => {
  const loose = fc.record({
    deviceId: fc.oneof(name, fc.string(), fc.json()),
    user: fc.oneof(name, fc.string()),
    platform: fc.oneof(fc.constantFrom(...PLATFORMS, 'ios ', 'iphoneos', 'IOS'), fc.string()),
    osVersion: fc.oneof(fc.constant('17.4'), fc.string()),
    managed: fc.oneof(fc.boolean(), fc.json()),
    apps: fc.oneof(fc.array(fc.oneof(appId, fc.string())), fc.json()),
    reportedAt: fc.oneof(fc.date({ noInvalidDate: true }).map((d) => d.toISOString()), fc.string()),
  }, { requiredKeys: [] });
  fc.assert(fc.property(fc.oneof(loose, fc.jsonValue()), (value) => {
    const parsed = parseReportPayload(value);
    if (!parsed.ok) return expect(parsed.message).toMatch(/^[\w[\] ]+: /);
    const r = parsed.report;
    expect([validateDeviceId(r.deviceId), validateUserName(r.user), validatePlatform(r.platform)]).toEqual([null, null, null]);
    for (const app of r.apps ?? []) expect(validateAppId(app)).toBeNull();
  }), fuzzRuns(500));
});

test('any text stored under a device key decodes to found, missing or malformed, never a throw', () => {
  const stored = fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.jsonValue().map((v) => JSON.stringify(v)),
    validPayload.chain((p) => fc.record({
      platform: fc.constantFrom(p.platform, 'ios ', 'iphoneos', ''),
      receivedAt: fc.constantFrom(NOW.toISOString(), '2099-01-01T00:00:00.000Z', 'yesterday'),
      apps: fc.constantFrom(p.apps, ['com.zhiliaoapp.musically '], ['com.zhiliaoapp.musically\0']),
    }).map((over) => JSON.stringify({ ...p, source: 'mdm-1', ...over }))),
  );
  fc.assert(fc.property(stored, (raw) => {
    const deviceId = (() => { try { return String(JSON.parse(raw).deviceId); } catch { return 'dev-1'; } })();
    const lookup = decodeDeviceRecord(raw, deviceId, NOW.getTime());
    expect(['found', 'malformed']).toContain(lookup.state);
    if (lookup.state !== 'found') return;
    expect(validatePlatform(lookup.record.platform)).toBeNull();
    for (const app of lookup.record.apps ?? []) expect(validateAppId(app)).toBeNull();
    expect(Date.parse(lookup.record.receivedAt)).toBeLessThanOrEqual(NOW.getTime() + 60_000);
  }), fuzzRuns(500));
});
