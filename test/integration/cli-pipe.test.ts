// The built `mailwarden` command writing into a pipe whose reader has gone (`… | head -1`): no
// EPIPE stack trace, a quiet exit.
import { spawn } from 'node:child_process';
import path from 'node:path';

const CLI = path.resolve(__dirname, '../../dist/src/cli/index.js');

it('output piped into a reader that has closed: no stack trace, exit status 0', async () => {
  // config show writes far more than one pipe read; the reader closes before reading anything.
  const child = spawn(process.execPath, [CLI, 'config', 'show', '--config', 'config/mailwarden.yaml'], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.destroy();
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const status = await new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  expect({ status, stderr }).toEqual({ status: 0, stderr: '' });
});
