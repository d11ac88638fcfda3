// The fake-device kit: reporter and IdP keys, signed device reports, enrolment through the admin
// API, and the login details a rehearsal then uses over IMAP and SMTP. Used by our own tests and
// offered to ops (`mailwarden fake-device`).
import fs from 'node:fs/promises';
import path from 'node:path';
import { CompactSign, SignJWT, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';
import { REPORT_TYP } from '../identity/jwks';
import { parseReportPayload, type ReportPayload } from '../admin/reports';
import { AdminApiError, createAdminClient } from '../admin/client';
import { errorText } from '../core/errors';

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
    throw new Error(`${file}: ${errorText(err)}`);
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

export type PushResult =
  | { readonly ok: true; readonly status: 200 | 202; readonly stored: boolean; readonly deviceId: string }
  | { readonly ok: false; readonly status: number; readonly code: string; readonly message: string };

/**
 * POST /v1/reports (Content-Type: application/jose). A refusal is a result whose code names the
 * problem (docs/reports.md); an unreachable admin API throws.
 */
export async function pushReport(adminUrl: string, token: string, jws: string): Promise<PushResult> {
  try {
    const outcome = await createAdminClient({ baseUrl: adminUrl, token }).postReport(jws);
    return { ok: true, status: outcome.stored ? 202 : 200, stored: outcome.stored, deviceId: outcome.deviceId };
  } catch (err) {
    if (err instanceof AdminApiError && err.status !== 0) return { ok: false, status: err.status, code: err.code, message: err.message };
    throw err;
  }
}

/** POST /v1/devices/{id}/app-passwords: a new app password for the device (shown once). Throws on refusal. */
export async function enrollDevice(
  adminUrl: string,
  token: string,
  subject: { user: string; deviceId: string },
): Promise<{ password: string; credentialId: string }> {
  const issued = await createAdminClient({ baseUrl: adminUrl, token }).issueAppPassword(subject.deviceId, subject.user);
  return { password: issued.password, credentialId: issued.credentialId };
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
