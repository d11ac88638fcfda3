// A client certificate that a gateway verified, rebuilt from the fields it passes on (nginx
// Auth-SSL-*, Postfix ccert_*), in the shape the `certificate` identity source reads.
import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';

/** The fields the certificate identity source reads (src/identity/certificate.ts). */
export interface GatewayCertificate {
  readonly subject: Readonly<Record<string, string>>;
  readonly issuer: Readonly<Record<string, string>>;
  readonly serialNumber?: string;
  readonly fingerprint256?: string;
  readonly subjectaltname?: string;
}

/**
 * Split a distinguished name, `CN=alice-iphone,O=Example\, Inc.` (RFC 4514, nginx's
 * Auth-SSL-Subject) or one attribute per line (Node's X509Certificate.subject), into attributes.
 * An attribute that occurs twice is dropped: the certificate source must never pick one of two.
 */
export function parseDistinguishedName(dn: string): Record<string, string> {
  const out: Record<string, string> = {};
  const seen = new Set<string>();
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < dn.length; i++) {
    const c = dn[i]!;
    if (c === '\\' && i + 1 < dn.length) {
      current += dn[++i];
    } else if (c === ',' || c === '\n') {
      parts.push(current);
      current = '';
    } else current += c;
  }
  parts.push(current);
  for (const part of parts) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (seen.has(key)) delete out[key];
    else out[key] = value;
    seen.add(key);
  }
  return out;
}

/** From a PEM the gateway forwarded (nginx `auth_http_pass_client_cert on`); null when unparsable. */
export function certificateFromPem(pem: string): GatewayCertificate | null {
  try {
    const x509 = new X509Certificate(pem);
    return {
      subject: parseDistinguishedName(x509.subject),
      issuer: parseDistinguishedName(x509.issuer),
      serialNumber: x509.serialNumber.toUpperCase(),
      fingerprint256: x509.fingerprint256,
      ...(x509.subjectAltName ? { subjectaltname: x509.subjectAltName } : {}),
    };
  } catch {
    return null;
  }
}

/** `ab:cd…`, `ABCD…` → `AB:CD:…`, Node's fingerprint256 form. */
export function colonHex(hex: string): string {
  const bare = hex.replace(/:/g, '').toUpperCase();
  return /^[0-9A-F]+$/.test(bare) && bare.length % 2 === 0 ? (bare.match(/../g) ?? []).join(':') : '';
}

/**
 * The certificate source takes a Node PeerCertificate; it reads only the fields above, so the rest
 * of that large interface is left out on purpose.
 */
export function asPeerCertificate(cert: GatewayCertificate): PeerCertificate {
  return cert as unknown as PeerCertificate;
}
