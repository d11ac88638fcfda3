// HAProxy PROXY protocol v1 (text) and v2 (binary) header, read before anything else on a
// connection from a configured load balancer, to learn the real client address.
import net from 'node:net';

export interface ProxiedAddress {
  readonly address?: string;
  readonly port?: number;
  readonly localAddress?: string;
  readonly localPort?: number;
}

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** v1 lines are at most 107 octets including CRLF (HAProxy's PROXY protocol specification, proxy-protocol.txt §2.1). */
const V1_MAX = 107;
/** v2: 16-octet header plus at most 216 octets of addresses and TLVs we care to read. */
const V2_MAX = 16 + 65535;

/** A BlockList of the configured load-balancer addresses (exact IPs or CIDR ranges). */
export function trustedProxies(entries: readonly string[] | undefined): net.BlockList | null {
  if (!entries || entries.length === 0) return null;
  const list = new net.BlockList();
  for (const entry of entries) {
    const [ip, bits] = entry.split('/') as [string, string | undefined];
    const type = net.isIPv6(ip) ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(ip, type);
    else list.addSubnet(ip, Number(bits), type);
  }
  return list;
}

export function isTrusted(list: net.BlockList | null, address: string | undefined): boolean {
  if (!list || !address) return false;
  const mapped = address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
  return list.check(mapped, net.isIPv6(mapped) ? 'ipv6' : 'ipv4');
}

export type ParseResult =
  | { readonly state: 'more' }
  | { readonly state: 'done'; readonly header: ProxiedAddress; readonly rest: Buffer }
  | { readonly state: 'error'; readonly message: string };

export function parseProxyHeader(buf: Buffer): ParseResult {
  if (buf.length >= 1 && buf[0] === 0x0d) return parseV2(buf);
  const prefix = 'PROXY ';
  const head = buf.toString('latin1', 0, Math.min(buf.length, prefix.length));
  if (!prefix.startsWith(head)) return { state: 'error', message: 'not a PROXY protocol header' };
  const lf = buf.indexOf('\r\n');
  if (lf < 0) return buf.length >= V1_MAX ? { state: 'error', message: 'PROXY v1 line too long' } : { state: 'more' };
  const parts = buf.toString('latin1', 0, lf).split(' ');
  const rest = buf.subarray(lf + 2);
  if (parts[1] === 'UNKNOWN') return { state: 'done', header: {}, rest };
  if (parts.length !== 6 || (parts[1] !== 'TCP4' && parts[1] !== 'TCP6')) return { state: 'error', message: 'malformed PROXY v1 line' };
  const [, family, src, dst, sport, dport] = parts as [string, string, string, string, string, string];
  const ipOk = (ip: string): boolean => (family === 'TCP4' ? net.isIPv4(ip) : net.isIPv6(ip));
  const portOk = (p: string): boolean => /^\d{1,5}$/.test(p) && Number(p) <= 65535;
  if (!ipOk(src) || !ipOk(dst) || !portOk(sport) || !portOk(dport)) return { state: 'error', message: 'malformed PROXY v1 addresses' };
  return { state: 'done', header: { address: src, port: Number(sport), localAddress: dst, localPort: Number(dport) }, rest };
}

function parseV2(buf: Buffer): ParseResult {
  const sig = buf.subarray(0, Math.min(buf.length, 12));
  if (!V2_SIGNATURE.subarray(0, sig.length).equals(sig)) return { state: 'error', message: 'not a PROXY protocol header' };
  if (buf.length < 16) return { state: 'more' };
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 2) return { state: 'error', message: 'unsupported PROXY v2 version' };
  const len = buf.readUInt16BE(14);
  if (16 + len > V2_MAX) return { state: 'error', message: 'PROXY v2 header too long' };
  if (buf.length < 16 + len) return { state: 'more' };
  const body = buf.subarray(16, 16 + len);
  const rest = buf.subarray(16 + len);
  const command = verCmd & 0x0f;
  // LOCAL (health checks from the balancer itself): keep the connection's own addresses.
  if (command === 0) return { state: 'done', header: {}, rest };
  if (command !== 1) return { state: 'error', message: 'unsupported PROXY v2 command' };
  const family = buf[13]! >> 4;
  if (family === 1 && body.length >= 12) {
    const ip = (o: number): string => [...body.subarray(o, o + 4)].join('.');
    return { state: 'done', header: { address: ip(0), localAddress: ip(4), port: body.readUInt16BE(8), localPort: body.readUInt16BE(10) }, rest };
  }
  if (family === 2 && body.length >= 36) {
    const ip = (o: number): string => {
      const groups: string[] = [];
      for (let i = 0; i < 16; i += 2) groups.push(body.readUInt16BE(o + i).toString(16));
      // Compress with the URL parser's canonical IPv6 form (RFC 5952).
      return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
    };
    return { state: 'done', header: { address: ip(0), localAddress: ip(16), port: body.readUInt16BE(32), localPort: body.readUInt16BE(34) }, rest };
  }
  if (family === 0) return { state: 'done', header: {}, rest };
  return { state: 'error', message: 'unsupported PROXY v2 address family' };
}

/**
 * Read the header from a socket within `timeoutMs`. Resolves with the addresses and the bytes that
 * followed it (the start of the TLS handshake or of the IMAP dialogue); rejects on anything else.
 */
export function readProxyHeader(socket: net.Socket, timeoutMs: number): Promise<{ header: ProxiedAddress; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const finish = (err: Error | null, value?: { header: ProxiedAddress; rest: Buffer }): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      if (err) reject(err);
      else resolve(value!);
    };
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      const result = parseProxyHeader(buf);
      if (result.state === 'more') return;
      socket.pause();
      if (result.state === 'error') finish(new Error(result.message));
      else finish(null, { header: result.header, rest: result.rest });
    };
    const onClose = (): void => finish(new Error('connection closed before the PROXY header'));
    const timer = setTimeout(() => finish(new Error('no PROXY header in time')), timeoutMs);
    socket.on('data', onData);
    socket.once('close', onClose);
  });
}
