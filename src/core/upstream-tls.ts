// TLS client options for the connection to an upstream mail server (IMAP and SMTP legs): the
// certificate is verified against `caFile` (a private CA) or Node's public CAs, under `servername`.
import fs from 'node:fs';
import net from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import type { UpstreamConfig } from './config-types';

/** CA bundles by path, re-read when the file changes (a renewed CA needs no restart). */
const bundles = new Map<string, { readonly mtimeMs: number; readonly pem: Buffer }>();

function caBundle(file: string): Buffer {
  const { mtimeMs } = fs.statSync(file);
  const cached = bundles.get(file);
  if (cached && cached.mtimeMs === mtimeMs) return cached.pem;
  const pem = fs.readFileSync(file);
  bundles.set(file, { mtimeMs, pem });
  return pem;
}

/**
 * For tls.connect(): SNI and the name checked against the certificate are `servername`, else the
 * host name (an IP address gets no SNI, RFC 6066 §3, and is checked as an IP). Throws when caFile
 * cannot be read: the caller turns that into a failed upstream connection, never into no verification.
 */
export function upstreamTlsOptions(upstream: Pick<UpstreamConfig, 'host' | 'rejectUnauthorized' | 'caFile' | 'servername'>): ConnectionOptions {
  const servername = upstream.servername ?? (net.isIP(upstream.host) ? undefined : upstream.host);
  return {
    // Also with `socket:` (STARTTLS): without `host` Node checks the certificate against "localhost".
    host: upstream.host,
    ...(servername !== undefined && { servername }),
    rejectUnauthorized: upstream.rejectUnauthorized,
    ...(upstream.caFile !== undefined && { ca: caBundle(upstream.caFile) }),
  };
}
