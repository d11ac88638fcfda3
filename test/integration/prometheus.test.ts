// The Prometheus alerting rules shipped in deploy/prometheus/ are valid (`promtool check rules`)
// and fire on the situations they name (`promtool test rules` with alerts.test.yaml); what
// /metrics serves passes Prometheus's own linter (`promtool check metrics`); every query of the
// Grafana dashboard parses as PromQL (`promtool check rules` on them as recording rules).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { findProgram, tempDir } from '../harness/ports';
import { createMetrics } from '../../src/admin/metrics';

const DIR = path.resolve(__dirname, '../../deploy/prometheus');

function promtool(args: string[], input?: string): { status: number | null; output: string } {
  const bin = findProgram('promtool');
  if (!bin) throw new Error('promtool not found: apt-get install prometheus');
  const result = spawnSync(bin, args, { cwd: DIR, encoding: 'utf8', input });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

it('promtool check rules accepts deploy/prometheus/alerts.yaml', () => {
  const result = promtool(['check', 'rules', 'alerts.yaml']);
  expect(result.output).toContain('SUCCESS: 8 rules found');
  expect(result.status).toBe(0);
});

it('promtool test rules: every alert fires on its situation and not on the healthy one', () => {
  const result = promtool(['test', 'rules', 'alerts.test.yaml']);
  expect(result.output).toContain('SUCCESS');
  expect(result.status).toBe(0);
});

it('promtool check metrics: the exposition of every series (process metrics, each state gauge, a histogram) is lint-clean', async () => {
  const metrics = createMetrics({ instanceName: 'mw-1', version: '0.0.0-test' });
  metrics.readFrom({
    storeUp: async () => true,
    killSwitch: async () => {
      throw new Error('store down'); // the NaN of a state that cannot be read must parse too
    },
    brakeReportOnly: () => ['banned-apps'],
    policyVersion: () => 'abc123',
    breakers: () => [{ service: 'imap', upstream: '127.0.0.1:143', tripped: true }],
  });
  metrics.onLogin('imap', 'allow');
  metrics.onUpstreamLogin('smtp', 'ok', 0.02);
  metrics.onUpstreamError('imap', 'tls');
  const text = await metrics.text();
  const result = promtool(['check', 'metrics'], text);
  // The one complaint allowed: prom-client's standard Node.js gauges keep the names stock Node.js
  // dashboards query (docs/metrics.md#naming-rules); every metric of ours is clean.
  const STANDARD = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];
  const complaints = result.output.split('\n').filter(Boolean);
  expect(complaints).toEqual(STANDARD.map((name) => `${name} non-counter metrics should not have "_total" suffix`));
  expect(text).toMatch(/^mailwarden_kill_switch_enabled nan$/im);
});

it('every query of deploy/grafana/mailwarden.json is valid PromQL (promtool check rules)', () => {
  const dashboard = JSON.parse(fs.readFileSync(path.resolve(DIR, '../grafana/mailwarden.json'), 'utf8')) as { panels: { targets?: { expr: string }[] }[] };
  // Grafana's variables, as Grafana fills them in before sending the query.
  const filled = (expr: string) => expr.replaceAll('$__rate_interval', '5m').replaceAll('$instance', '.*').replaceAll('$job', '.*');
  const rules = dashboard.panels.flatMap((p) => p.targets ?? []).map((t, i) => ({ record: `dashboard:query_${i}`, expr: filled(t.expr) }));
  expect(rules.length).toBeGreaterThan(15);
  const dir = tempDir('grafana');
  try {
    const file = path.join(dir, 'dashboard-queries.yaml');
    fs.writeFileSync(file, YAML.stringify({ groups: [{ name: 'dashboard', rules }] }));
    const result = promtool(['check', 'rules', file]);
    expect(result.output).toContain(`SUCCESS: ${rules.length} rules found`);
    expect(result.status).toBe(0);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
