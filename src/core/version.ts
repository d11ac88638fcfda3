// The package version (package.json), found from this file's folder both in src/ (tests) and in
// dist/src/ (the built command), for `mailwarden --version` and the mailwarden_info metric.
import fs from 'node:fs';
import path from 'node:path';

function readVersion(): string {
  for (let dir = __dirname, i = 0; i < 5; i++, dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (!fs.existsSync(file)) continue;
    const pkg = JSON.parse(fs.readFileSync(file, 'utf8')) as { name?: string; version?: string };
    if (pkg.name === 'mailwarden' && typeof pkg.version === 'string') return pkg.version;
  }
  return 'unknown';
}

export const VERSION = readVersion();
