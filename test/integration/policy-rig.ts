// A runtime on a real redis-server with the TikTok policy, for the hardening suites (policy file
// writes, hostile records): the config files in a temp dir, a reporter key, decisions and reports.
import fs from 'node:fs';
import path from 'node:path';
import { startRuntime, type Runtime, type RuntimeOptions } from '../../src/app/runtime';
import { createLogger, type Logger } from '../../src/core/log';
import type { Decision, DecisionRequest } from '../../src/policy/decision';
import { buildReport, makeReporterKeys, pushReport, signReport, type ReportInput } from '../../src/kit';
import type { RedisServer } from '../harness/redis';
import { tempDir } from '../harness/ports';

export const ADMIN_TOKEN = 'policy-rig-admin-token-8d2e41';
export const TIKTOK = 'com.zhiliaoapp.musically';

export interface PolicyOptions {
  /** Leave the TikTok check out (the first chunk of a half-written file). */
  readonly withoutTiktok?: boolean;
  readonly maxNewlyDeniedPercent?: number;
  readonly maxNewlyDeniedCount?: number;
  readonly brake?: string;
  /** Extra top-level YAML. */
  readonly extra?: string;
}

/** require-device plus the TikTok check (onUnknown: fail, the default); a trailing comment keeps versions apart. */
export function policyYaml(opts: PolicyOptions = {}): string {
  const tiktok = `
  - id: no-tiktok
    plugin: banned-apps
    mode: enforce
    scope: { platforms: [ios, ipados, android] }
    options:
      apps: { ios: [${TIKTOK}], android: [${TIKTOK}] }
      names: { ${TIKTOK}: TikTok }
    message: "Mail is blocked on this {platform} device because {app} is installed. Ref {refId}."
`;
  return `reportOnly: false
helpdesk: "helpdesk@example.com"
blastRadius: { maxNewlyDeniedPercent: ${opts.maxNewlyDeniedPercent ?? 20}, maxNewlyDeniedCount: ${opts.maxNewlyDeniedCount ?? 500} }
brake: ${opts.brake ?? '{ enabled: false }'}
${opts.extra ?? ''}
checks:
  - id: require-device
    plugin: require-device
    mode: enforce
    message: "Enrol this device. Ref {refId}."
${opts.withoutTiktok ? '' : tiktok}`;
}

export function configYaml(redis: RedisServer, keyPrefix: string, extra = ''): string {
  return `instanceName: policy-rig
policyFile: policy.yaml
store:
  type: redis
  redis: { mode: standalone, host: ${redis.host}, port: ${redis.port}, keyPrefix: "${keyPrefix}", commandTimeoutMs: 300, connectTimeoutMs: 1000 }
  cache: { maxEntries: 1000, maxAgeMs: 0 }
reports:
  jwksFile: reporters.jwks.json
  algorithms: [ES256]
admin:
  listen: { host: 127.0.0.1, port: 0 }
  tokens: [${ADMIN_TOKEN}]
identity:
  sources:
    - type: asserted
      separator: "+"
logging: { level: warn }
${extra}`;
}

export interface Rig {
  readonly dir: string;
  readonly configFile: string;
  readonly policyFile: string;
  readonly runtime: Runtime;
  readonly adminUrl: string;
  /** Signs and pushes a report; returns the admin API's answer. */
  report(input: Partial<ReportInput> & { deviceId: string }): Promise<Awaited<ReturnType<typeof pushReport>>>;
  decide(deviceId: string, user?: string): Promise<Decision>;
  reload(): ReturnType<Runtime['reload']>;
  stop(): Promise<void>;
}

export async function writeRigFiles(redis: RedisServer, keyPrefix: string, policy: string, configExtra = ''): Promise<{ dir: string; privateJwk: Awaited<ReturnType<typeof makeReporterKeys>>['privateJwk'] }> {
  const dir = tempDir('policy-rig');
  const keys = await makeReporterKeys({ kid: 'mdm-1', alg: 'ES256' });
  fs.writeFileSync(path.join(dir, 'reporters.jwks.json'), JSON.stringify(keys.publicJwks));
  fs.writeFileSync(path.join(dir, 'mailwarden.yaml'), configYaml(redis, keyPrefix, configExtra));
  fs.writeFileSync(path.join(dir, 'policy.yaml'), policy);
  return { dir, privateJwk: keys.privateJwk };
}

export async function startRig(
  redis: RedisServer,
  keyPrefix: string,
  policy: string,
  options: Partial<RuntimeOptions> & { logger?: Logger; dir?: string; privateJwk?: Awaited<ReturnType<typeof makeReporterKeys>>['privateJwk'] } = {},
): Promise<Rig> {
  const files = options.dir && options.privateJwk ? { dir: options.dir, privateJwk: options.privateJwk } : await writeRigFiles(redis, keyPrefix, policy);
  const { dir, privateJwk } = files;
  const configFile = path.join(dir, 'mailwarden.yaml');
  const runtime = await startRuntime({
    configFile,
    logger: options.logger ?? createLogger({ level: 'error', silent: true }),
    listeners: false,
    watch: options.watch ?? false,
    ...(options.forcePolicy !== undefined && { forcePolicy: options.forcePolicy }),
  });
  const adminUrl = `http://127.0.0.1:${runtime.admin!.address.port}`;
  const request = (deviceId: string, user: string): DecisionRequest => ({
    user,
    deviceId,
    protocol: 'imap',
    identitySource: 'app-password',
    identityStrength: 'strong',
  });
  return {
    dir,
    configFile,
    policyFile: path.join(dir, 'policy.yaml'),
    runtime,
    adminUrl,
    async report(input) {
      const report = buildReport({ user: 'alice@example.com', platform: 'ios', osVersion: '17.5', managed: true, apps: [], ...input });
      return pushReport(adminUrl, ADMIN_TOKEN, await signReport(report, privateJwk));
    },
    decide: (deviceId, user = 'alice@example.com') => runtime.gate.decide(request(deviceId, user)),
    reload: () => runtime.reload(),
    async stop() {
      await runtime.stop(0);
    },
  };
}
