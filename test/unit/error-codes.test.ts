// docs/errors.md lists exactly the codes the registries hold, each with the status the code answers
// with (the habit of fastify's errors test): a code added, renamed or dropped in the code without
// the page, or on the page without the code, fails here. The registries: CoreReasonCodes and each
// built-in plugin's `codes` (decisions), ReportErrorCodes (POST /v1/reports), AdminErrorCodes (the
// admin API), EXIT (the command line). Configuration errors carry no code: file, line, key, message.
import fs from 'node:fs';
import path from 'node:path';
import { AdminErrorCodes, statusOf } from '../../src/admin/errors';
import { ReportErrorCodes } from '../../src/admin/reports';
import { EXIT } from '../../src/core/exit-codes';
import { CoreReasonCodes, type CheckPlugin } from '../../src/policy/contract';

const ROOT = path.resolve(__dirname, '../..');
const page = fs.readFileSync(path.join(ROOT, 'docs/errors.md'), 'utf8');

/** The table rows (cells, trimmed) of the `## heading` section, header and rule lines left out. */
function rows(heading: string): string[][] {
  const section = page.split(/^## /m).find((s) => s.startsWith(heading));
  if (!section) throw new Error(`docs/errors.md has no section "## ${heading}"`);
  return section
    .split('\n')
    .filter((line) => line.startsWith('|'))
    .slice(2)
    .map((line) => line.slice(1, -1).split('|').map((cell) => cell.trim()));
}

const codesIn = (cell: string) => [...cell.matchAll(/`([A-Z][A-Z0-9_]+)`/g)].map((m) => m[1]);
const sorted = (codes: Iterable<string>) => [...new Set(codes)].sort();

const pluginFiles = fs.readdirSync(path.join(ROOT, 'plugins')).filter((f) => f.endsWith('.ts'));
const plugins = pluginFiles.map((f) => ({
  file: f,
  source: fs.readFileSync(path.join(ROOT, 'plugins', f), 'utf8'),
  plugin: (require(path.join(ROOT, 'plugins', f)) as { default: CheckPlugin }).default,
}));

describe('docs/errors.md and the code registries', () => {
  test('decision reason codes: the core registry and the codes each built-in plugin declares', () => {
    expect(plugins.length).toBeGreaterThan(0);
    const declared = plugins.flatMap(({ plugin }) => plugin.codes ?? []);
    const listed = rows('Decision reason codes').flatMap((r) => codesIn(r[0]));
    expect(sorted(listed)).toEqual(sorted([...Object.values(CoreReasonCodes), ...declared]));
  });

  test.each(plugins.map((p) => [p.file, p] as const))('%s declares every code it writes out', (_file, { plugin, source }) => {
    const written = [...source.matchAll(/\bcode: '([A-Z][A-Z0-9_]+)'/g)].map((m) => m[1]);
    expect(plugin.codes?.length).toBeGreaterThan(0);
    for (const code of written) expect(plugin.codes).toContain(code);
  });

  test('report ingest: every ReportErrorCode, plus the admin codes the report route answers, with their status', () => {
    const fromAdmin = ['BODY_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE', 'STORE_UNAVAILABLE'] as const;
    const table = rows('Device report ingest');
    expect(sorted(table.flatMap((r) => codesIn(r[1])))).toEqual(sorted([...Object.keys(ReportErrorCodes), ...fromAdmin]));
    for (const [status, cell] of table) for (const code of codesIn(cell)) expect([code, Number(status)]).toEqual([code, statusOf(code as never)]);
  });

  test('admin API: exactly AdminErrorCodes, each with its status', () => {
    const table = rows('Admin API');
    expect(sorted(table.flatMap((r) => codesIn(r[1])))).toEqual(sorted(Object.keys(AdminErrorCodes)));
    for (const [status, cell] of table) for (const code of codesIn(cell)) expect([code, Number(status)]).toEqual([code, statusOf(code as never)]);
  });

  test('command line: exactly the exit statuses in EXIT; configuration errors exit with EXIT.config', () => {
    expect(rows('Command line').map((r) => Number(r[0])).sort((a, b) => a - b)).toEqual(Object.values(EXIT).sort((a, b) => a - b));
    expect(page).toContain(`the process exits with status ${EXIT.config}`);
  });
});
