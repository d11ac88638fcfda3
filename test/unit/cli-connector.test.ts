// `mailwarden connector list|status|sync|apply` against a real admin listener in-process (fake
// services with scripted connector operations), through the CLI's entry point: tables, the diff,
// exit statuses, role checks and the audit of a sync.
import fs from 'node:fs';
import path from 'node:path';
import { main } from '../../src/cli/index';
import type { ConnectorOperations, ConnectorSummary } from '../../src/admin/routes/connectors';
import type { SyncReport } from '../../src/connectors/sync';
import { EXIT } from '../../src/core/exit-codes';
import { tempDir } from '../harness/ports';
import { ROLE_TOKENS, TOKEN, startFakeAdmin } from './admin-fakes';

const row = (platform: string, n: Partial<SyncReport['total']> = {}) => ({ platform, seen: 0, created: 0, changed: 0, newlyDenied: 0, removed: 0, skipped: 0, ...n });
const report = (result: SyncReport['result'], heldBecause: string[] = []): SyncReport => ({
  connector: 'intune',
  result,
  heldBecause,
  rows: [row('android', { seen: 3, created: 3 }), row('ios', { seen: 5, created: 4, changed: 1, newlyDenied: 1, skipped: 1 })],
  total: row('all', { seen: 8, created: 7, changed: 1, newlyDenied: 1, skipped: 1 }),
  newlyDenied: [{ deviceId: 'iphone-1', user: 'alice@example.com', platform: 'ios' }],
  durationSeconds: 1.25,
});

const summary = (over: Partial<ConnectorSummary> = {}): ConnectorSummary => ({
  name: 'intune',
  type: 'intune',
  enabled: true,
  intervalSeconds: 900,
  staleAfterSeconds: 3600,
  onStaleSource: 'last-known',
  stale: false,
  held: false,
  status: { connector: 'intune', lastSuccessAt: '2026-12-03T10:00:00.000Z', lastAttemptAt: '2026-12-03T10:00:00.000Z', result: 'applied', durationSeconds: 2.5, devicesSeen: 1200, skipped: 2 },
  ...over,
});

let admin: Awaited<ReturnType<typeof startFakeAdmin>>;
let dir: string;
let configFile: string;
let stdout: string[];
let stderr: string[];
let list: ConnectorSummary[];
let next: SyncReport | null;
const calls: string[] = [];

const ops: ConnectorOperations = {
  list: async () => list,
  sync: async (name, { dryRun }) => (calls.push(`sync ${name} dryRun=${dryRun}`), next),
  applyHeld: async (name) => (calls.push(`apply ${name}`), next),
};

beforeEach(async () => {
  admin = await startFakeAdmin({ connectors: ops });
  dir = tempDir('cli-connector');
  configFile = path.join(dir, 'mailwarden.yaml');
  fs.writeFileSync(configFile, `admin:\n  listen: { host: 127.0.0.1, port: ${admin.server.address.port} }\n  tokens: [${TOKEN}]\n`);
  list = [summary(), summary({ name: 'jamf', type: 'jamf', stale: true, status: null })];
  next = report('applied');
  calls.length = 0;
  stdout = [];
  stderr = [];
  jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => stdout.push(String(chunk)) > 0);
  jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => stderr.push(String(chunk)) > 0);
});
afterEach(async () => {
  jest.restoreAllMocks();
  process.exitCode = undefined;
  await admin.server.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const run = (...args: string[]) => main(['node', 'mailwarden', 'connector', ...args, '--config', configFile]);
const out = () => stdout.join('');

test('list and status print one row per connector', async () => {
  expect(await run('list')).toBe(0);
  expect(out()).toMatch(/^intune +intune +yes +900 s +3600 s +last-known$/m);
  stdout.length = 0;
  expect(await run('status')).toBe(0);
  expect(out()).toMatch(/^intune +ok +2026-12-03T10:00:00.000Z +applied +1200 +2 +2.5 s$/m);
  expect(out()).toMatch(/^jamf +never synced +- +- +- +- +-$/m);
});

test('sync --dry-run prints the diff table and exits 0; a held sync exits 77 with its reasons', async () => {
  next = report('dry-run');
  expect(await run('sync', 'intune', '--dry-run')).toBe(0);
  expect(calls).toEqual(['sync intune dryRun=true']);
  expect(out()).toContain('connector intune: dry run, nothing written');
  expect(out()).toMatch(/^ios +5 +4 +1 +1 +0 +1$/m);
  expect(out()).toMatch(/^all +8 +7 +1 +1 +0 +1$/m);

  stdout.length = 0;
  next = report('held', ['it would newly deny 1 of 8 devices (12.5%)']);
  expect(await run('sync', 'intune')).toBe(EXIT.refused);
  expect(out()).toContain('sync HELD, nothing written');
  expect(out()).toContain('Apply it anyway with: mailwarden connector apply intune --force');
  const audit = JSON.stringify(await admin.store.readAudit('0', 10));
  expect(audit).toContain('"operation":"connector-sync"');
  expect(audit).toContain('"result":"held"');
});

test('a failed sync exits 69; a sync running elsewhere is 409 CONNECTOR_BUSY (77); an unknown name 404 (77)', async () => {
  next = { ...report('failed'), error: 'GET /deviceManagement/managedDevices: HTTP 503' };
  expect(await run('sync', 'intune')).toBe(EXIT.unreachable);
  next = null;
  expect(await run('sync', 'intune')).toBe(EXIT.refused);
  expect(stderr.join('')).toContain('(409 CONNECTOR_BUSY)');
  expect(await run('sync', 'fleet')).toBe(EXIT.refused);
  expect(stderr.join('')).toContain('no connector named "fleet" (connectors: intune, jamf) (404 CONNECTOR_NOT_FOUND)');
});

test('apply needs --force (64, nothing called), then a held sync; without one 409 NO_HELD_SYNC', async () => {
  expect(await run('apply', 'intune')).toBe(EXIT.usage);
  expect(calls).toEqual([]);
  expect(await run('apply', 'intune', '--force')).toBe(EXIT.refused);
  expect(stderr.join('')).toContain('(409 NO_HELD_SYNC)');
  list = [summary({ held: true })];
  expect(await run('apply', 'intune', '--force')).toBe(0);
  expect(calls).toEqual(['apply intune']);
  expect(out()).toContain('connector intune: sync applied');
});

test('a viewer token reads the status but may not sync or apply (403, exit 77)', async () => {
  const viewer = ROLE_TOKENS.find((t) => t.role === 'viewer')!.token;
  expect(await run('status', '--token', viewer)).toBe(0);
  expect(await run('sync', 'intune', '--dry-run', '--token', viewer)).toBe(EXIT.refused);
  expect(stderr.join('')).toContain('(403 FORBIDDEN)');
  expect(calls).toEqual([]);
});
