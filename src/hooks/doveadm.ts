// Client of Dovecot's doveadm HTTP API for mid-session revocation: `kick` ends a user's IMAP/POP3
// sessions, optionally only those from given client addresses. Dovecot 2.3 cannot kick by device:
// its anvil registry knows user, service, PID and IP (measured with `who`), nothing else.
import http from 'node:http';
import { errorText } from '../core/errors';

export interface DoveadmOptions {
  /** e.g. http://127.0.0.1:8080/doveadm/v1 (the `service doveadm { inet_listener http }` port). */
  readonly url: string;
  /** doveadm_api_key; sent as `Authorization: X-Dovecot-API <base64(key)>`. */
  readonly apiKey: string;
  readonly timeoutMs: number;
}

export type KickResult =
  | { readonly ok: true; readonly kicked: boolean }
  | { readonly ok: false; readonly error: string };

/** doveadm's exit code EX_NOUSER: the mask matched no live session (nothing to kick is not an error). */
const EX_NOUSER = 68;

function post(options: DoveadmOptions, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      options.url,
      {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          Authorization: `X-Dovecot-API ${Buffer.from(options.apiKey, 'utf8').toString('base64')}`,
          'Content-Length': String(Buffer.byteLength(body)),
        },
        timeout: options.timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size <= 65536) chunks.push(c);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${options.timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Ends `user`'s sessions; with `addresses`, only those from one of them (the doveadm mask is the user
 * followed by IPs; measured on 2.3.19: a user plus a non-matching IP kicks nothing).
 */
export async function kick(options: DoveadmOptions, user: string, addresses: readonly string[] = []): Promise<KickResult> {
  const tag = `mw${Date.now().toString(36)}`;
  const body = JSON.stringify([['kick', { mask: [user, ...addresses] }, tag]]);
  let answer;
  try {
    answer = await post(options, body);
  } catch (err) {
    return { ok: false, error: errorText(err) };
  }
  if (answer.status !== 200) return { ok: false, error: `doveadm answered HTTP ${answer.status}` };
  let parsed: unknown;
  try {
    parsed = JSON.parse(answer.body);
  } catch {
    return { ok: false, error: 'doveadm answered with something that is not JSON' };
  }
  const first = Array.isArray(parsed) ? (parsed[0] as unknown) : undefined;
  if (!Array.isArray(first)) return { ok: false, error: 'doveadm answer has an unexpected shape' };
  if (first[0] === 'doveadmResponse') return { ok: true, kicked: true };
  const detail = first[1] as { exitCode?: number } | undefined;
  if (first[0] === 'error' && detail?.exitCode === EX_NOUSER) return { ok: true, kicked: false };
  return { ok: false, error: `doveadm error: ${JSON.stringify(first[1])}` };
}
