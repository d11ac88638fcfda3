// A throw-away test CA with a server certificate for 127.0.0.1/localhost and, on request, client
// certificates (device identities), made with openssl into a temp dir at test time.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { findProgram, tempDir } from './ports';

export interface TestPki {
  readonly dir: string;
  /** PEM paths. */
  readonly caCert: string;
  readonly serverCert: string;
  readonly serverKey: string;
  /** A client certificate signed by the same CA with the given subject CN (and optional emailAddress). */
  clientCert(cn: string, email?: string): { cert: string; key: string };
  cleanup(): void;
}

export function makeTestPki(): TestPki {
  const openssl = findProgram('openssl');
  if (!openssl) throw new Error('openssl not found: apt-get install openssl');
  const dir = tempDir('pki');
  const run = (...args: string[]): void => {
    execFileSync(openssl, args, { cwd: dir, stdio: 'pipe' });
  };
  const p = (name: string): string => path.join(dir, name);

  run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', '/CN=mailwarden test CA', '-keyout', p('ca.key'), '-out', p('ca.pem'));
  const issue = (name: string, subject: string, ext: string): void => {
    run('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', subject, '-keyout', p(`${name}.key`), '-out', p(`${name}.csr`));
    fs.writeFileSync(p(`${name}.ext`), ext);
    run('x509', '-req', '-in', p(`${name}.csr`), '-CA', p('ca.pem'), '-CAkey', p('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', p(`${name}.ext`), '-out', p(`${name}.pem`));
  };
  issue('server', '/CN=localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');

  return {
    dir,
    caCert: p('ca.pem'),
    serverCert: p('server.pem'),
    serverKey: p('server.key'),
    clientCert(cn: string, email?: string) {
      const name = `client-${cn.replace(/[^A-Za-z0-9-]/g, '_')}`;
      issue(name, `/CN=${cn}${email ? `/emailAddress=${email}` : ''}`, 'extendedKeyUsage=clientAuth\n');
      return { cert: p(`${name}.pem`), key: p(`${name}.key`) };
    },
    cleanup() {
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
