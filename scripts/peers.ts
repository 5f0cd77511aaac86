/**
 * `npm run peers`: starts on loopback the same real mail servers the tests use
 * (a private Dovecot with demo accounts and the SMTP peer that delivers into
 * it) and a private Prosody (XMPP, demo accounts alice and bob on
 * example.test, each in the other's roster), and prints how to point a
 * handset at them. Ctrl-C stops them all.
 *
 * The gateway's outbound policy refuses loopback servers unless opened: the
 * start line printed names MMGW_ALLOW_DESTINATIONS for these peers.
 *
 * Dovecot calls the gateway's new-mail hook (docs/dovecot/README.md) at
 * --push-hook URL (default http://127.0.0.1:8081/hooks/mail/new, the admin
 * port of `npm start`) with the token in MMGW_MAIL_PUSH_TOKEN (generated when
 * unset and printed: start the gateway with the same). --no-push-hook: IDLE only.
 *
 *   npm run peers -- [--imap-port 1143] [--smtp-port 1587] [--xmpp-port 5222] [--push-hook URL | --no-push-hook] [--help]
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { parseArgs } from 'node:util';
import { startDovecot } from '../test/harness/dovecot.ts';
import { freePort, type ProsodyServer, startProsody } from '../test/harness/prosody.ts';
import { startSmtpPeer } from '../test/harness/smtp-peer.ts';

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

const USAGE = `usage: npm run peers -- [options]

Starts on loopback a private Dovecot (IMAP, demo accounts), an SMTP peer that
delivers into it and a private Prosody (XMPP), and prints how to use them with
a gateway. Ctrl-C stops them all.

  --imap-port N       Dovecot's IMAP port (default: any free one)
  --smtp-port N       the SMTP peer's port (default: any free one)
  --xmpp-port N       Prosody's port (default: 5222, or any free one if taken)
  --push-hook URL     the gateway's new-mail hook (default http://127.0.0.1:8081/hooks/mail/new),
                      called with the token in MMGW_MAIL_PUSH_TOKEN (generated and printed when unset)
  --no-push-hook      no hook: the gateway learns of new mail through IMAP IDLE only
  -h, --help          this text`;

let options: ReturnType<typeof parseOptions>;
function parseOptions() {
  return parseArgs({
    options: {
      'imap-port': { type: 'string' },
      'smtp-port': { type: 'string' },
      'xmpp-port': { type: 'string' },
      'push-hook': { type: 'string' },
      'no-push-hook': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  }).values;
}
try {
  options = parseOptions();
} catch (err) {
  console.error(`${(err as Error).message}\n\n${USAGE}`);
  process.exit(2);
}
if (options.help) {
  console.log(USAGE);
  process.exit(0);
}

function port(name: 'imap-port' | 'smtp-port' | 'xmpp-port'): number | undefined {
  const value = options[name];
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535) {
    console.error(`--${name} needs a port number (1-65535), not ${JSON.stringify(value)}`);
    process.exit(2);
  }
  return n;
}

const users = [
  { user: 'alice@example.test', password: 'alice-demo' },
  { user: 'bob@example.test', password: 'bob-demo' },
];

const pushHook = options['no-push-hook']
  ? undefined
  : {
      url: options['push-hook'] ?? 'http://127.0.0.1:8081/hooks/mail/new',
      token: process.env.MMGW_MAIL_PUSH_TOKEN || randomBytes(18).toString('hex'),
    };
const imapPort = port('imap-port');
const smtpPort = port('smtp-port');
const xmppPortOption = port('xmpp-port');
const dovecot = await startDovecot({ users, port: imapPort, ...(pushHook ? { pushHook } : {}) });
let smtp: Awaited<ReturnType<typeof startSmtpPeer>> | undefined;
let prosody: ProsodyServer | undefined;
try {
  smtp = await startSmtpPeer({ dovecot, port: smtpPort });
  // 5222 unless taken (a system Prosody): then any free port, printed below.
  const xmppPort = xmppPortOption ?? ((await portFree(5222)) ? 5222 : await freePort());
  prosody = await startProsody({
    domain: 'example.test',
    port: xmppPort,
    users: [
      { user: 'alice', password: 'alice-demo' },
      { user: 'bob', password: 'bob-demo' },
    ],
    rosters: {
      alice: [{ jid: 'bob@example.test', name: 'Bob', groups: ['Demo'] }],
      bob: [{ jid: 'alice@example.test', name: 'Alice', groups: ['Demo'] }],
    },
  });
  for (const u of users) {
    await dovecot.appendMessage(
      u.user,
      'INBOX',
      [
        'From: mmgw demo <demo@example.test>',
        `To: ${u.user}`,
        'Subject: Welcome to the mmgw mail demo',
        `Date: ${new Date().toUTCString()}`,
        'Content-Type: text/plain; charset=utf-8',
        '',
        `Hello ${u.user.split('@')[0]}, this message sits in a private Dovecot started by npm run peers.`,
        '',
      ].join('\r\n'),
    );
  }
} catch (err) {
  await prosody?.stop();
  await smtp?.stop();
  await dovecot.stop({ removeDir: true });
  throw err;
}

// The README's line: the IMAP login defaults to the address, and SMTP's to IMAP's.
const addLine = (u: (typeof users)[number]) =>
  JSON.stringify({
    id: '1',
    cmd: 'mail.account.add',
    address: u.user,
    imap: { host: dovecot.host, port: dovecot.imapPort, tls: 'none', password: u.password },
    smtp: { host: smtp!.host, port: smtp!.port, tls: 'none' },
  });

// The outbound policy refuses loopback unless opened (README, "Running"): every peer here is on it.
const allow = [...new Set([dovecot.host, smtp.host, prosody!.host])].join(',');
console.log(`Dovecot IMAP  ${dovecot.host}:${dovecot.imapPort}  (tls none; data in ${dovecot.dir})`);
console.log(`SMTP peer     ${smtp.host}:${smtp.port}  (tls none, or starttls with allowInvalidCert: true)`);
console.log('These listen on loopback, which the gateway refuses to reach unless opened; start it with');
console.log(
  `              MMGW_ALLOW_DESTINATIONS=${allow}${pushHook ? ` MMGW_MAIL_PUSH_TOKEN=${pushHook.token}` : ''} npm start`,
);
if (pushHook) console.log(`Push hook     Dovecot calls ${pushHook.url} on new mail (the token above).`);
console.log('Demo accounts:');
for (const u of users) console.log(`  ${u.user}  password ${u.password}`);
console.log('\nWith a gateway running (npm start) and a provisioned device (npx mmgw device add …), open');
console.log('  npx mmgw handset --json --url ws://127.0.0.1:8080 --imei <imei> --secret <secret>');
console.log('and add an account with one of:');
for (const u of users) console.log(addLine(u));
console.log('\nthen e.g. {"id":"2","cmd":"mail.sync","account":"<id>","folder":"INBOX","limit":20}');
console.log(
  `\nProsody XMPP  ${prosody!.host}:${prosody!.c2sPort}  (domain example.test, plain c2s; data in ${prosody!.dir})`,
);
console.log('Chat accounts: alice@example.test password alice-demo, bob@example.test password bob-demo');
console.log('Sign in from a handset (two handsets, one each, to chat) with:');
for (const [user, password] of [
  ['alice', 'alice-demo'],
  ['bob', 'bob-demo'],
]) {
  console.log(
    JSON.stringify({
      id: '1',
      cmd: 'im.login',
      jid: `${user}@example.test`,
      password,
      host: prosody!.host,
      port: prosody!.c2sPort,
    }),
  );
}
console.log(
  'then {"id":"2","cmd":"im.send","account":"<id>","to":"bob@example.test","body":"hi","clientId":"c-1"}',
);
console.log(`(interactive: im login alice@example.test alice-demo ${prosody!.host} ${prosody!.c2sPort})`);
console.log('Ctrl-C stops all servers.');

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await prosody?.stop();
  await smtp?.stop();
  await dovecot.stop({ removeDir: true });
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
