/**
 * The world the fuzzed gateway talks to: a private Dovecot with one mailbox
 * per fuzzing device (seeded with mails worth reading: text, HTML, a photo,
 * a PNG whose header claims 3.6 gigapixels, a forwarded message inside
 * alternatives), the SMTP peer delivering into it, and a private Prosody
 * with one account per device, every device a mutual contact of every other
 * (so im.send and presence reach someone).
 */
import { type DovecotServer, startDovecot } from '../harness/dovecot.ts';
import { type ProsodyServer, startProsody } from '../harness/prosody.ts';
import { type SmtpPeer, startSmtpPeer } from '../harness/smtp-peer.ts';
import { photoJpeg, pngClaiming } from '../../testing/images.ts';
import type { MailLogin, XmppLogin } from './knowledge.ts';

export interface FuzzPeers {
  dovecot: DovecotServer;
  smtp: SmtpPeer;
  prosody: ProsodyServer;
  /** Per fuzzing device, in order. */
  logins: { mail: MailLogin; xmpp: XmppLogin }[];
  stop(): Promise<void>;
}

const DOMAIN = 'example.test';

function base64Lines(bytes: Buffer): string {
  return (bytes.toString('base64').match(/.{1,76}/g) ?? []).join('\r\n');
}

/** The mails every mailbox starts with (RFC 5322, CRLF). */
async function seedMails(to: string): Promise<string[]> {
  const photo = await photoJpeg(320, 240);
  const bomb = pngClaiming(60_000, 60_000);
  const head = (subject: string, type: string) =>
    [
      'From: Seed <seed@example.test>',
      `To: ${to}`,
      `Subject: ${subject}`,
      'Date: Mon, 1 Jan 2024 10:00:00 +0000',
      `Message-ID: <${subject.replace(/\W/g, '')}.${to}>`,
      'MIME-Version: 1.0',
      `Content-Type: ${type}`,
      '',
    ].join('\r\n');
  return [
    `${head('plain', 'text/plain; charset=utf-8')}\r\nHello, this is plain text. Grüße ✓\r\n`,
    `${head('html', 'text/html; charset=utf-8')}\r\n<p>Hello <b>HTML</b><script>x()</script></p>\r\n`,
    [
      head('attachments', 'multipart/mixed; boundary="b1"'),
      '--b1',
      'Content-Type: text/plain; charset=utf-8',
      '',
      'Two pictures attached.',
      '--b1',
      'Content-Type: image/jpeg; name="photo.jpg"',
      'Content-Disposition: attachment; filename="photo.jpg"',
      'Content-Transfer-Encoding: base64',
      '',
      base64Lines(photo),
      '--b1',
      'Content-Type: image/png; name="bomb.png"',
      'Content-Disposition: attachment; filename="bomb.png"',
      'Content-Transfer-Encoding: base64',
      '',
      base64Lines(bomb),
      '--b1--',
      '',
    ].join('\r\n'),
    [
      head('nested', 'multipart/mixed; boundary="o"'),
      '--o',
      'Content-Type: multipart/alternative; boundary="a"',
      '',
      '--a',
      'Content-Type: text/plain; charset=iso-8859-1',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      'Gr=FC=DFe',
      '--a',
      'Content-Type: text/html; charset=utf-8',
      '',
      '<p>Grüße</p>',
      '--a--',
      '--o',
      'Content-Type: message/rfc822',
      '',
      'Subject: inner',
      'Content-Type: text/plain',
      '',
      'inner body',
      '--o--',
      '',
    ].join('\r\n'),
  ];
}

export async function startFuzzPeers(devices: number): Promise<FuzzPeers> {
  const users = Array.from({ length: devices }, (_, i) => ({
    local: `fuzz${i}`,
    password: `pw-${i}-secret`,
  }));
  const stops: (() => Promise<void>)[] = [];
  const stop = async () => {
    for (const s of stops.reverse()) await s().catch(() => {});
  };
  try {
    const dovecot = await startDovecot({
      users: users.map((u) => ({ user: `${u.local}@${DOMAIN}`, password: u.password })),
    });
    stops.push(() => dovecot.stop({ removeDir: true }));
    const smtp = await startSmtpPeer({ dovecot });
    stops.push(() => smtp.stop());
    const everyone = users.map((u) => ({ jid: `${u.local}@${DOMAIN}`, name: u.local }));
    const prosody = await startProsody({
      domain: DOMAIN,
      users: users.map((u) => ({ user: u.local, password: u.password })),
      rosters: Object.fromEntries(users.map((u) => [u.local, everyone.filter((c) => c.name !== u.local)])),
    });
    stops.push(() => prosody.stop());
    for (const u of users) {
      const address = `${u.local}@${DOMAIN}`;
      for (const mail of await seedMails(address)) await dovecot.appendMessage(address, 'INBOX', mail);
    }
    const logins = users.map((u) => {
      const address = `${u.local}@${DOMAIN}`;
      return {
        mail: {
          address,
          password: u.password,
          imap: {
            host: dovecot.host,
            port: dovecot.imapPort,
            tls: 'none' as const,
            user: address,
            password: u.password,
          },
          smtp: {
            host: smtp.host,
            port: smtp.port,
            tls: 'starttls' as const,
            allowInvalidCert: true as const,
            user: address,
            password: u.password,
          },
        },
        xmpp: { jid: prosody.jid(u.local), password: u.password, host: prosody.host, port: prosody.c2sPort },
      };
    });
    return { dovecot, smtp, prosody, logins, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
