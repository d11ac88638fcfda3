// Connection caps per listener and per client address, and the SMTP line deadline.
import { EventEmitter } from 'node:events';
import { ConnectionLimits } from '../../src/core/connection-limits';
import { LineDeadline } from '../../src/smtp/deadlines';

test('a listener keeps at most maxConnections, and at most maxConnectionsPerAddress from one address', () => {
  const limits = new ConnectionLimits({ maxConnections: 3, maxConnectionsPerAddress: 2 });
  const a1 = limits.acquire('192.0.2.1');
  const a2 = limits.acquire('192.0.2.1');
  expect(limits.acquire('192.0.2.1')).toEqual({ ok: false, reason: 'address-full' });
  const b1 = limits.acquire('192.0.2.2');
  expect(limits.acquire('192.0.2.3')).toEqual({ ok: false, reason: 'listener-full' });
  if (!a1.ok || !a2.ok || !b1.ok) throw new Error('expected slots');
  a1.release();
  a1.release(); // idempotent
  expect(limits.size).toBe(2);
  expect(limits.acquire('192.0.2.1').ok).toBe(true);
});

test('the line deadline fires only while a line is unfinished', () => {
  jest.useFakeTimers();
  try {
    let expired = 0;
    const deadline = new LineDeadline(1000, () => expired++);
    const socket = new EventEmitter();
    deadline.watch(socket);
    deadline.watch(socket); // watching twice changes nothing
    socket.emit('data', Buffer.from('EHLO a\r\n'));
    jest.advanceTimersByTime(5000);
    expect(expired).toBe(0);
    socket.emit('data', Buffer.from('MA'));
    jest.advanceTimersByTime(600);
    socket.emit('data', Buffer.from('I')); // a byte does not extend the deadline
    jest.advanceTimersByTime(500);
    expect(expired).toBe(1);
    socket.emit('data', Buffer.from('L FROM:<a@b>\r\nRCPT'));
    jest.advanceTimersByTime(900);
    socket.emit('data', Buffer.from(' TO:<c@d>\r\n'));
    jest.advanceTimersByTime(5000);
    expect(expired).toBe(1);
    deadline.stop();
    socket.emit('data', Buffer.from('DATA'));
    jest.advanceTimersByTime(5000);
    expect(expired).toBe(1);
  } finally {
    jest.useRealTimers();
  }
});
