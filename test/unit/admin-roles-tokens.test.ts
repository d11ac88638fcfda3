// Token hashing and lookup for role-scoped admin tokens, the config that holds them, and the CLI
// that makes an entry.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { hashToken, newToken, principalFor, roleAllows } from '../../src/admin/roles';
import { accessTokenEntry } from '../../src/cli/admin';
import { loadConfigFile } from '../../src/core/config';

const entry = (name: string, role: 'reporter' | 'admin', token: string) => ({ name, role, sha256: hashToken(token) });

test('a token maps to its name and role; legacy plain tokens are admins named by index', () => {
  const tokens = [entry('jamf', 'reporter', 'tok-a'), entry('ops', 'admin', 'tok-b')];
  expect(principalFor('tok-a', tokens, ['legacy-1'])).toEqual({ name: 'jamf', role: 'reporter' });
  expect(principalFor('legacy-1', tokens, ['legacy-1'])).toEqual({ name: 'admin.tokens[0]', role: 'admin' });
  expect(principalFor('tok-', tokens, ['legacy-1'])).toBeNull();
  expect(principalFor('', tokens, [''])).toBeNull();
});

test('roles are least privilege', () => {
  expect(roleAllows('reporter', 'reports:write')).toBe(true);
  expect(roleAllows('reporter', 'enrolment:write')).toBe(false);
  expect(roleAllows('metrics', 'devices:read')).toBe(false);
  expect(roleAllows('viewer', 'exemptions:write')).toBe(false);
  expect(roleAllows('helpdesk', 'exemptions:write')).toBe(true);
  expect(roleAllows('helpdesk', 'kill-switch:write')).toBe(false);
  expect(roleAllows('admin', 'kill-switch:write')).toBe(true);
});

test('new tokens are random and long; the CLI entry holds only the hash', () => {
  const a = newToken();
  expect(a).toMatch(/^mwt_[A-Za-z0-9_-]{43}$/);
  expect(newToken()).not.toBe(a);
  const line = accessTokenEntry('jamf', 'reporter', a);
  expect(line).toContain(hashToken(a));
  expect(line).not.toContain(a);
});

describe('config', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mw-roles-'));
    fs.writeFileSync(path.join(dir, 'policy.yaml'), 'checks: []\n');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const load = (admin: string) => {
    const file = path.join(dir, 'mailwarden.yaml');
    fs.writeFileSync(file, `instanceName: t\nadmin:\n  listen: { host: 127.0.0.1, port: 0 }\n${admin}`);
    return loadConfigFile(file);
  };

  test('accessTokens and the console section load with defaults', async () => {
    const config = await load(`  accessTokens:\n${accessTokenEntry('jamf', 'reporter', 'x')}\n`);
    expect(config.admin?.accessTokens).toEqual([{ name: 'jamf', role: 'reporter', sha256: hashToken('x') }]);
    expect(config.admin?.console).toMatchObject({ enabled: true, sessionMinutes: 480, selfService: true });
  });

  test('a bad role, a plain token where a hash belongs, and a repeated name name file, line and key', async () => {
    await expect(load('  accessTokens:\n    - { name: a, role: root, sha256: x }\n')).rejects.toThrow(/mailwarden\.yaml:5: admin\.accessTokens\[0\]\.role: must be one of/);
    await expect(load('  accessTokens:\n    - { name: a, role: admin, sha256: plain-token }\n')).rejects.toThrow(/admin\.accessTokens\[0\]\.sha256: must be 64 lower-case hex digits/);
    const twice = `  accessTokens:\n${accessTokenEntry('a', 'admin', 'x')}\n${accessTokenEntry('a', 'reporter', 'y')}\n`;
    await expect(load(twice)).rejects.toThrow(/admin\.accessTokens\[1\]\.name: "a" is used by another token/);
  });
});
