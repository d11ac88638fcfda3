// Reading the console's form posts: application/x-www-form-urlencoded, and multipart/form-data for
// the candidate policy upload (RFC 7578), each within a byte limit.
import type http from 'node:http';

export class FormError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'FormError';
  }
}

function readLimited(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  if (Number(req.headers['content-length'] ?? 0) > limit) {
    req.resume();
    return Promise.reject(new FormError(413, `the form is larger than ${Math.round(limit / 1024)} KiB`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.resume();
        reject(new FormError(413, `the form is larger than ${Math.round(limit / 1024)} KiB`));
      } else {
        chunks.push(chunk);
      }
    });
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

/** Field name → value (text fields; a file field's content as text). */
export type Form = ReadonlyMap<string, string>;

export async function readForm(req: http.IncomingMessage, limit: number): Promise<Form> {
  const type = req.headers['content-type'] ?? '';
  const body = await readLimited(req, limit);
  const boundary = /^multipart\/form-data;.*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(type);
  if (boundary) return parseMultipart(body, boundary[1] ?? boundary[2]!);
  if (type.split(';')[0]!.trim().toLowerCase() !== 'application/x-www-form-urlencoded') {
    throw new FormError(415, 'the console accepts only its own forms');
  }
  return new Map(new URLSearchParams(body.toString('utf8')));
}

function parseMultipart(body: Buffer, boundary: string): Form {
  const fields = new Map<string, string>();
  const delimiter = Buffer.from(`--${boundary}`);
  let at = body.indexOf(delimiter);
  while (at >= 0) {
    const start = at + delimiter.length;
    if (body.subarray(start, start + 2).toString() === '--') break;
    const next = body.indexOf(delimiter, start);
    if (next < 0) break;
    const part = body.subarray(start + 2, next - 2); // skip CRLF after the delimiter and before the next
    const headerEnd = part.indexOf('\r\n\r\n');
    if (headerEnd >= 0) {
      const headers = part.subarray(0, headerEnd).toString('utf8');
      const name = /content-disposition:[^\r\n]*\bname="([^"]*)"/i.exec(headers)?.[1];
      if (name !== undefined) fields.set(name, part.subarray(headerEnd + 4).toString('utf8'));
    }
    at = next;
  }
  return fields;
}
