// Platform hints from a message's header block (X-Mailer, User-Agent), parsed with mailparser.
// Only the header block is ever parsed (never a body); hints are recorded, never an identity.
import { simpleParser } from 'mailparser';
import { oneLine } from './replies';

/** Header name (lower case) → hint key, as CheckFacts.hints carries them. */
const HINT_HEADERS = ['x-mailer', 'user-agent'] as const;
const MAX_HINT_LENGTH = 200;

/** Cheap test before parsing: most header blocks name neither header. */
const MENTIONS_HINT = /^(x-mailer|user-agent)[ \t]*:/im;

export async function headerHints(block: Buffer): Promise<Record<string, string>> {
  if (!MENTIONS_HINT.test(block.toString('latin1'))) return {};
  // The block ends with the empty line, so mailparser sees a message with an empty body.
  const mail = await simpleParser(block, { skipHtmlToText: true, skipTextToHtml: true, skipImageLinks: true });
  const hints: Record<string, string> = {};
  for (const name of HINT_HEADERS) {
    const value = mail.headers.get(name);
    if (typeof value === 'string' && value.trim()) hints[name] = oneLine(value).slice(0, MAX_HINT_LENGTH);
  }
  return hints;
}
