// The fake-device kit: reporter and IdP keys, signed device reports, enrolment through the admin
// API, and the login details a rehearsal then uses over IMAP and SMTP. Used by our own tests and
// offered to ops (`mailwarden fake-device`).
import fs from 'node:fs/promises';
import path from 'node:path';
import { CompactSign, SignJWT, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';
import { REPORT_TYP } from '../identity/jwks';
import { parseReportPayload, type ReportPayload } from '../admin/reports';

export interface SigningKeys {
  /** The private key (with kid, alg, use): keep it secret; it signs reports or tokens. */
  readonly privateJwk: JWK;
  /** The public half as a JWKS: what mailwarden trusts (reports.jwksFile / an oauth source's jwksFile). */
  readonly publicJwks: { keys: JWK[] };
  /** Set when outDir was given. */
  readonly files?: { readonly privateKey: string; readonly jwks: string };
}

export interface MakeKeysOptions {
  readonly kid: string;
  /** Default ES256. */
  readonly alg?: string;
  /** Write `<kid>.private.jwk.json` (mode 600) and add the public key to the JWKS file here. */
  readonly outDir?: string;
}

async function makeSigningKeys(options: MakeKeysOptions, jwksFileName: string): Promise<SigningKeys> {
  const alg = options.alg ?? 'ES256';
  // Private keys are not extractable by default in jose 6: the kit must write them out.
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const meta = { kid: options.kid, alg, use: 'sig' };
  const privateJwk: JWK = { ...(await exportJWK(privateKey)), ...meta };
  const publicJwks = { keys: [{ ...(await exportJWK(publicKey)), ...meta }] };
  if (options.outDir === undefined) return { privateJwk, publicJwks };

  await fs.mkdir(options.outDir, { recursive: true });
  const privateFile = path.join(options.outDir, `${options.kid}.private.jwk.json`);
  const jwksFile = path.join(options.outDir, jwksFileName);
  await fs.writeFile(privateFile, `${JSON.stringify(privateJwk, null, 2)}\n`, { mode: 0o600 });
  // Keep the other keys already trusted in this folder: rotating a key means adding one first.
  const existing = await readJwks(jwksFile);
  const merged = { keys: [...existing.keys.filter((k) => k.kid !== options.kid), ...publicJwks.keys] };
  await fs.writeFile(jwksFile, `${JSON.stringify(merged, null, 2)}\n`);
  return { privateJwk, publicJwks: merged, files: { privateKey: privateFile, jwks: jwksFile } };
}

async function readJwks(file: string): Promise<{ keys: JWK[] }> {
  try {
    const parsed = JSON.parse(await fs.readFile(file, 'utf8')) as { keys?: unknown };
    return { keys: Array.isArray(parsed.keys) ? (parsed.keys as JWK[]) : [] };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { keys: [] };
    throw new Error(`${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** A device-posture reporter's key pair; the JWKS file is `reporters.jwks.json`. */
export function makeReporterKeys(options: MakeKeysOptions): Promise<SigningKeys> {
  return makeSigningKeys(options, 'reporters.jwks.json');
}

/** A stand-in identity provider's key pair for rehearsing OAuth logins; the JWKS file is `idp.jwks.json`. */
export function makeIdpKeys(options: MakeKeysOptions): Promise<SigningKeys> {
  return makeSigningKeys(options, 'idp.jwks.json');
}

/** Read a private JWK written by makeReporterKeys / makeIdpKeys. */
export async function readPrivateJwk(file: string): Promise<JWK> {
  const jwk = JSON.parse(await fs.readFile(file, 'utf8')) as JWK;
  if (typeof jwk.d !== 'string' || typeof jwk.kid !== 'string' || typeof jwk.alg !== 'string') {
    throw new Error(`${file}: expected a private JWK with kid and alg (from "mailwarden fake-device keys")`);
  }
  return jwk;
}

async function privateKeyOf(jwk: JWK): Promise<{ key: CryptoKey | Uint8Array; alg: string; kid: string }> {
  if (typeof jwk.alg !== 'string' || typeof jwk.kid !== 'string') throw new Error('the private JWK needs alg and kid');
  return { key: await importJWK(jwk, jwk.alg), alg: jwk.alg, kid: jwk.kid };
}

export interface ReportInput {
  readonly deviceId: string;
  readonly user: string;
  readonly platform: string;
  readonly osVersion: string;
  /** Installed app ids; leave out for "inventory not visible to the reporter". */
  readonly apps?: readonly string[];
  readonly managed: boolean;
  /** Default: now. */
  readonly reportedAt?: Date | string;
}

/** A report payload, checked with the same schema the server applies (throws naming the field). */
export function buildReport(input: ReportInput): ReportPayload {
  const reportedAt = input.reportedAt ?? new Date();
  const candidate = {
    deviceId: input.deviceId,
    user: input.user,
    platform: input.platform,
    osVersion: input.osVersion,
    managed: input.managed,
    ...(input.apps === undefined ? {} : { apps: [...input.apps] }),
    reportedAt: typeof reportedAt === 'string' ? reportedAt : reportedAt.toISOString(),
  };
  const parsed = parseReportPayload(candidate);
  if (!parsed.ok) throw new Error(`report: ${parsed.message}`);
  return parsed.report;
}

/** Sign a report as a compact JWS with the header the server requires (alg, kid, typ). */
export async function signReport(report: ReportPayload, privateJwk: JWK): Promise<string> {
  const { key, alg, kid } = await privateKeyOf(privateJwk);
  return new CompactSign(new TextEncoder().encode(JSON.stringify(report)))
    .setProtectedHeader({ alg, kid, typ: REPORT_TYP })
    .sign(key);
}

export interface OauthTokenInput {
  readonly privateJwk: JWK;
  readonly issuer: string;
  readonly audience: string;
  readonly user: string;
  readonly deviceId: string;
  /** Seconds from now; negative for an already expired token. Default 600. */
  readonly expiresIn?: number;
  /** Default "email". */
  readonly userClaim?: string;
  /** Default "deviceid". */
  readonly deviceClaim?: string;
}

/** An access token as the organisation's IdP would issue it, for rehearsing OAUTHBEARER / XOAUTH2. */
export async function makeOauthToken(input: OauthTokenInput): Promise<string> {
  const { key, alg, kid } = await privateKeyOf(input.privateJwk);
  const nowSeconds = Math.floor(Date.now() / 1000);
  return new SignJWT({ [input.userClaim ?? 'email']: input.user, [input.deviceClaim ?? 'deviceid']: input.deviceId })
    .setProtectedHeader({ alg, kid, typ: 'JWT' })
    .setIssuer(input.issuer)
    .setAudience(input.audience)
    .setSubject(input.user)
    .setIssuedAt(nowSeconds)
    .setExpirationTime(nowSeconds + (input.expiresIn ?? 600))
    .sign(key);
}

/** The admin API's error body: { error: { code, message } }. */
async function adminError(response: Response): Promise<{ code: string; message: string }> {
  const text = await response.text();
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    return { code: String(body.error?.code ?? `HTTP_${response.status}`), message: String(body.error?.message ?? text) };
  } catch {
    return { code: `HTTP_${response.status}`, message: text.slice(0, 200) };
  }
}

function adminEndpoint(adminUrl: string, pathname: string): string {
  return `${adminUrl.replace(/\/+$/, '')}${pathname}`;
}

async function post(url: string, token: string, contentType: string, body: string): Promise<Response> {
  try {
    return await fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': contentType },
      body,
      signal: AbortSignal.timeout(10_000),
    });
  } catch (err) {
    const cause = (err as { cause?: { message?: string } }).cause?.message;
    throw new Error(`POST ${url}: ${cause ?? (err instanceof Error ? err.message : String(err))}`);
  }
}

export type PushResult =
  | { readonly ok: true; readonly status: number; readonly stored: boolean; readonly deviceId: string }
  | { readonly ok: false; readonly status: number; readonly code: string; readonly message: string };

/** POST /v1/reports. A 4xx is a result (the code names the problem); a network failure throws. */
export async function pushReport(adminUrl: string, token: string, jws: string): Promise<PushResult> {
  const response = await post(adminEndpoint(adminUrl, '/v1/reports'), token, 'application/jose', jws);
  if (!response.ok) return { ok: false, status: response.status, ...(await adminError(response)) };
  const body = (await response.json()) as { stored?: boolean; deviceId?: string };
  return { ok: true, status: response.status, stored: body.stored === true, deviceId: String(body.deviceId) };
}

/** POST /v1/devices/{id}/app-passwords: a new app password for the device (shown once). Throws on refusal. */
export async function enrollDevice(
  adminUrl: string,
  token: string,
  subject: { user: string; deviceId: string },
): Promise<{ password: string; credentialId: string }> {
  const url = adminEndpoint(adminUrl, `/v1/devices/${encodeURIComponent(subject.deviceId)}/app-passwords`);
  const response = await post(url, token, 'application/json', JSON.stringify({ user: subject.user }));
  if (response.status !== 201) {
    const { code, message } = await adminError(response);
    throw new Error(`enrolment refused (${response.status} ${code}): ${message}`);
  }
  const body = (await response.json()) as { password?: unknown; credentialId?: unknown };
  if (typeof body.password !== 'string' || typeof body.credentialId !== 'string') {
    throw new Error('enrolment answer has no password');
  }
  return { password: body.password, credentialId: body.credentialId };
}

export interface LoginDetailsInput {
  readonly user: string;
  readonly deviceId: string;
  /** From enrollDevice(): log in as the user with this password. */
  readonly appPassword?: string;
  /** Without an app password: an asserted login name `user<separator>deviceId` and the user's own password. */
  readonly separator?: string;
  /** host:port of mailwarden's IMAP and SMTP listeners. */
  readonly imap?: string;
  readonly smtp?: string;
}

export interface LoginDetails {
  readonly username: string;
  /** The app password, or undefined: the user's own mail password (asserted identity). */
  readonly password?: string;
  readonly imap?: string;
  readonly smtp?: string;
  /** The same, printable for a person. */
  readonly text: string;
}

/** What a later login as this device needs. */
export function loginDetails(input: LoginDetailsInput): LoginDetails {
  const username = input.appPassword === undefined ? `${input.user}${input.separator ?? '+'}${input.deviceId}` : input.user;
  const lines = [
    `device:    ${input.deviceId}`,
    `username:  ${username}`,
    `password:  ${input.appPassword ?? "(the user's own mail password; identity asserted in the login name, weak)"}`,
    ...(input.imap ? [`IMAP:      ${input.imap}`] : []),
    ...(input.smtp ? [`SMTP:      ${input.smtp} (submission, AUTH PLAIN or LOGIN)`] : []),
  ];
  return {
    username,
    ...(input.appPassword === undefined ? {} : { password: input.appPassword }),
    ...(input.imap ? { imap: input.imap } : {}),
    ...(input.smtp ? { smtp: input.smtp } : {}),
    text: `${lines.join('\n')}\n`,
  };
}
