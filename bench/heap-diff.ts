// `node dist/bench/heap-diff.js start.heapsnapshot end.heapsnapshot [top]`: what grew between two V8
// heap snapshots (as `npm run soak` writes with SOAK_HEAP_DIR), by node type and constructor name:
// count and self size in each, sorted by the growth in bytes. Reads the documented snapshot format
// (snapshot.meta.node_fields / node_types); no dependency.
import fs from 'node:fs';

interface Snapshot {
  readonly snapshot: { readonly meta: { readonly node_fields: string[]; readonly node_types: [string[], ...unknown[]] } };
  readonly nodes: number[];
  readonly strings: string[];
}

type Totals = Map<string, { count: number; bytes: number }>;

export function totalsOf(file: string): Totals {
  const snap = JSON.parse(fs.readFileSync(file, 'utf8')) as Snapshot;
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const width = fields.length;
  const [typeAt, nameAt, sizeAt] = [fields.indexOf('type'), fields.indexOf('name'), fields.indexOf('self_size')];
  const totals: Totals = new Map();
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + typeAt]!]!;
    // Strings and numbers by type only: their "names" are their contents.
    const name = type === 'string' || type === 'concatenated string' || type === 'sliced string' || type === 'number' ? '' : snap.strings[snap.nodes[i + nameAt]!]!.slice(0, 60);
    const key = `${type}:${name}`;
    const t = totals.get(key) ?? { count: 0, bytes: 0 };
    t.count++;
    t.bytes += snap.nodes[i + sizeAt]!;
    totals.set(key, t);
  }
  return totals;
}

function main(): void {
  const [a, b, topArg] = process.argv.slice(2);
  if (!a || !b) {
    console.error('usage: node dist/bench/heap-diff.js start.heapsnapshot end.heapsnapshot [top]');
    process.exit(64);
  }
  const before = totalsOf(a);
  const after = totalsOf(b);
  const rows = [...new Set([...before.keys(), ...after.keys()])].map((key) => {
    const x = before.get(key) ?? { count: 0, bytes: 0 };
    const y = after.get(key) ?? { count: 0, bytes: 0 };
    return { key, count: [x.count, y.count], bytes: [x.bytes, y.bytes], grew: y.bytes - x.bytes };
  });
  rows.sort((p, q) => q.grew - p.grew);
  const sum = (t: Totals): number => [...t.values()].reduce((n, v) => n + v.bytes, 0);
  console.log(`total self size: ${(sum(before) / 1048576).toFixed(2)} → ${(sum(after) / 1048576).toFixed(2)} MB`);
  console.log('growth KB   count before → after   type:constructor');
  for (const r of rows.slice(0, Number(topArg ?? 25))) {
    console.log(`${(r.grew / 1024).toFixed(1).padStart(9)}   ${String(r.count[0]).padStart(7)} → ${String(r.count[1]).padEnd(7)}   ${r.key}`);
  }
}

if (require.main === module) main();
