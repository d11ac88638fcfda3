// `node dist/bench/profile-groups.js FILE.cpuprofile [OPERATIONS] [--callers GROUP]`: a V8 CPU
// profile's self time by where the code lives (our folders, each npm package, Node's internals by
// module, GC, native functions by name), in ms and, given the number of operations the profile
// covered, in µs per operation; `--callers GROUP` shows which frames of ours or of a package (Node's internals passed through) called into it.
// For a `BENCH_CPU_PROF` profile of bench:imap or bench:smtp, or `--cpu-prof` of the rig's proxy.
import fs from 'node:fs';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly hitCount?: number;
  readonly children?: readonly number[];
}
interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** One group name per call frame: `src/imap`, `plugins`, `ioredis`, `node:net`, `(garbage collector)` … */
export function groupOf(frame: ProfileNode['callFrame']): string {
  const { url, functionName } = frame;
  if (url === '') return functionName.startsWith('(') ? functionName : `native ${functionName}`;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  const ours = /\/dist\/(src\/[^/]+|plugins|bench|test)\//.exec(url);
  if (ours) return ours[1]!;
  const internal = /^node:(?:internal\/)?([^/]+)/.exec(url);
  if (internal) return `node:${internal[1]!.replace(/\.js$/, '')}`;
  return url;
}

function frameName(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  return `${functionName || '(anonymous)'} ${url.replace(/^.*\/dist\//, '').replace(/^.*node_modules\//, '')}:${lineNumber + 1}`;
}

function main(): void {
  const args = process.argv.slice(2);
  const callersAt = args.indexOf('--callers');
  const callersOf = callersAt >= 0 ? args.splice(callersAt, 2)[1] : undefined;
  const [file, operations] = args;
  if (!file) throw new Error('usage: profile-groups FILE.cpuprofile [OPERATIONS] [--callers GROUP]');
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parentOf = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id);
  const selfUs = new Map<string, number>();
  const through = (n: ProfileNode) => {
    const g = groupOf(n.callFrame);
    return g === callersOf || g.startsWith('node:') || g.startsWith('native');
  };
  // Each sample's time is the delta that follows it (V8 records the gap before the next sample).
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i + 1] ?? 0;
    let node = byId.get(id)!;
    if (callersOf === undefined) {
      const group = groupOf(node.callFrame);
      selfUs.set(group, (selfUs.get(group) ?? 0) + us);
      return;
    }
    if (groupOf(node.callFrame) !== callersOf) return;
    // Up the stack to the first frame of ours or of a package (Node's internals are passed through).
    for (let up = parentOf.get(node.id); up !== undefined && through(node); up = parentOf.get(node.id)) node = byId.get(up)!;
    const caller = frameName(node);
    selfUs.set(caller, (selfUs.get(caller) ?? 0) + us);
  });
  const ops = Number(operations ?? 0);
  const busy = [...selfUs].filter(([g]) => g !== '(idle)');
  const busyUs = busy.reduce((sum, [, us]) => sum + us, 0);
  const rows = busy.sort((a, b) => b[1] - a[1]).slice(0, 40);
  if (callersOf !== undefined) console.log(`callers of ${callersOf}:`);
  console.log(`profile ${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s, busy ${(busyUs / 1000).toFixed(0)} ms${ops ? `, ${(busyUs / ops).toFixed(0)} µs per operation over ${ops}` : ''}`);
  for (const [group, us] of rows) {
    console.log(`  ${group.padEnd(28)} ${(us / 1000).toFixed(1).padStart(9)} ms  ${((100 * us) / busyUs).toFixed(1).padStart(5)} %${ops ? `  ${(us / ops).toFixed(1).padStart(7)} µs/op` : ''}`);
  }
}

if (require.main === module) main();
