// The metrics registry: every metric exists under the naming rules of docs/metrics.md, decisions and
// report-mode check results are counted, state gauges are read at scrape time.
import { createMetrics } from '../../src/admin/metrics';
import type { Decision } from '../../src/policy/decision';

const decision: Decision = {
  action: 'allow',
  reasonCode: 'OK',
  fault: 'policy',
  refId: 'R1',
  warnings: [],
  checks: [
    { checkId: 'banned-apps', plugin: 'banned-apps', mode: 'enforce', effectiveMode: 'report', outcome: 'fail', code: 'BANNED_APP', ms: 0.1 },
    { checkId: 'min-os', plugin: 'min-os-version', mode: 'enforce', effectiveMode: 'enforce', outcome: 'pass', ms: 0.1 },
  ],
  user: 'alice@example.com',
  deviceId: 'd1',
  identitySource: 'app-password',
  identityStrength: 'strong',
  protocol: 'imap',
  policyVersion: 'v1',
  at: '2030-01-01T00:00:00Z',
};

test('every metric of ours is exposed with the mailwarden_ prefix; counters end in _total, nothing else does', async () => {
  const m = createMetrics({ processMetrics: false, instanceName: 'mw-1', version: '1.2.3' });
  m.readFrom({ storeUp: async () => true, killSwitch: async () => false, brakeReportOnly: () => [], policyVersion: () => 'v1', breakers: () => [] });
  const text = await m.text();
  const types = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map(([, name, type]) => ({ name, type }));
  for (const name of [
    'info',
    'decisions_total',
    'decision_seconds',
    'check_results_total',
    'sessions_active',
    'logins_total',
    'revocations_total',
    'store_up',
    'store_errors_total',
    'store_cache_total',
    'reload_total',
    'policy_info',
    'policy_activated_timestamp_seconds',
    'blast_radius_refusals_total',
    'brake_trips_total',
    'brake_tripped',
    'brake_report_only_checks',
    'kill_switch_enabled',
    'upstream_breaker_open',
    'upstream_breaker_trips_total',
    'upstream_login_seconds',
    'upstream_errors_total',
    'reports_total',
    'report_last_stored_timestamp_seconds',
  ]) {
    expect(types.map((t) => t.name)).toContain(`mailwarden_${name}`);
  }
  for (const { name, type } of types) {
    expect(name).toMatch(/^mailwarden_[a-z_]+$/);
    expect({ name, counter: type === 'counter' }).toEqual({ name, counter: name.endsWith('_total') });
  }
  // No application-set `instance` label anywhere: Prometheus sets it per target.
  expect(text).not.toMatch(/[{,]instance=/);
  expect(text).toContain('mailwarden_info{instance_name="mw-1",version="1.2.3"} 1');
});

test('a decision counts its action, reason, latency and each check by effective mode', async () => {
  const m = createMetrics({ processMetrics: false });
  m.onDecision(decision, 0.002);
  m.onDecision({ ...decision, action: 'deny', reasonCode: 'BANNED_APP', protocol: 'smtp', checks: [] }, 0.004);
  const text = await m.text();
  expect(text).toContain('mailwarden_decisions_total{protocol="imap",action="allow",reason="OK"} 1');
  expect(text).toContain('mailwarden_decisions_total{protocol="smtp",action="deny",reason="BANNED_APP"} 1');
  expect(text).toContain('mailwarden_check_results_total{check="banned-apps",outcome="fail",mode="report"} 1');
  expect(text).toContain('mailwarden_check_results_total{check="min-os",outcome="pass",mode="enforce"} 1');
  expect(text).toContain('mailwarden_decision_seconds_bucket{le="0.0025",protocol="imap"} 1');
  expect(text).toContain('mailwarden_decision_seconds_count{protocol="smtp"} 1');
});

test('the small methods move their series', async () => {
  const m = createMetrics({ processMetrics: false });
  m.sessionDelta('imap', 1);
  m.sessionDelta('imap', 1);
  m.sessionDelta('imap', -1);
  m.onRevocation('imap');
  m.onStoreError();
  m.onStoreCache('hit');
  m.onReload('blast-radius');
  m.onBlastRadiusRefusal();
  m.onUpstreamError('smtp', 'tls');
  m.onUpstreamLogin('imap', 'ok', 0.03);
  m.onUpstreamLogin('imap', 'error', 4);
  const text = await m.text();
  expect(text).toContain('mailwarden_sessions_active{protocol="imap"} 1');
  expect(text).toContain('mailwarden_revocations_total{protocol="imap"} 1');
  expect(text).toContain('mailwarden_store_errors_total 1');
  expect(text).toContain('mailwarden_store_cache_total{result="hit"} 1');
  expect(text).toContain('mailwarden_reload_total{result="blast-radius"} 1');
  expect(text).toContain('mailwarden_blast_radius_refusals_total 1');
  expect(text).toContain('mailwarden_upstream_errors_total{protocol="smtp",reason="tls"} 1');
  expect(text).toContain('mailwarden_upstream_login_seconds_bucket{le="0.05",protocol="imap",result="ok"} 1');
  expect(text).toContain('mailwarden_upstream_login_seconds_bucket{le="2.5",protocol="imap",result="error"} 0');
  expect(text).toContain('mailwarden_upstream_login_seconds_count{protocol="imap",result="error"} 1');
});

test('state gauges read their source at each scrape: store, brake, policy version, breakers', async () => {
  const m = createMetrics({ processMetrics: false });
  let up = true;
  let held: string[] = [];
  let version = 'v1';
  m.readFrom({
    storeUp: async () => up,
    brakeReportOnly: () => held,
    policyVersion: () => version,
    breakers: () => [{ service: 'smtp', upstream: '127.0.0.1:587', tripped: !up }],
  });
  let text = await m.text();
  expect(text).toMatch(/^mailwarden_store_up 1$/m);
  expect(text).toMatch(/^mailwarden_brake_tripped 0$/m);
  expect(text).toMatch(/^mailwarden_policy_info\{version="v1"\} 1$/m);
  expect(text).toMatch(/^mailwarden_upstream_breaker_open\{service="smtp",upstream="127.0.0.1:587"\} 0$/m);
  up = false;
  held = ['banned-apps', 'min-os'];
  version = 'v2';
  text = await m.text();
  expect(text).toMatch(/^mailwarden_store_up 0$/m);
  expect(text).toMatch(/^mailwarden_brake_tripped 1$/m);
  expect(text).toMatch(/^mailwarden_brake_report_only_checks 2$/m);
  // Only the version in force: the old one is gone, not left at 1 beside it.
  expect(text).toMatch(/^mailwarden_policy_info\{version="v2"\} 1$/m);
  expect(text).not.toContain('version="v1"');
  expect(text).toMatch(/^mailwarden_upstream_breaker_open\{service="smtp",upstream="127.0.0.1:587"\} 1$/m);
});

test('process and Node.js metrics are on by default under their standard names, in this registry only', async () => {
  const text = await createMetrics().text();
  expect(text).toMatch(/^process_cpu_seconds_total \d/m);
  expect(text).toMatch(/^process_resident_memory_bytes \d/m);
  expect(text).toContain('# TYPE nodejs_eventloop_lag_seconds gauge');
  expect(text).not.toContain('mailwarden_process_');
  expect(text).not.toContain('mailwarden_nodejs_');
});
