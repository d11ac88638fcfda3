// Golden tests: every folder in test/fixtures/config/bad is a broken configuration; loading and
// compiling it (as start and reload do) and `mailwarden config check` on it must fail with exactly
// the lines in its expected.txt.
// Regenerate after a deliberate wording change: UPDATE_GOLDEN=1 npx jest test/unit/config-golden.test.ts
import fs from 'node:fs';
import path from 'node:path';
import { checkConfig } from '../../src/cli/config';
import { ConfigError } from '../../src/core/errors';
import { runConfigCli } from '../fixtures/config/run-config-cli';

const BAD = path.resolve(__dirname, '../fixtures/config/bad');
const cases = fs.readdirSync(BAD).sort();

/** Error text with the case folder stripped, so expected.txt reads `policy.yaml:3: …`. */
function normalise(text: string, dir: string): string {
  return text.split(`${path.relative(process.cwd(), dir)}/`).join('').trimEnd();
}

test('there are at least 12 bad configurations', () => {
  expect(cases.length).toBeGreaterThanOrEqual(12);
});

describe.each(cases)('bad configuration %s', (name) => {
  const dir = path.join(BAD, name);
  const expectedFile = path.join(dir, 'expected.txt');

  test('loading and compiling lists every issue with file, line and key', async () => {
    const error = await checkConfig({ config: path.join(dir, 'mailwarden.yaml') }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConfigError);
    const actual = normalise((error as ConfigError).message, dir);
    if (process.env.UPDATE_GOLDEN) fs.writeFileSync(expectedFile, `${actual}\n`);
    expect(actual).toBe(fs.readFileSync(expectedFile, 'utf8').trimEnd());
  });

  test('config check prints the same lines to stderr and exits 78 (EX_CONFIG)', async () => {
    const result = await runConfigCli(['config', 'check', '--config', path.join(dir, 'mailwarden.yaml')]);
    expect(result.code).toBe(78);
    expect(result.stdout).toBe('');
    expect(normalise(result.stderr, dir)).toBe(fs.readFileSync(expectedFile, 'utf8').trimEnd());
  });
});
