/**
 * Child process of mail-send-crash.test.ts: one mail.send on the fixture's
 * data directory (and its Dovecot and SMTP peer), which dies by SIGKILL right
 * after the durable sent mark, before the copy to Sent: what a kill -9 of the
 * node between the SMTP 250 and the APPEND leaves behind.
 *
 *   node --import tsx mail-send-crash-child.ts <dataDir> <deviceId> <mail.send body as JSON>
 *   (MMGW_CREDENTIALS_KEY: the fixture's key)
 */
import pino from 'pino';
import { InProcessBus } from '../../server/bus/index.ts';
import { parseMethodInput } from '../../server/transport/index.ts';
import { openMailService } from '../../server/transport/mail/index.ts';

const [dataDir = '', deviceId = '', body = '{}'] = process.argv.slice(2);
const service = openMailService({
  dataDir,
  credentialsKey: process.env.MMGW_CREDENTIALS_KEY,
  transport: { allowDestinations: ['127.0.0.0/8'] },
  connectTimeoutMs: 5000,
  mimeWorkers: false,
  afterSentMark: () => {
    process.kill(process.pid, 'SIGKILL');
  },
});
const send = service.methods.find((m) => m.method === 'mail.send');
if (!send) throw new Error('no mail.send');
await send.handle(
  {
    deviceId,
    sessionId: 's-crash',
    requestId: 'r-crash',
    bus: new InProcessBus(),
    logger: pino({ level: 'silent' }),
    dataDir,
    now: Date.now,
    push: async () => 0,
  },
  parseMethodInput(send, JSON.parse(body)),
);
console.error('mail.send returned: the crash point was not reached');
process.exit(3);
