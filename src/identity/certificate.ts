// Client-certificate identity: the device id (and optionally the user) from a field of the verified
// peer certificate the MDM's CA issued. Combines with a password login, which goes upstream as is.
import type { PeerCertificate } from 'node:tls';
import type { IdentitySourceConfig } from '../core/config-types';
import type { CredentialContext, IdentityResult, UpstreamLogin } from './types';
import { badCredentials, passthrough, verifiedUpstream, type IdentitySourceHandler } from './source';
import { sameUser, validateIdentifier } from './validate';

export type CertificateSourceConfig = Extract<IdentitySourceConfig, { type: 'certificate' }>;

/** Reads one field; undefined when the certificate does not carry it. */
type FieldReader = (cert: PeerCertificate) => string | string[] | undefined;

/**
 * Split Node's `subjectaltname` string: `URI:urn:device:abc, DNS:x.example, URI:"a\u002cb"`.
 * Since Node 17 (CVE-2021-44532) values with special characters are JSON-quoted.
 */
export function parseSubjectAltNames(value: string): string[] {
  const entries: string[] = [];
  const entry = /\s*([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)(?:,|$)/gy;
  let match: RegExpExecArray | null;
  while (entry.lastIndex < value.length && (match = entry.exec(value)) !== null) {
    const raw = match[2]!;
    try {
      entries.push(`${match[1]}:${raw.startsWith('"') ? (JSON.parse(raw) as string) : raw}`);
    } catch {
      return entries; // an unparsable quoted value ends the list rather than misreading it
    }
  }
  return entries;
}

/**
 * Field syntax (config `deviceField` / `userField`):
 * - `<attr>` or `subject.<attr>`: a subject attribute, e.g. `CN`, `serialNumber`, `UID`, `emailAddress`
 * - `cert.serialNumber`, `cert.fingerprint256`: the certificate's own serial number (hex) or SHA-256
 *   fingerprint
 * - `subjectaltname:<prefix>`: the rest of the first subject alternative name that starts with
 *   `<prefix>`, e.g. `subjectaltname:URI:urn:device:` or `subjectaltname:email:`
 */
export function parseCertificateField(spec: string, where: string): FieldReader {
  const attr = /^(?:subject\.)?([A-Za-z][A-Za-z0-9]*)$/.exec(spec)?.[1];
  if (attr !== undefined) {
    return (cert) => (cert.subject as unknown as Record<string, string | string[]> | undefined)?.[attr];
  }
  if (spec === 'cert.serialNumber') return (cert) => cert.serialNumber || undefined;
  if (spec === 'cert.fingerprint256') return (cert) => cert.fingerprint256 || undefined;
  if (spec.startsWith('subjectaltname:') && spec.length > 'subjectaltname:'.length) {
    const prefix = spec.slice('subjectaltname:'.length);
    return (cert) => {
      const hit = parseSubjectAltNames(cert.subjectaltname ?? '').find((name) => name.startsWith(prefix));
      return hit === undefined ? undefined : hit.slice(prefix.length);
    };
  }
  throw new Error(
    `${where}: unknown certificate field "${spec}" (CN, subject.<attr>, cert.serialNumber, cert.fingerprint256, subjectaltname:<prefix>)`,
  );
}

/** A field read as one value; null when absent, an error string when ambiguous or invalid. */
function readField(reader: FieldReader, cert: PeerCertificate, name: string): { value: string } | { problem: string } | null {
  const value = reader(cert);
  if (value === undefined || value === '') return null;
  if (Array.isArray(value)) return { problem: `certificate ${name} occurs ${value.length} times` };
  const problem = validateIdentifier(value, `certificate ${name}`);
  return problem ? { problem } : { value };
}

export function createCertificateSource(config: CertificateSourceConfig, field: string): IdentitySourceHandler {
  const deviceReader = parseCertificateField(config.deviceField, `${field}.deviceField`);
  const userReader = config.userField === undefined ? null : parseCertificateField(config.userField, `${field}.userField`);

  async function resolve(context: CredentialContext): Promise<IdentityResult | null> {
    const cert = context.peerCertificate;
    if (!cert) return null;
    const { credential } = context;
    // A certificate without the configured field identifies nothing: later sources may.
    const device = readField(deviceReader, cert, config.deviceField);
    if (!device) return null;
    if ('problem' in device) return badCredentials(device.problem);

    const identified = (user: string, upstream: UpstreamLogin): IdentityResult => ({
      ok: true,
      user,
      deviceId: device.value,
      source: 'certificate',
      strength: 'strong',
      upstream,
    });
    if (userReader) {
      const user = readField(userReader, cert, config.userField!);
      if (!user) return null;
      if ('problem' in user) return badCredentials(user.problem);
      if (credential.username !== undefined && !sameUser(credential.username, user.value)) {
        return badCredentials('login name is not the user named in the client certificate');
      }
      return identified(user.value, verifiedUpstream(context, user.value));
    }
    // Without a user field the certificate proves only the device: the upstream checks the login.
    if (credential.username === undefined) return null;
    return identified(credential.username, passthrough(credential, credential.username));
  }

  return { type: 'certificate', resolve };
}
