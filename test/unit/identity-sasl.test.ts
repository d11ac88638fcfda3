// SASL decoders shared by IMAP and SMTP: PLAIN, XOAUTH2, OAUTHBEARER, and the error challenges.
import {
  decodeOauthbearer,
  decodePlain,
  decodeSaslText,
  decodeXoauth2,
  MAX_SASL_RESPONSE_CHARS,
  oauthbearerErrorChallenge,
  xoauth2ErrorChallenge,
} from '../../src/identity/sasl';

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');

describe('decodePlain (RFC 4616)', () => {
  it('decodes the reference example', () => {
    expect(decodePlain('AGFsaWNlQGV4YW1wbGUuY29tAHMzY3JldA==')).toEqual({
      ok: true,
      credential: { kind: 'password', username: 'alice@example.com', password: 's3cret' },
    });
  });

  it('accepts an authzid equal to the authcid, and UTF-8 passwords', () => {
    expect(decodePlain(b64('bob\0bob\0pässwörd'))).toEqual({
      ok: true,
      credential: { kind: 'password', username: 'bob', password: 'pässwörd' },
    });
  });

  it.each([
    ['not base64', 'not base64!', 'bad-base64'],
    ['base64 with junk Buffer.from would skip', 'AGFsaWNl*QGV4', 'bad-base64'],
    ['missing padding', b64('\0alice\0pw1').replace(/=+$/, ''), 'bad-base64'],
    ['two fields', b64('alice\0pw'), 'malformed'],
    ['four fields', b64('\0alice\0pw\0x'), 'malformed'],
    ['empty authcid', b64('\0\0pw'), 'malformed'],
    ['empty password', b64('\0alice\0'), 'malformed'],
    ['empty message', '', 'malformed'],
    ['invalid UTF-8', Buffer.from([0, 0x61, 0, 0xff, 0xfe]).toString('base64'), 'malformed'],
    ['other authzid', b64('mallory\0alice\0pw'), 'authzid-mismatch'],
    ['over-long response', 'A'.repeat(MAX_SASL_RESPONSE_CHARS + 4), 'malformed'],
  ])('rejects %s', (_name, input, error) => {
    const result = decodePlain(input);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.error).toBe(error);
      expect(result.detail).not.toContain('pw');
    }
  });
});

describe('decodeXoauth2', () => {
  it('decodes the Google format', () => {
    expect(decodeXoauth2(b64('user=alice@example.com\x01auth=Bearer eyJhbGciOi.x.y\x01\x01'))).toEqual({
      ok: true,
      credential: { kind: 'bearer', username: 'alice@example.com', token: 'eyJhbGciOi.x.y' },
    });
  });

  it('accepts a lower-case scheme and an empty user', () => {
    expect(decodeXoauth2(b64('user=\x01auth=bearer abc\x01\x01'))).toEqual({
      ok: true,
      credential: { kind: 'bearer', token: 'abc' },
    });
  });

  it.each([
    ['no trailing ^A^A', 'user=a\x01auth=Bearer t'],
    ['one trailing ^A', 'user=a\x01auth=Bearer t\x01'],
    ['no auth', 'user=a\x01\x01'],
    ['basic scheme', 'user=a\x01auth=Basic dTpw\x01\x01'],
    ['empty token', 'user=a\x01auth=Bearer \x01\x01'],
    ['token with a space', 'user=a\x01auth=Bearer a b\x01\x01'],
    ['token with CRLF', 'user=a\x01auth=Bearer a\r\nb\x01\x01'],
    ['duplicate auth', 'auth=Bearer a\x01auth=Bearer b\x01\x01'],
    ['pair without =', 'user\x01auth=Bearer t\x01\x01'],
  ])('rejects %s', (_name, text) => {
    const result = decodeXoauth2(b64(text));
    expect(result).toMatchObject({ ok: false, error: 'malformed' });
  });

  it('rejects bad base64 as bad-base64', () => {
    expect(decodeXoauth2('dXNlcj1h$$$')).toMatchObject({ ok: false, error: 'bad-base64' });
  });
});

describe('decodeOauthbearer (RFC 7628)', () => {
  it('decodes the reference example with authzid, host and port', () => {
    expect(
      decodeOauthbearer(
        'bixhPWFsaWNlQGV4YW1wbGUuY29tLAFob3N0PW1haWwuZXhhbXBsZS5jb20BcG9ydD05OTMBYXV0aD1CZWFyZXIgZXlKaGJHY2lPaS54LnkBAQ==',
      ),
    ).toEqual({ ok: true, credential: { kind: 'bearer', username: 'alice@example.com', token: 'eyJhbGciOi.x.y' } });
  });

  it('decodes without authzid, and unescapes =2C and =3D', () => {
    expect(decodeOauthbearer(b64('n,,\x01auth=Bearer tok\x01\x01'))).toEqual({
      ok: true,
      credential: { kind: 'bearer', token: 'tok' },
    });
    expect(decodeOauthbearer(b64('y,a=a=2Cb=3Dc,\x01auth=Bearer tok\x01\x01'))).toEqual({
      ok: true,
      credential: { kind: 'bearer', username: 'a,b=c', token: 'tok' },
    });
  });

  it.each([
    ['the dummy response', '\x01', 'malformed'],
    ['no GS2 header', 'auth=Bearer t', 'malformed'],
    ['bad cbind flag', 'x,,\x01auth=Bearer t\x01\x01', 'malformed'],
    ['channel binding', 'p=tls-unique,,\x01auth=Bearer t\x01\x01', 'unsupported'],
    ['authzid without a=', 'n,alice,\x01auth=Bearer t\x01\x01', 'malformed'],
    ['bad escape in authzid', 'n,a=al=41ce,\x01auth=Bearer t\x01\x01', 'malformed'],
    ['header not ending with a comma', 'n,a=alice\x01auth=Bearer t\x01\x01', 'malformed'],
    ['no auth pair', 'n,,\x01host=x\x01\x01', 'malformed'],
    ['no final ^A', 'n,,\x01auth=Bearer t\x01', 'malformed'],
  ])('rejects %s', (_name, text, error) => {
    expect(decodeOauthbearer(b64(text))).toMatchObject({ ok: false, error });
  });
});

describe('decodeSaslText (LOGIN mechanism fields)', () => {
  it('decodes base64 UTF-8 and refuses non-base64', () => {
    expect(decodeSaslText('VXNlcm5hbWU6')).toEqual({ ok: true, text: 'Username:' });
    expect(decodeSaslText('VXNlcm5hbWU')).toMatchObject({ ok: false, error: 'bad-base64' });
  });
});

describe('error challenges', () => {
  it('builds the RFC 7628 §3.2.2 JSON status', () => {
    const decoded = JSON.parse(Buffer.from(oauthbearerErrorChallenge({ scope: 'mail' }), 'base64').toString('utf8'));
    expect(decoded).toEqual({ status: 'invalid_token', scope: 'mail' });
    const withConfig = JSON.parse(
      Buffer.from(
        oauthbearerErrorChallenge({ status: 'insufficient_scope', openidConfiguration: 'https://idp/.well-known/openid-configuration' }),
        'base64',
      ).toString('utf8'),
    );
    expect(withConfig).toEqual({ status: 'insufficient_scope', 'openid-configuration': 'https://idp/.well-known/openid-configuration' });
  });

  it('builds the XOAUTH2 JSON status', () => {
    expect(JSON.parse(Buffer.from(xoauth2ErrorChallenge(), 'base64').toString('utf8'))).toEqual({ status: '401', schemes: 'bearer' });
  });
});
