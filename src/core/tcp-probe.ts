// Does anything answer on host:port? One TCP connect with a short deadline, closed at once: what
// `mailwarden start` tells the operator about each upstream. Never throws, never sends a byte.
import net from 'node:net';

export type ProbeResult = { readonly answers: true } | { readonly answers: false; readonly reason: string };

const REASONS: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  ECONNRESET: 'connection reset',
};

export function probeTcp(host: string, port: number, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (result: ProbeResult): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => done({ answers: false, reason: `no answer within ${timeoutMs} ms` }), timeoutMs);
    socket.once('connect', () => done({ answers: true }));
    socket.once('error', (err: NodeJS.ErrnoException) => done({ answers: false, reason: REASONS[err.code ?? ''] ?? err.message }));
  });
}
