// Where the shared perf rig (../shared/perf-rig: load generator, auth_http peer) is, for the benchmarks.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/**
 * The shared rig: `PERF_RIG`, else `../shared/perf-rig` next to this checkout, else next to the main
 * checkout this one is a git worktree of (a worktree lives elsewhere, its `.git` common dir does not).
 */
export function findRig(): string {
  if (process.env.PERF_RIG) return path.resolve(process.env.PERF_RIG);
  const repo = path.join(__dirname, '../..');
  const candidates = [path.join(repo, '../shared/perf-rig')];
  try {
    const common = execFileSync('git', ['rev-parse', '--path-format=absolute', '--git-common-dir'], { cwd: repo, encoding: 'utf8' }).trim();
    candidates.push(path.join(path.dirname(common), '../shared/perf-rig'));
  } catch {
    // not a git checkout: only the sibling directory
  }
  const found = candidates.find((dir) => fs.existsSync(path.join(dir, 'run-anchors.sh')));
  if (!found) throw new Error(`perf rig not found (looked in ${candidates.join(', ')}): set PERF_RIG`);
  return found;
}
