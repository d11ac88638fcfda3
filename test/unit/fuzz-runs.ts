// How much the property-based (fast-check) tests run: a small bounded default in `npm test`;
// `npm run fuzz` raises FUZZ_RUNS (runs per property) and FUZZ_SECONDS (time per property).
import type fc from 'fast-check';

/**
 * fast-check options for one property: `defaultRuns` unless FUZZ_RUNS says otherwise (scaled by
 * `share` for slower properties), and never longer than FUZZ_SECONDS (default 20 s): a property
 * interrupted by the time limit passes with the runs it made (markInterruptAsFailure: false).
 */
export function fuzzRuns(defaultRuns: number, share = 1): fc.Parameters<unknown> {
  const runs = process.env.FUZZ_RUNS === undefined ? defaultRuns : Math.max(1, Math.ceil(Number(process.env.FUZZ_RUNS) * share));
  return { numRuns: runs, interruptAfterTimeLimit: Number(process.env.FUZZ_SECONDS ?? 20) * 1000, markInterruptAsFailure: false };
}
