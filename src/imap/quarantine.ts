// The quarantine block style: a blocked device logs in to a tiny read-only mailbox served by
// mailwarden itself, holding one message that explains the block and the fix. The real mailbox is
// never touched (many phones turn any refused login into "wrong password"; this one they display).
import type net from 'node:net';
import { CommandReader, parseCommand, quote, ImapSyntaxError, tokenText } from './parser';
import { bye } from './replies';

export interface QuarantineOptions {
  readonly socket: net.Socket;
  /** Tag of the LOGIN/AUTHENTICATE to answer OK. */
  readonly tag: string;
  readonly user: string;
  readonly sentence: string;
  /** Client bytes pipelined after the login command. */
  readonly pipelined: Buffer;
  readonly onClose: () => void;
}

const CAPS = 'IMAP4rev1 LITERAL+ IDLE ID NAMESPACE';
const UIDVALIDITY = 1;
/** Post-auth idle limit (RFC 9051 §5.4: at least 30 minutes). */
const IDLE_MS = 31 * 60 * 1000;

/** The explanation message (RFC 5322), CRLF line ends. */
const SUBJECT = 'Company mail is blocked on this device';
const MESSAGE_ID = '<quarantine@mailwarden>';

export function quarantineMessage(user: string, sentence: string, date: string): Buffer {
  const text = sentence.replace(/[\r\n]+/g, ' ');
  const lines = [
    'From: Mail access <postmaster@localhost>',
    `To: <${user.replace(/[<>\r\n]/g, '')}>`,
    `Subject: ${SUBJECT}`,
    `Date: ${date}`,
    `Message-ID: ${MESSAGE_ID}`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    'Your company mailbox cannot be synchronised to this device right now.',
    '',
    text,
    '',
    'Your mail is safe and nothing was deleted. Once the device is compliant again,',
    'remove and re-add the account or wait for the app to reconnect, and mail returns.',
    '',
  ];
  return Buffer.from(lines.join('\r\n'), 'utf8');
}

