import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { SMTPServer } from 'smtp-server';
import { alarmRecord } from '../../../testing/alarm-history-suite.ts';
import { DestinationPolicy } from '../../net/destination-policy.ts';
import { emailChannel } from './email.ts';

async function relay() {
  const mails: { to: string[]; raw: string }[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, session, cb) {
      let raw = '';
      stream.setEncoding('utf8');
      stream.on('data', (c: string) => (raw += c));
      stream.on('end', () => {
        mails.push({ to: session.envelope.rcptTo.map((r) => r.address), raw });
        cb();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.server.address() as AddressInfo;
  return { port, mails, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

const settings = (port: number) => ({
  host: '127.0.0.1',
  port,
  from: 'mmgw@example.test',
  to: ['noc@example.test', 'oncall@example.test'],
});

test('an alarm goes to every recipient through the relay, its state and kind in the subject', async () => {
  const r = await relay();
  try {
    const channel = emailChannel(settings(r.port), new DestinationPolicy({ allow: ['127.0.0.1'] }));
    await channel.send(
      alarmRecord({ kind: 'admin_gone', subject: 'cluster', message: 'no admin node for 12 s' }),
    );
    await channel.send(alarmRecord({ kind: 'admin_gone', subject: 'cluster', state: 'cleared' }));
    assert.equal(r.mails.length, 2);
    assert.deepEqual(r.mails[0]?.to, ['noc@example.test', 'oncall@example.test']);
    assert.match(r.mails[0]?.raw ?? '', /Subject: \[mmgw\] CRITICAL admin_gone cluster/);
    assert.match(r.mails[0]?.raw ?? '', /no admin node for 12 s/);
    assert.match(r.mails[1]?.raw ?? '', /Subject: \[mmgw\] CLEARED admin_gone cluster/);
  } finally {
    await r.close();
  }
});

test('a relay the outbound policy does not allow is never connected to', async () => {
  const r = await relay();
  try {
    const channel = emailChannel(settings(r.port), new DestinationPolicy());
    await assert.rejects(
      channel.send(alarmRecord()),
      (err: { code?: string }) => err.code === 'policy.destination_not_allowed',
    );
    assert.equal(r.mails.length, 0);
  } finally {
    await r.close();
  }
});
