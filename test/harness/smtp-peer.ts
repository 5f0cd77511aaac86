/**
 * A real SMTP server (smtp-server) on loopback that authenticates against the
 * same user list as the test Dovecot and delivers every accepted message into
 * each recipient's Dovecot INBOX by IMAP APPEND. It answers 250 only after
 * every APPEND succeeded, so "accepted" means "readable over IMAP".
 *
 * STARTTLS is offered with smtp-server's bundled self-signed certificate:
 * clients must opt in to an untrusted certificate, which is what lets tests
 * exercise both a working STARTTLS and a certificate failure.
 */
import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import type { DovecotServer, MailUser } from './dovecot.ts';

export interface SmtpPeerOptions {
  dovecot: DovecotServer;
  /** Defaults to the Dovecot users. */
  users?: MailUser[];
  /** Largest accepted message in bytes (SIZE); bigger ones get 552. Default 10 MB. */
  maxSize?: number;
  /** Offer STARTTLS (self-signed). Default true. */
  starttls?: boolean;
  /** Listen port; default a free one. */
  port?: number;
}

export interface SmtpPeer {
  host: string;
  port: number;
  /** Raw messages accepted so far, in order. */
  accepted: { from: string; to: string[]; raw: Buffer }[];
  stop(): Promise<void>;
}

export async function startSmtpPeer(opts: SmtpPeerOptions): Promise<SmtpPeer> {
  const users = opts.users ?? opts.dovecot.users;
  const maxSize = opts.maxSize ?? 10 * 1024 * 1024;
  const accepted: SmtpPeer['accepted'] = [];
  const known = new Map(users.map((u) => [u.user.toLowerCase(), u]));

  const serverOptions: SMTPServerOptions = {
    name: 'smtp-peer.test',
    banner: 'mmgw test SMTP peer',
    size: maxSize,
    authMethods: ['PLAIN', 'LOGIN'],
    allowInsecureAuth: true,
    hideSTARTTLS: opts.starttls === false,
    disabledCommands: opts.starttls === false ? ['STARTTLS'] : [],
    logger: false,
    onAuth(auth, _session, cb) {
      const u = known.get(String(auth.username ?? '').toLowerCase());
      if (!u || u.password !== auth.password) {
        return cb(Object.assign(new Error('Invalid username or password'), { responseCode: 535 }));
      }
      cb(null, { user: u.user });
    },
    onRcptTo(address, _session, cb) {
      if (!known.has(address.address.toLowerCase())) {
        return cb(Object.assign(new Error(`No such user here <${address.address}>`), { responseCode: 550 }));
      }
      cb();
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('error', (err) => cb(err));
      stream.on('end', () => {
        if (stream.sizeExceeded) {
          return cb(
            Object.assign(new Error('Message exceeds fixed maximum message size'), { responseCode: 552 }),
          );
        }
        const raw = Buffer.concat(chunks);
        const to = session.envelope.rcptTo.map((r) => r.address);
        const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
        const received = Buffer.from(
          `Received: from ${session.clientHostname} by smtp-peer.test; ${new Date().toUTCString()}\r\n`,
        );
        Promise.all(
          to.map((rcpt) =>
            opts.dovecot.appendMessage(
              known.get(rcpt.toLowerCase())!.user,
              'INBOX',
              Buffer.concat([received, raw]),
            ),
          ),
        ).then(
          () => {
            accepted.push({ from, to, raw });
            cb(null, 'Delivered');
          },
          (err) => cb(Object.assign(new Error(`Delivery failed: ${err.message}`), { responseCode: 451 })),
        );
      });
    },
  };
  const server = new SMTPServer(serverOptions);
  server.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.server.address() as AddressInfo).port;
  let stopped: Promise<void> | undefined;
  return {
    host: '127.0.0.1',
    port,
    accepted,
    stop: () => (stopped ??= new Promise<void>((resolve) => server.close(() => resolve()))),
  };
}
