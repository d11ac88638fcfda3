// The metrics registry: every counter exists, decisions and report-mode check results are counted.
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

test('every metric is exposed, with the mailwarden_ prefix', async () => {
  const text = await createMetrics({ processMetrics: false }).text();
  for (const name of [
    'decisions_total',
    'decision_seconds',
    'check_results_total',
    'sessions_active',
    'logins_total',
    'revocations_total',
    'store_errors_total',
    'store_cache_total',
    'reload_total',
    'blast_radius_refusals_total',
    'brake_trips_total',
    'upstream_errors_total',
    'reports_total',
  ]) {
    expect(text).toContain(`# TYPE mailwarden_${name} `);
  }
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
  const m = createMetrics({ processMetrics: false, defaultLabels: { instance: 'mw-1' } });
  m.sessionDelta('imap', 1);
  m.sessionDelta('imap', 1);
  m.sessionDelta('imap', -1);
  m.onRevocation('imap');
  m.onStoreError();
  m.onStoreCache('hit');
  m.onReload('blast-radius');
  m.onBlastRadiusRefusal();
  m.onUpstreamError('smtp');
  const text = await m.text();
  expect(text).toContain('mailwarden_sessions_active{protocol="imap",instance="mw-1"} 1');
  expect(text).toContain('mailwarden_revocations_total{protocol="imap",instance="mw-1"} 1');
  expect(text).toContain('mailwarden_store_errors_total{instance="mw-1"} 1');
  expect(text).toContain('mailwarden_store_cache_total{result="hit",instance="mw-1"} 1');
  expect(text).toContain('mailwarden_reload_total{result="blast-radius",instance="mw-1"} 1');
  expect(text).toContain('mailwarden_blast_radius_refusals_total{instance="mw-1"} 1');
  expect(text).toContain('mailwarden_upstream_errors_total{protocol="smtp",instance="mw-1"} 1');
});

test('process metrics are on by default, in this registry only', async () => {
  const text = await createMetrics().text();
  expect(text).toContain('mailwarden_process_cpu_seconds_total');
  expect(text).toContain('mailwarden_nodejs_eventloop_lag_seconds');
});
