// `npm run demo` end to end: it starts, prints commands, each printed command gives the result the
// demo says it gives (with curl, swaks and the mailwarden CLI, as a person would run them), and on
// Ctrl-C everything it started stops, its scratch folder goes, and no tracked file changed.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');

interface PrintedStep {
  readonly title: string;
  readonly exitCode: number;
  readonly shows: string;
  readonly command: string;
}

/** `# title (expect exit N and "text")` followed by the command line. */
function printedSteps(output: string): PrintedStep[] {
  const lines = output.split('\n');
  const steps: PrintedStep[] = [];
  lines.forEach((line, i) => {
    const m = /^# (.+) \(expect exit (\d+) and "(.+)"\)$/.exec(line);
    if (m) steps.push({ title: m[1], exitCode: Number(m[2]), shows: m[3], command: lines[i + 1] });
  });
  return steps;
}

const listening = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const trackedChanges = (): string => execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8' });

it('npm run demo: a phone refused, a laptop allowed, exactly as printed; Ctrl-C stops everything', async () => {
  const before = trackedChanges();
  // Its own process group, so the test can press Ctrl-C as a terminal does: SIGINT to npm and node.
  const demo = spawn('npm', ['run', '-s', 'demo'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const group = demo.pid as number;
  let output = '';
  demo.stdout.on('data', (d: Buffer) => (output += d.toString()));
  demo.stderr.on('data', (d: Buffer) => (output += d.toString()));
  // 'close': every process holding the output pipes (npm and the demo under it) has exited.
  const exited = new Promise<number | null>((resolve) => demo.once('close', (code) => resolve(code)));
  try {
    const deadline = Date.now() + 90_000;
    while (!output.includes('\ndemo ready\n')) {
      if (demo.exitCode !== null || Date.now() > deadline) throw new Error(`the demo did not get ready:\n${output}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const steps = printedSteps(output);
    expect(steps.map((s) => s.title)).toEqual([
      'refused: the iPhone with TikTok, over IMAP',
      'allowed: the clean iPhone, over IMAP (its mailbox list)',
      'allowed: the MacBook with TikTok (laptops are not affected), over IMAP',
      'refused: the iPhone with TikTok, over SMTP submission (at MAIL FROM)',
      'allowed: the MacBook with TikTok, over SMTP submission',
      '"why is this device blocked?"',
      'the decisions just made, newest last',
      'rehearse a change before it bites: candidate.yaml also bans TikTok on macOS; who would it newly deny?',
    ]);
    for (const step of steps) {
      const run = spawnSync('bash', ['-c', step.command], { encoding: 'utf8', timeout: 30_000 });
      expect({ title: step.title, exit: run.status, shows: `${run.stdout}${run.stderr}`.includes(step.shows) }).toEqual({
        title: step.title,
        exit: step.exitCode,
        shows: true,
      });
    }
  } finally {
    process.kill(-group, 'SIGINT');
  }
  await exited;
  expect(output).toContain('demo stopped');

  // Everything it started is gone: the processes it named, every port it printed, its scratch folder.
  const pids = [...output.matchAll(/\(pid (\d+)\)/g)].map((m) => Number(m[1]));
  expect(pids.length).toBe(2);
  const ports = [...new Set([...output.matchAll(/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1])))];
  expect(ports.length).toBeGreaterThanOrEqual(5);
  const scratch = /scratch folder\s+(\S+)/.exec(output)?.[1] ?? '';
  expect(scratch).toMatch(/mailwarden-demo-/);
  for (const pid of pids) expect({ pid, alive: alive(pid) }).toEqual({ pid, alive: false });
  for (const port of ports) expect({ port, listening: await listening(port) }).toEqual({ port, listening: false });
  expect(fs.existsSync(scratch)).toBe(false);
  expect(trackedChanges()).toBe(before);
}, 180_000);
