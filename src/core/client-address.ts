// One key per client for counters and limits: an IPv6 client is its /64 (one subscriber's network;
// rotating through its host part is the same client), IPv4 and IPv4-mapped IPv6 are the address.
import { isIP } from 'node:net';

/**
 * The client a counter or limit is kept for: IPv4 as is, IPv6 by its /64 (one subscriber's network;
 * any host in it is the same client), IPv4-mapped IPv6 as IPv4.
 */
export function addressKey(address: string | undefined): string | null {
  if (!address) return null;
  const plain = address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
  if (isIP(plain) !== 6) return plain;
  const [head = '', tail = ''] = plain.toLowerCase().split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = plain.includes('::') ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

/** `::ffff:192.0.2.1` → `192.0.2.1`, so logs, policy and Dovecot see plain IPv4. */
export function plainAddress(address: string | undefined): string | undefined {
  return address?.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
