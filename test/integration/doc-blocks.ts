// Reads configuration blocks from the docs, so that what a site pastes is what the tests run: a block
// is the fenced code block right after a `<!-- mailwarden-test: NAME -->` line.
import fs from 'node:fs';
import path from 'node:path';

/** The checkout: two folders up from the source, three from its build in dist/ (bench:hooks uses it). */
const ROOT = [path.resolve(__dirname, '../..'), path.resolve(__dirname, '../../..')].find((dir) => fs.existsSync(path.join(dir, 'package.json')))!;

export function docBlock(name: string, file = 'docs/hooks.md'): string {
  const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
  const marker = `<!-- mailwarden-test: ${name} -->`;
  const at = text.indexOf(marker);
  if (at < 0) throw new Error(`${file}: no block marked ${marker}`);
  const fence = /^```[^\n]*\n([\s\S]*?)^```$/m.exec(text.slice(at + marker.length));
  if (!fence) throw new Error(`${file}: no fenced block after ${marker}`);
  return fence[1]!;
}

/** Replaces each `from` (which must occur, so a docs edit cannot silently skip a substitution). */
export function substitute(block: string, replacements: readonly (readonly [string, string])[]): string {
  let out = block;
  for (const [from, to] of replacements) {
    if (!out.includes(from)) throw new Error(`docs block does not contain "${from}"`);
    out = out.split(from).join(to);
  }
  return out;
}
