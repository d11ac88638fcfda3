// Packaging checked with the tools that consume it: the systemd unit with `systemd-analyze verify`,
// the container configuration with `mailwarden config check`, and the Dockerfile, .dockerignore and
// docker-compose.yaml against that configuration (no Docker engine runs in CI: static checks only).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { findProgram, tempDir } from '../harness/ports';
import { checkConfig } from '../../src/cli/config';
import { loadConfigFile } from '../../src/core/config';

const ROOT = path.resolve(__dirname, '../..');
const read = (file: string): string => fs.readFileSync(path.join(ROOT, file), 'utf8');
const UNIT = 'deploy/systemd/mailwarden.service';

describe('deploy/systemd/mailwarden.service', () => {
  /** key → values of the unit's [Service] section. */
  function serviceSection(text: string): Map<string, string[]> {
    const out = new Map<string, string[]>();
    let section = '';
    for (const line of text.split('\n')) {
      const header = /^\[(\w+)\]$/.exec(line.trim());
      if (header) section = header[1];
      else if (section === 'Service' && /^\w+=/.test(line)) {
        const [key, ...rest] = line.split('=');
        out.set(key, [...(out.get(key) ?? []), rest.join('=')]);
      }
    }
    return out;
  }

  it('passes systemd-analyze verify without a single warning', () => {
    const analyze = findProgram('systemd-analyze');
    if (!analyze) throw new Error('systemd-analyze not found: apt-get install systemd');
    const dir = tempDir('unit');
    // The unit names Debian's /usr/bin/node; verify checks that the program exists, so on a machine
    // whose node lives elsewhere the copy names that node instead.
    const text = read(UNIT).replace('/usr/bin/node ', `${fs.existsSync('/usr/bin/node') ? '/usr/bin/node' : process.execPath} `);
    const file = path.join(dir, 'mailwarden.service');
    fs.writeFileSync(file, text);
    const result = spawnSync(analyze, ['verify', file], { encoding: 'utf8', cwd: dir });
    fs.rmSync(dir, { recursive: true, force: true });
    // Unknown keys and unparsable values are only warnings (exit 0): any output is a failure.
    expect({ status: result.status, output: `${result.stdout}${result.stderr}`.trim() }).toEqual({ status: 0, output: '' });
  });

  it('runs as a dedicated user, read-only system, no new privileges, reloads with SIGHUP, restarts on failure', () => {
    const service = serviceSection(read(UNIT));
    expect(service.get('User')).toEqual(['mailwarden']);
    expect(service.get('ProtectSystem')).toEqual(['strict']);
    expect(service.get('NoNewPrivileges')).toEqual(['yes']);
    expect(service.get('ExecReload')).toEqual(['/bin/kill -HUP $MAINPID']);
    expect(service.get('Restart')).toEqual(['on-failure']);
    expect(read('deploy/systemd/mailwarden.sysusers.conf')).toMatch(/^u mailwarden /m);
  });
});

describe('container', () => {
  const CONFIG = 'deploy/container/mailwarden.yaml';

  /** The container configuration as mounted by docker-compose.yaml: with the repository's policy.yaml. */
  function mounted(): { dir: string; file: string } {
    const dir = tempDir('container');
    fs.copyFileSync(path.join(ROOT, CONFIG), path.join(dir, 'mailwarden.yaml'));
    fs.copyFileSync(path.join(ROOT, 'config/policy.yaml'), path.join(dir, 'policy.yaml'));
    return { dir, file: path.join(dir, 'mailwarden.yaml') };
  }

  it('the container configuration passes mailwarden config check', async () => {
    const { dir, file } = mounted();
    try {
      await expect(checkConfig({ config: file })).resolves.toMatch(/^config OK: /);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('listens on all interfaces on exactly the ports the Dockerfile exposes; the health check asks the admin port', async () => {
    const { dir, file } = mounted();
    const config = await loadConfigFile(file).finally(() => fs.rmSync(dir, { recursive: true, force: true }));
    const listeners = [...(config.imap?.listeners ?? []), ...(config.smtp?.listeners ?? []), ...(config.admin ? [config.admin.listen] : [])];
    expect(listeners.every((l) => l.host === '0.0.0.0')).toBe(true);
    const dockerfile = read('Dockerfile');
    const exposed = (/^EXPOSE (.+)$/m.exec(dockerfile)?.[1] ?? '').split(/\s+/).map(Number).sort();
    expect(exposed).toEqual(listeners.map((l) => l.port).sort());
    expect(dockerfile).toContain(`http://127.0.0.1:${config.admin?.listen.port}/healthz`);
    // TLS from the mounted folder, not from the image.
    expect(config.tls?.cert).toBe(path.join(dir, 'tls/tls.crt'));
    expect(dockerfile).not.toMatch(/^COPY config/m);
    expect(dockerfile).toMatch(/^CMD \["start", "--config", "\/etc\/mailwarden\/mailwarden.yaml"\]$/m);
  });

  it('.dockerignore keeps keys, tokens and local state out of the build context', () => {
    const ignored = read('.dockerignore').split('\n').filter((l) => l && !l.startsWith('#'));
    for (const entry of ['.git', 'node_modules', 'dist', 'config', '**/*.private.jwk.json', '**/*.key', '**/*.pem']) {
      expect(ignored).toContain(entry);
    }
  });

  it('docker-compose.yaml runs mailwarden with Redis and mounts the container configuration', () => {
    const compose = YAML.parse(read('docker-compose.yaml')) as {
      services: Record<string, { image?: string; volumes?: string[]; ports?: string[]; depends_on?: Record<string, unknown> }>;
    };
    expect(compose.services.redis.image).toMatch(/^redis:/);
    const mw = compose.services.mailwarden;
    expect(Object.keys(mw.depends_on ?? {})).toEqual(['redis']);
    expect(mw.volumes).toContain(`./${CONFIG}:/etc/mailwarden/mailwarden.yaml:ro`);
    expect(mw.volumes).toContain('./config/policy.yaml:/etc/mailwarden/policy.yaml:ro');
    const host = YAML.parse(read(CONFIG)) as { store: { redis: { host: string } } };
    expect(Object.keys(compose.services)).toContain(host.store.redis.host);
    expect(mw.ports).toContain('127.0.0.1:8025:8025');
    // Every file the compose file mounts from the repository exists (the tls/ folder and keys are the operator's).
    for (const volume of mw.volumes ?? []) {
      const source = volume.split(':')[0];
      if (/^\.\/(config|deploy\/container\/mailwarden)/.test(source)) expect(fs.existsSync(path.join(ROOT, source))).toBe(true);
    }
  });
});

it('the Dockerfile builds only what exists (every COPY source is in the repository)', () => {
  const sources = [...read('Dockerfile').matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1].split(' '));
  expect(sources.length).toBeGreaterThan(3);
  for (const source of sources) expect(fs.existsSync(path.join(ROOT, source))).toBe(true);
});
