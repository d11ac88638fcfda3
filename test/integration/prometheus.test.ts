// The Prometheus alerting rules shipped in deploy/prometheus/ are valid (`promtool check rules`)
// and fire on the situations they name (`promtool test rules` with alerts.test.yaml).
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { findProgram } from '../harness/ports';

const DIR = path.resolve(__dirname, '../../deploy/prometheus');

function promtool(args: string[]): { status: number | null; output: string } {
  const bin = findProgram('promtool');
  if (!bin) throw new Error('promtool not found: apt-get install prometheus');
  const result = spawnSync(bin, args, { cwd: DIR, encoding: 'utf8' });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

it('promtool check rules accepts deploy/prometheus/alerts.yaml', () => {
  const result = promtool(['check', 'rules', 'alerts.yaml']);
  expect(result.output).toContain('SUCCESS: 7 rules found');
  expect(result.status).toBe(0);
});

it('promtool test rules: every alert fires on its situation and not on the healthy one', () => {
  const result = promtool(['test', 'rules', 'alerts.test.yaml']);
  expect(result.output).toContain('SUCCESS');
  expect(result.status).toBe(0);
});