/** Answers the handful of commands a mail app needs to show the one message; everything else is NO. */
export function startQuarantine(options: QuarantineOptions): { end(text: string): void } {
  const { socket } = options;
  const now = new Date();
  const date = now.toUTCString().replace('GMT', '+0000');
  const message = quarantineMessage(options.user, options.sentence, date);
  const internalDate = '01-Jan-2024 00:00:00 +0000';
  const [local, domain] = options.user.includes('@') ? options.user.split('@', 2) : [options.user, 'localhost'];
  const sender = '(("Mail access" NIL "postmaster" "localhost"))';
  // RFC 9051 §7.5.2 envelope: date subject from sender reply-to to cc bcc in-reply-to message-id.
  const envelope = `(${quote(date)} ${quote(SUBJECT)} ${sender} ${sender} ${sender} ((NIL NIL ${quote(local ?? '')} ${quote(domain ?? '')})) NIL NIL NIL ${quote(MESSAGE_ID)})`;
  const reader = new CommandReader({ maxLineBytes: 8192, maxLiteralBytes: 8192 });
  let selected = false;
  let idleTag: string | null = null;
  let closed = false;
  let idleTimer: NodeJS.Timeout | null = null;

  const send = (text: string): void => {
    if (!closed) socket.write(text);
  };
  const end = (text: string): void => {
    if (closed) return;
    send(text);
    closed = true;
    if (idleTimer) clearTimeout(idleTimer);
    socket.end();
    setTimeout(() => socket.destroy(), 1000).unref();
    options.onClose();
  };
  const touch = (): void => {
    if (idleTimer) clearTimeout(idleTimer);
    idleTimer = setTimeout(() => end(bye('Disconnected for inactivity.')), IDLE_MS);
    idleTimer.unref();
  };

  const fetchItems = (spec: string, uidCommand: boolean): string => {
    const items: string[] = [];
    const want = spec.toUpperCase();
    if (uidCommand || /\bUID\b/.test(want)) items.push(`UID 1`);
    if (/FLAGS|ALL|FAST|FULL/.test(want)) items.push('FLAGS (\\Seen)');
    if (/INTERNALDATE|ALL|FAST|FULL/.test(want)) items.push(`INTERNALDATE "${internalDate}"`);
    if (/RFC822\.SIZE|ALL|FAST|FULL/.test(want)) items.push(`RFC822.SIZE ${message.length}`);
    if (/ENVELOPE|ALL|FULL/.test(want)) items.push(`ENVELOPE ${envelope}`);
    if (/BODYSTRUCTURE/.test(want)) {
      items.push(`BODYSTRUCTURE ("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "8BIT" ${message.length} ${message.toString('utf8').split('\r\n').length} NIL NIL NIL NIL)`);
    }
    const parts: Buffer[] = [Buffer.from(`* 1 FETCH (${items.join(' ')}`)];
    const header = message.subarray(0, message.indexOf('\r\n\r\n') + 4);
    const body = message.subarray(header.length);
    for (const m of want.matchAll(/(BODY(?:\.PEEK)?|BINARY(?:\.PEEK)?)\[([^\]]*)\](<\d+\.\d+>)?|RFC822(?:\.HEADER|\.TEXT)?(?![.\w])/g)) {
      const section = (m[2] ?? (m[0] === 'RFC822.HEADER' ? 'HEADER' : m[0] === 'RFC822.TEXT' ? 'TEXT' : '')).toUpperCase();
      let data = section.startsWith('HEADER') ? header : section === 'TEXT' || section === '1' ? body : message;
      let label = m[1] ? `${m[1].replace('.PEEK', '')}[${m[2]}]` : m[0];
      if (m[3]) {
        const [start, len] = m[3].slice(1, -1).split('.').map(Number) as [number, number];
        data = data.subarray(start, start + len);
        label += `<${start}>`;
      }
      parts.push(Buffer.from(`${parts.length === 1 && items.length === 0 ? '' : ' '}${label} {${data.length}}\r\n`), data);
    }
    parts.push(Buffer.from(')\r\n'));
    return Buffer.concat(parts).toString('latin1');
  };

  const handle = (segments: readonly (string | Buffer)[]): void => {
    if (idleTag !== null) {
      if (typeof segments[0] === 'string' && segments[0].toUpperCase() === 'DONE') {
        send(`${idleTag} OK IDLE terminated\r\n`);
        idleTag = null;
      } else end(bye('Expected DONE.'));
      return;
    }
    const raw = typeof segments[0] === 'string' ? segments[0] : '';
    // FETCH items (BODY.PEEK[HEADER.FIELDS (FROM)]) are not astrings: read them from the raw line.
    const fetch = /^(\S+) (UID )?FETCH (\S+) (.*)$/i.exec(raw);
    if (fetch && segments.length === 1) {
      const [, tag, uid, set, spec] = fetch as unknown as [string, string, string | undefined, string, string];
      if (!selected) return send(`${tag} BAD No mailbox selected\r\n`);
      const hit = /^(1|\*|1:\*|\*:1|1:\d+)$/.test(set);
      return send(`${hit ? fetchItems(spec, uid !== undefined) : ''}${tag} OK FETCH completed\r\n`);
    }
    let cmd;
    try {
      cmd = parseCommand(segments, true);
    } catch (err) {
      send(`${(err as ImapSyntaxError).tag ?? '*'} BAD ${(err as Error).message}\r\n`);
      return;
    }
    const { tag, args } = cmd;
    let name = cmd.name;
    let uid = false;
    if (name === 'UID') {
      uid = true;
      name = (tokenText(args[0]) ?? '').toUpperCase();
    }
    const rest = uid ? args.slice(1) : args;
    switch (name) {
      case 'CAPABILITY':
        return send(`* CAPABILITY ${CAPS}\r\n${tag} OK CAPABILITY completed\r\n`);
      case 'NOOP':
      case 'CHECK':
        return send(`${tag} OK ${name} completed\r\n`);
      case 'ID':
        return send(`* ID NIL\r\n${tag} OK ID completed\r\n`);
      case 'NAMESPACE':
        return send(`* NAMESPACE (("" "/")) NIL NIL\r\n${tag} OK NAMESPACE completed\r\n`);
      case 'LOGOUT':
        return end(`* BYE Logging out\r\n${tag} OK LOGOUT completed\r\n`);
      case 'LIST':
      case 'LSUB': {
        const pattern = tokenText(rest[1]) ?? '';
        const match = pattern === '*' || pattern === '%' || pattern.toUpperCase() === 'INBOX';
        const list = pattern === '' ? `* ${name} (\\Noselect) "/" ""\r\n` : match ? `* ${name} () "/" INBOX\r\n` : '';
        return send(`${list}${tag} OK ${name} completed\r\n`);
      }
      case 'STATUS':
        if ((tokenText(rest[0]) ?? '').toUpperCase() !== 'INBOX') return send(`${tag} NO [NONEXISTENT] No such mailbox\r\n`);
        return send(`* STATUS INBOX (MESSAGES 1 RECENT 0 UIDNEXT 2 UIDVALIDITY ${UIDVALIDITY} UNSEEN 0)\r\n${tag} OK STATUS completed\r\n`);
      case 'SELECT':
      case 'EXAMINE':
        if ((tokenText(rest[0]) ?? '').toUpperCase() !== 'INBOX') return send(`${tag} NO [NONEXISTENT] No such mailbox\r\n`);
        selected = true;
        return send(
          `* 1 EXISTS\r\n* 0 RECENT\r\n* FLAGS (\\Seen)\r\n* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n` +
            `* OK [UIDVALIDITY ${UIDVALIDITY}] UIDs valid\r\n* OK [UIDNEXT 2] Predicted next UID\r\n${tag} OK [READ-ONLY] ${name} completed\r\n`,
        );
      case 'CLOSE':
      case 'UNSELECT':
        selected = false;
        return send(`${tag} OK ${name} completed\r\n`);
      case 'SEARCH':
        if (!selected) return send(`${tag} BAD No mailbox selected\r\n`);
        return send(`* SEARCH 1\r\n${tag} OK SEARCH completed\r\n`);
      case 'IDLE':
        idleTag = tag;
        return send('+ idling\r\n');
      default:
        return send(`${tag} NO [CANNOT] This mailbox is read-only while the device is blocked\r\n`);
    }
  };

  const onData = (chunk: Buffer): void => {
    touch();
    reader.push(chunk);
    for (let ev = reader.next(); ev && !closed; ev = reader.next()) {
      if (ev.type === 'fatal') return end(bye('Line too long.'));
      if (ev.type === 'continue') send('+ Ready for literal data\r\n');
      else handle(ev.segments);
    }
  };

  send(`* OK [ALERT] ${options.sentence}\r\n${options.tag} OK [CAPABILITY ${CAPS}] Logged in (quarantine)\r\n`);
  socket.on('data', onData);
  socket.resume();
  touch();
  if (options.pipelined.length > 0) onData(options.pipelined);
  return { end };
}
