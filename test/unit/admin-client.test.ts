// Where the CLI finds the admin API: --url/--token, MAILWARDEN_ADMIN_TOKEN, the config's admin section.
import fs from 'node:fs';
import path from 'node:path';
import { baseUrlFor, resolveAdminTarget } from '../../src/admin/client';
import { tempDir } from '../harness/ports';

let dir: string;
beforeEach(() => {
  dir = tempDir('admin-client');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function config(text: string): string {
  const file = path.join(dir, 'mailwarden.yaml');
  fs.writeFileSync(file, text);
  return file;
}

test('the config admin section gives URL and first token; only that section is read', async () => {
  const file = config('store: { type: nonsense }\nadmin:\n  listen: { host: 127.0.0.1, port: 8025 }\n  tokens: [first, second]\n');
  expect(await resolveAdminTarget({ config: file }, {})).toEqual({ baseUrl: 'http://127.0.0.1:8025', token: 'first' });
});

test('MAILWARDEN_ADMIN_TOKEN beats the config; --token beats both; --url and --token need no config', async () => {
  const file = config('admin:\n  listen: { host: 127.0.0.1, port: 8025 }\n  tokens: [first]\n');
  expect((await resolveAdminTarget({ config: file }, { MAILWARDEN_ADMIN_TOKEN: 'env' })).token).toBe('env');
  expect((await resolveAdminTarget({ config: file, token: 'flag' }, { MAILWARDEN_ADMIN_TOKEN: 'env' })).token).toBe('flag');
  expect(await resolveAdminTarget({ config: '/nonexistent', url: 'http://h:1', token: 't' }, {})).toEqual({ baseUrl: 'http://h:1', token: 't' });
  await expect(resolveAdminTarget({ config: '/nonexistent', url: 'h:1', token: 't' }, {})).rejects.toThrow(/--url must be an http\(s\) URL/);
});

test('bad or incomplete config files are named', async () => {
  await expect(resolveAdminTarget({ config: config('admin: [\n') }, {})).rejects.toThrow(/not valid YAML/);
  await expect(resolveAdminTarget({ config: config('admin:\n  listen: { host: 127.0.0.1, port: 8025 }\n') }, {})).rejects.toThrow(
    /admin\.tokens is empty/,
  );
});

test('wildcard listen addresses are reached on loopback; IPv6 gets brackets', () => {
  expect(baseUrlFor({ host: '0.0.0.0', port: 1 })).toBe('http://127.0.0.1:1');
  expect(baseUrlFor({ host: '::', port: 2 })).toBe('http://[::1]:2');
  expect(baseUrlFor({ host: '::1', port: 3 })).toBe('http://[::1]:3');
  expect(baseUrlFor({ host: 'admin.internal', port: 4 })).toBe('http://admin.internal:4');
});
