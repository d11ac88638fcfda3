// The config watcher on a real temp folder: rename-replace, symlink swap, delete and re-create each
// give one debounced signal; unrelated files and unchanged content give none. And SIGHUP.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { onSighup, watchConfig, type ConfigWatcher } from '../../src/core/config-watcher';

const DEBOUNCE_MS = 50;
/** Long enough for fs events plus the debounce to have settled on a loaded machine. */
const SETTLE_MS = 300;

let dir: string;
let file: string;
let watcher: ConfigWatcher | undefined;
let calls = 0;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(condition: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > end) throw new Error('timed out waiting for the watcher');
    await sleep(20);
  }
}

/** Read at each signal: what the runtime would load. */
let signalled: string[] = [];

async function start(files: string[], settleMs = 100): Promise<void> {
  const onChange = () => {
    calls++;
    signalled.push(fs.existsSync(files[0]!) ? fs.readFileSync(files[0]!, 'utf8') : '(missing)');
  };
  watcher = watchConfig(files, onChange, { debounceMs: DEBOUNCE_MS, settleMs, onError: (err) => { throw err; } });
  await watcher.ready;
}

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mw-watch-'));
  file = path.join(dir, 'policy.yaml');
  fs.writeFileSync(file, 'checks: []\n');
  calls = 0;
  signalled = [];
});
afterEach(() => {
  watcher?.close();
  watcher = undefined;
  fs.rmSync(dir, { recursive: true, force: true });
});

test('an editor-style rename-replace gives exactly one debounced callback', async () => {
  await start([file]);
  // Several writes in a burst, as an editor does: temp file, write, rename over the original.
  const tmp = path.join(dir, '.policy.yaml.swp');
  fs.writeFileSync(tmp, 'checks:\n');
  fs.appendFileSync(tmp, '  - plugin: require-device\n');
  fs.renameSync(tmp, file);
  await until(() => calls > 0);
  await sleep(SETTLE_MS);
  expect(calls).toBe(1);

  // The watch survived the rename: a second edit is seen too.
  fs.writeFileSync(file, 'checks: []\n');
  await until(() => calls > 1);
  await sleep(SETTLE_MS);
  expect(calls).toBe(2);
});

test('a file rewritten in place in two chunks 0.6 s apart is signalled once, after the second chunk', async () => {
  await start([file], 1000);
  const first = 'checks:\n  - plugin: require-device\n';
  const second = '  - plugin: banned-apps\n';
  const fd = fs.openSync(file, 'r+');
  fs.ftruncateSync(fd, 0);
  fs.writeSync(fd, first, 0);
  await sleep(600);
  fs.writeSync(fd, second, Buffer.byteLength(first));
  fs.closeSync(fd);
  await until(() => calls > 0);
  await sleep(SETTLE_MS);
  expect(signalled).toEqual([first + second]);
});

test('a file that keeps changing is not signalled until it stops', async () => {
  await start([file], 300);
  for (let i = 0; i < 8; i++) {
    fs.appendFileSync(file, `# line ${i}\n`);
    await sleep(150);
  }
  expect(calls).toBe(0);
  await until(() => calls > 0);
  expect(signalled).toEqual([fs.readFileSync(file, 'utf8')]);
});

test('unrelated files and unchanged content signal nothing', async () => {
  await start([file]);
  fs.writeFileSync(path.join(dir, 'notes.txt'), 'hello');
  fs.writeFileSync(file, 'checks: []\n'); // same bytes rewritten
  await sleep(SETTLE_MS * 2);
  expect(calls).toBe(0);
});

test('a deleted and re-created file is still watched', async () => {
  await start([file]);
  fs.rmSync(file);
  await until(() => calls === 1);
  fs.writeFileSync(file, 'checks:\n  - plugin: banned-apps\n');
  await until(() => calls === 2);
  await sleep(SETTLE_MS);
  expect(calls).toBe(2);
});

test('a symlink swap (Kubernetes config mount) is seen through the link', async () => {
  fs.mkdirSync(path.join(dir, 'v1'));
  fs.mkdirSync(path.join(dir, 'v2'));
  fs.writeFileSync(path.join(dir, 'v1/mailwarden.yaml'), 'instanceName: a\n');
  fs.writeFileSync(path.join(dir, 'v2/mailwarden.yaml'), 'instanceName: b\n');
  fs.symlinkSync('v1', path.join(dir, '..data'));
  const linked = path.join(dir, 'mailwarden.yaml');
  fs.symlinkSync('..data/mailwarden.yaml', linked);
  await start([linked, file]);
  fs.symlinkSync('v2', path.join(dir, '..data_tmp'));
  fs.renameSync(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
  await until(() => calls === 1);
  await sleep(SETTLE_MS);
  expect(calls).toBe(1);
});

test('close() stops further callbacks', async () => {
  await start([file]);
  watcher!.close();
  fs.writeFileSync(file, 'checks:\n  - plugin: platforms\n');
  await sleep(SETTLE_MS);
  expect(calls).toBe(0);
});

test('onSighup runs the handler on SIGHUP and unsubscribes', async () => {
  const before = process.listenerCount('SIGHUP');
  let hups = 0;
  const off = onSighup(() => hups++);
  expect(process.listenerCount('SIGHUP')).toBe(before + 1);
  // Emitted, not sent: jest's sandboxed `process` does not route a real signal to this listener.
  process.emit('SIGHUP', 'SIGHUP');
  expect(hups).toBe(1);
  off();
  expect(process.listenerCount('SIGHUP')).toBe(before);
});
