// im.send's resend recognition (issue #12) against a stand-in account session: the sent record,
// the archive read once per session, and what makes it read again.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pino from 'pino';
import { GatewayError } from '../../../../device-protocol/errors.ts';
import { InProcessBus } from '../../../bus/index.ts';
import { TransportStorage } from '../../kit/transport-storage.ts';
import type { MethodContext } from '../../types.ts';
import type { ImDeps } from '../deps.ts';
import { ImSentRecords } from '../sent-records.ts';
import type { ChatMessage, XmppAccountSession } from '../xmpp-session.ts';
import { imSendMethod } from './send.ts';

const dir = mkdtempSync(join(tmpdir(), 'mmgw-im-send-'));
const storage = TransportStorage.open(dir);
after(async () => {
  await storage.close();
  rmSync(dir, { recursive: true, force: true });
});

const ACCOUNT = 'x0123456789abcdef';
const BOB = 'bob@example.test';

/** An online account session whose archive and sends the test scripts. */
class StandInSession {
  state = 'online';
  archived: ChatMessage[] = [];
  archiveReads = 0;
  archiveFails = false;
  archiveMissing = false;
  archiveHangs = false;
  sendFails = false;
  sent: string[] = [];

  async archive() {
    this.archiveReads++;
    if (this.archiveFails) throw new GatewayError('im.unreachable', 'the chat account is reconnecting');
    if (this.archiveMissing) throw new Error('feature-not-implemented');
    if (this.archiveHangs) return new Promise<never>(() => {});
    return { messages: this.archived, complete: true };
  }

  async send(_to: string, _body: string, clientId: string) {
    if (this.sendFails) throw new GatewayError('im.send_failed', 'no ack');
    this.sent.push(clientId);
  }
}

function rig(opts: { compact?: boolean; sent?: ImSentRecords } = {}) {
  const session = new StandInSession();
  const deps = {
    accounts: { assertOwned: () => {} },
    sessions: {
      setPusher: () => {},
      get: () => session as unknown as XmppAccountSession,
      compact: () => opts.compact ?? false,
    },
    sent: opts.sent ?? new ImSentRecords(storage),
  } as unknown as ImDeps;
  const method = imSendMethod(deps, { archiveCheckTimeoutMs: 20 });
  const ctx: MethodContext = {
    deviceId: 'dev-1',
    sessionId: 's-1',
    requestId: 'r-1',
    bus: new InProcessBus(),
    logger: pino({ level: 'silent' }),
    dataDir: dir,
    now: () => 1000,
    push: async () => 0,
  };
  const send = (clientId: string, to = BOB) =>
    method.handle(ctx, { account: ACCOUNT, to, body: 'hi', clientId });
  return { session, send };
}

const outgoing = (originId: string, to = BOB, direction: 'in' | 'out' = 'out'): ChatMessage => ({
  from: 'alice@example.test',
  to,
  body: 'hi',
  originId,
  at: '2026-01-01T00:00:00Z',
  direction,
});

test('a resend after an acknowledged send is answered from the sent record, not sent again', async () => {
  const { session, send } = rig();
  assert.deepEqual(await send('r-1'), { account: ACCOUNT, clientId: 'r-1' });
  assert.deepEqual(await send('r-1'), { account: ACCOUNT, clientId: 'r-1', duplicate: true });
  assert.deepEqual(await send('r-2'), { account: ACCOUNT, clientId: 'r-2' });
  assert.deepEqual(session.sent, ['r-1', 'r-2']);
  assert.equal(session.archiveReads, 1, 'the archive is read once per session');
});

test('a message another node sent (in the archive by origin-id) is answered, not sent again', async () => {
  const { session, send } = rig();
  session.archived = [outgoing('a-1'), outgoing('a-2', 'carol@example.test'), outgoing('a-3', BOB, 'in')];
  assert.deepEqual(await send('a-1'), { account: ACCOUNT, clientId: 'a-1', duplicate: true });
  // The same id to someone else, or an incoming message with it, is not ours to Bob.
  assert.deepEqual(await send('a-2'), { account: ACCOUNT, clientId: 'a-2' });
  assert.deepEqual(await send('a-3'), { account: ACCOUNT, clientId: 'a-3' });
  assert.deepEqual(session.sent, ['a-2', 'a-3']);
});

test('a session not online yet refuses the send (retryable) until it can read its archive', async () => {
  const { session, send } = rig();
  session.archiveFails = true;
  session.archived = [outgoing('b-1')];
  await assert.rejects(
    send('b-1'),
    (err: unknown) => err instanceof GatewayError && err.code === 'im.unreachable',
  );
  assert.deepEqual(session.sent, [], 'nothing sent blind');
  session.archiveFails = false;
  assert.deepEqual(await send('b-1'), { account: ACCOUNT, clientId: 'b-1', duplicate: true });
});

test('a server without an archive: sends go out, and it is not asked again this session', async () => {
  const { session, send } = rig();
  session.archiveMissing = true;
  assert.deepEqual(await send('f-1'), { account: ACCOUNT, clientId: 'f-1' });
  assert.deepEqual(await send('f-2'), { account: ACCOUNT, clientId: 'f-2' });
  assert.equal(session.archiveReads, 1);
});

test('a failed send has the archive read again: the server may have taken it', async () => {
  const { session, send } = rig();
  session.sendFails = true;
  await assert.rejects(
    send('c-1'),
    (err: unknown) => err instanceof GatewayError && err.code === 'im.send_failed',
  );
  // The server did take it.
  session.sendFails = false;
  session.archived = [outgoing('c-1')];
  assert.deepEqual(await send('c-1'), { account: ACCOUNT, clientId: 'c-1', duplicate: true });
  assert.equal(session.archiveReads, 2);
  assert.deepEqual(session.sent, []);
});

test('a device on the compact forms gets an empty answer to a send and to a resend', async () => {
  const { session, send } = rig({ compact: true });
  assert.equal(await send('d-1'), undefined);
  assert.equal(await send('d-1'), undefined);
  assert.deepEqual(session.sent, ['d-1']);
});

test('an archive that does not answer does not hold the send; the next send asks again', async () => {
  const { session, send } = rig();
  session.archiveHangs = true;
  assert.deepEqual(await send('e-1'), { account: ACCOUNT, clientId: 'e-1' });
  session.archiveHangs = false;
  session.archived = [outgoing('e-2')];
  assert.deepEqual(await send('e-2'), { account: ACCOUNT, clientId: 'e-2', duplicate: true });
  assert.equal(session.archiveReads, 2);
});

test('a sent record the shared state is slow to write does not hold the answer; a resend meanwhile is not sent again', async () => {
  /** Shared state electing leaders after an outage: writes take their time, or fail. */
  class StuckRecords extends ImSentRecords {
    writes: Array<(fail?: Error) => void> = [];
    override put(): Promise<void> {
      return new Promise((resolve, reject) => this.writes.push((fail) => (fail ? reject(fail) : resolve())));
    }
  }
  const records = new StuckRecords(storage);
  const { session, send } = rig({ sent: records });
  assert.deepEqual(await send('s-1'), { account: ACCOUNT, clientId: 's-1' });
  assert.deepEqual(await send('s-1'), { account: ACCOUNT, clientId: 's-1', duplicate: true });
  // The write fails in the end: the resend is still recognised on this node.
  records.writes[0]?.(new Error('timeout'));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(await send('s-1'), { account: ACCOUNT, clientId: 's-1', duplicate: true });
  assert.deepEqual(session.sent, ['s-1']);
});
