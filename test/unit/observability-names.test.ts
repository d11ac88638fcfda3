// Every PromQL expression shipped for operators (the Grafana dashboard, the alerting rules and the
// series their promtool tests feed in) names only metrics the code exports, under the labels the
// code sets: a renamed metric breaks this test, not a dashboard panel in production.
import fs from 'node:fs';
import path from 'node:path';
import { Registry } from 'prom-client';
import YAML from 'yaml';
import { createMetrics } from '../../src/admin/metrics';

const ROOT = path.resolve(__dirname, '../..');
const read = (file: string) => fs.readFileSync(path.join(ROOT, file), 'utf8');

/**
 * Metrics another part registers on the same registry, from a module that may not be on this branch
 * yet: checked against that module once it exists (src/admin/*-metrics.ts, create…Metrics(registry)).
 */
const FROM_OTHER_PARTS: Readonly<Record<string, string>> = {
  mailwarden_connector_last_success_timestamp_seconds: 'src/admin/connector-metrics.ts',
};

/** Series name → label names, for every metric the process exports (histograms as their series). */
async function exported(): Promise<Map<string, Set<string>>> {
  const metrics = createMetrics({ instanceName: 'mw-1', version: '0' });
  const registries = [metrics.registry];
  for (const file of fs.readdirSync(path.join(ROOT, 'src/admin')).filter((f) => /^[a-z-]+-metrics\.ts$/.test(f))) {
    const mod = require(path.join(ROOT, 'src/admin', file)) as Record<string, unknown>;
    for (const [name, create] of Object.entries(mod)) {
      if (!/^create\w*Metrics$/.test(name) || typeof create !== 'function') continue;
      const registry = new Registry();
      create(registry);
      registries.push(registry);
    }
  }
  const out = new Map<string, Set<string>>();
  for (const registry of registries) {
    for (const metric of await registry.getMetricsAsJSON()) {
      const m = registry.getSingleMetric(metric.name) as unknown as { labelNames?: string[] };
      // Prometheus adds these two to every scraped series; a histogram also has `le` on _bucket.
      const labels = new Set([...(m.labelNames ?? []), 'instance', 'job']);
      const names = String(metric.type) === 'histogram' ? ['_bucket', '_sum', '_count'].map((s) => metric.name + s) : [metric.name];
      for (const name of names) out.set(name, name.endsWith('_bucket') ? new Set([...labels, 'le']) : labels);
    }
  }
  return out;
}

const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'bool', 'and', 'or', 'unless', 'inf', 'nan']);

/** Metric names an expression selects, each with the label names its matchers use. */
export function selectors(expr: string): { name: string; labels: string[] }[] {
  const text = expr
    .replace(/\$\{\w+\}|\$\w+/g, '1m') // Grafana variables ($__rate_interval, $instance)
    .replace(/\[[^\]]*\]/g, '') // range and subquery durations
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/gi, ' '); // label lists
  const out: { name: string; labels: string[] }[] = [];
  const token = /(?<![\w."])([a-zA-Z_:][\w:]*)\s*(\{[^}]*\})?(\s*\()?/g;
  let m: RegExpExecArray | null;
  while ((m = token.exec(text))) {
    const [, name, matchers, call] = m;
    if (call || KEYWORDS.has(name!.toLowerCase())) continue; // a function call, or a keyword
    const labels = [...(matchers ?? '').matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g)].map((l) => l[1]!);
    out.push({ name: name!, labels });
  }
  return out;
}

/** Every expression with where it comes from. */
function shipped(): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  const dashboard = JSON.parse(read('deploy/grafana/mailwarden.json')) as { panels: { title: string; targets?: { expr: string }[] }[]; templating: { list: { name: string; definition?: string }[] } };
  for (const panel of dashboard.panels) for (const t of panel.targets ?? []) out.push({ where: `dashboard panel "${panel.title}"`, expr: t.expr });
  for (const v of dashboard.templating.list) {
    const inner = v.definition && /label_values\((.*),\s*\w+\)$/.exec(v.definition)?.[1];
    if (inner) out.push({ where: `dashboard variable ${v.name}`, expr: inner });
  }
  const alerts = YAML.parse(read('deploy/prometheus/alerts.yaml')) as { groups: { rules: { alert: string; expr: string }[] }[] };
  for (const rule of alerts.groups.flatMap((g) => g.rules)) out.push({ where: `alert ${rule.alert}`, expr: rule.expr });
  const tests = YAML.parse(read('deploy/prometheus/alerts.test.yaml')) as { tests: { name: string; input_series: { series: string }[] }[] };
  for (const t of tests.tests) for (const s of t.input_series) out.push({ where: `alerts.test.yaml "${t.name}"`, expr: s.series });
  return out;
}

test('the expression reader finds names and matcher labels, not functions, keywords or durations', () => {
  expect(selectors('sum by (le, protocol) (rate(mailwarden_x_bucket{result="ok",instance=~"$instance"}[$__rate_interval])) > 0.5 and on(job) up offset 1h')).toEqual([
    { name: 'mailwarden_x_bucket', labels: ['result', 'instance'] },
    { name: 'up', labels: [] },
  ]);
  expect(selectors('time() - max(a_b{c="d e"} > 0) or vector(0)')).toEqual([{ name: 'a_b', labels: ['c'] }]);
});

test('every metric the dashboard, the alerts and their tests name is one the code exports, with labels it sets', async () => {
  const known = await exported();
  const problems: string[] = [];
  let checked = 0;
  for (const { where, expr } of shipped()) {
    for (const { name, labels } of selectors(expr)) {
      checked++;
      const pending = FROM_OTHER_PARTS[name];
      if (!known.has(name) && pending && !fs.existsSync(path.join(ROOT, pending))) continue; // not on this branch yet
      const has = known.get(name);
      if (!has) problems.push(`${where}: ${name} is not exported`);
      else for (const label of labels) if (!has.has(label)) problems.push(`${where}: ${name} has no label ${label}`);
    }
  }
  expect(problems).toEqual([]);
  expect(checked).toBeGreaterThan(40);
});

test('the dashboard covers what an operator asks first', () => {
  const exprs = shipped().filter((s) => s.where.startsWith('dashboard')).map((s) => s.expr).join('\n');
  for (const name of [
    'mailwarden_logins_total',
    'mailwarden_check_results_total',
    'mailwarden_decisions_total',
    'mailwarden_upstream_breaker_open',
    'mailwarden_kill_switch_enabled',
    'mailwarden_brake_tripped',
    'mailwarden_policy_info',
    'mailwarden_upstream_login_seconds_bucket',
    'mailwarden_store_up',
  ]) {
    expect(exprs).toContain(name);
  }
});
