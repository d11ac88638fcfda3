// Server-side TLS on an already accepted socket (implicit TLS after a PROXY header, or STARTTLS),
// with client-certificate verification computed the way tls.Server does it.
import type { Duplex } from 'node:stream';
import tls from 'node:tls';

/** Bound on a TLS handshake (Node's default is 120 s: a client that never finishes its handshake would hold the socket that long). */
export const HANDSHAKE_MS = 15000;

/**
 * Wraps `socket` as a TLS server socket; `onSecure` runs after the handshake. A TLSSocket made by
 * hand (not by a tls.Server) never sets `authorized`, so it is set here from OpenSSL's verification
 * result, exactly as tls.Server's own handler does; if that result cannot be read the certificate
 * counts as unverified (fail closed: no device identity from it). Destroyed on error or timeout.
 */
export function serverTls(socket: Duplex, context: tls.SecureContext, requestCert: boolean, onSecure: (secure: tls.TLSSocket) => void): tls.TLSSocket {
  const secure = new tls.TLSSocket(socket as never, { isServer: true, secureContext: context, requestCert, rejectUnauthorized: false });
  const timer = setTimeout(() => secure.destroy(), HANDSHAKE_MS);
  secure.on('error', () => secure.destroy());
  secure.once('close', () => clearTimeout(timer));
  secure.once('secure', () => {
    clearTimeout(timer);
    if (requestCert) {
      const handle = (secure as unknown as { _handle?: { verifyError?: () => Error | null } })._handle;
      const error = typeof handle?.verifyError === 'function' ? handle.verifyError() : new Error('verification result unavailable');
      secure.authorized = error === null;
      if (error) secure.authorizationError = error;
    }
    onSecure(secure);
  });
  return secure;
}
