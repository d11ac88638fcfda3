// An app-password HMAC key file in a test's temp dir: a config with a Redis store refuses the
// built-in key (src/core/config-production.ts), as a production setup must.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** Writes a fresh 48-character key into `dir`; returns the file name, for `hmacKeyFile`. */
export function writeAppPasswordKey(dir: string, name = 'app-password.key'): string {
  fs.writeFileSync(path.join(dir, name), randomBytes(36).toString('base64'));
  return name;
}
