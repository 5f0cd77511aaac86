// The IM service inside a real transport role on the in-process bus (which
// encodes every message as NATS would): requests go in as TransportRequests,
// pushes come out on the device subjects as an edge would receive them.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { GatewayError } from '../../device-protocol/errors.ts';
import { type DeviceMessage, Subjects } from '../../server/bus/bus.ts';
import { InProcessBus } from '../../server/bus/inproc.ts';
import { startTransport, type TransportHandle, type TransportRequest } from '../../server/transport/index.ts';
import { type ImService, openImService } from '../../server/transport/im/index.ts';
import { eventually } from '../../testing/index.ts';
import { type ProsodyServer, startProsody } from '../harness/prosody.ts';

const logger = pino({ level: 'silent' });
const NODE = 'node-im-1';

describe('im.* through the transport role and the bus', { timeout: 120_000 }, () => {
  let prosody: ProsodyServer;
  let bus: InProcessBus;
  let dataDir: string;
  let im: ImService;
  let transport: TransportHandle;

  /** A stand-in for the edge holding the device's session. */
  const edge = (deviceId: string, unreachable?: () => boolean) => {
    const events: { name: string; body: any }[] = [];
    let seq = 0;
    bus.subscribe(Subjects.device(deviceId), async (msg) => {
      const m = msg.data as DeviceMessage;
      // What a push meets while the bus is down: no answer in time.
      if (unreachable?.()) throw new GatewayError('bus.timeout', 'the edge did not answer');
      if (m.type === 'event') events.push({ name: m.name, body: m.body });
      return { seq: ++seq };
    });
    return events;
  };

  let req = 0;
  const ask = (deviceId: string, method: string, body: unknown): Promise<any> =>
    bus.request(
      Subjects.transportRequest(NODE),
      { deviceId, sessionId: `s-${deviceId}`, id: `r-${++req}`, method, body } as TransportRequest,
      { timeoutMs: 30_000 },
    );

  before(async () => {
    prosody = await startProsody({
      users: [
        { user: 'alice', password: 'pa' },
        { user: 'bob', password: 'pb' },
      ],
    });
    bus = new InProcessBus();
    dataDir = mkdtempSync(join(tmpdir(), 'mmgw-im-transport-'));
    im = openImService({
      dataDir,
      logger,
      credentialsKey: Buffer.alloc(32, 3).toString('base64'),
    });
    transport = await startTransport({ bus, nodeId: NODE, logger, dataDir, methods: im.methods });
  });

  after(async () => {
    await transport?.close();
    await im?.close();
    await bus?.close();
    await prosody?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  test('login, send, push and catch-up survive the bus codec; errors keep their code', async () => {
    const evA = edge('dev-a');
    const evB = edge('dev-b');
    const server = { host: prosody.host, port: prosody.c2sPort };
    const a = await ask('dev-a', 'im.login', { jid: 'alice@example.test', password: 'pa', ...server });
    const b = await ask('dev-b', 'im.login', { jid: 'bob@example.test', password: 'pb', ...server });
    assert.equal(a.state, 'online');
    assert.ok(evA.some((e) => e.name === 'im.state' && e.body.state === 'online'));

    const sent = await ask('dev-a', 'im.send', {
      account: a.account,
      to: 'bob@example.test',
      body: 'über den Bus ✓',
      clientId: 'bus-1',
    });
    assert.deepEqual(sent, { account: a.account, clientId: 'bus-1' });
    await eventually('im.message at bob’s edge', () => evB.some((e) => e.name === 'im.message'));
    const message = evB.find((e) => e.name === 'im.message')!.body;
    assert.equal(message.body, 'über den Bus ✓');
    assert.equal(message.account, b.account);
    assert.equal(message.from, 'alice@example.test');

    const page = await ask('dev-b', 'im.catchup', { account: b.account, max: 10 });
    assert.ok(page.messages.some((m: any) => m.stanzaId === message.stanzaId && m.body === message.body));

    // The transport node restarts (service and role anew, same data): the stored accounts
    // come back by themselves and bob's edge gets alice's next message without a request.
    await transport.close();
    await im.close();
    im = openImService({
      dataDir,
      logger,
      bus,
      credentialsKey: Buffer.alloc(32, 3).toString('base64'),
    });
    transport = await startTransport({ bus, nodeId: NODE, logger, dataDir, methods: im.methods });
    const before = evB.length;
    await im.restoreAll();
    await eventually('bob restored', () => im.deps.sessions.get(b.account)?.state === 'online');
    await eventually('alice restored', () => im.deps.sessions.get(a.account)?.state === 'online');
    await eventually('bob’s edge hears the restored account is online', () =>
      evB.slice(before).some((e) => e.name === 'im.state' && e.body.state === 'online'),
    );
    await ask('dev-a', 'im.send', {
      account: a.account,
      to: 'bob@example.test',
      body: 'after restart',
      clientId: 'bus-2',
    });
    await eventually('message after restart', () =>
      evB.some((e) => e.name === 'im.message' && e.body.body === 'after restart'),
    );

    await assert.rejects(
      ask('dev-b', 'im.login', { jid: 'bob@example.test', password: 'wrong', ...server }),
      (err: unknown) => err instanceof GatewayError && err.code === 'im.auth_failed',
    );
    await assert.rejects(
      ask('dev-b', 'im.send', { account: b.account, to: 'not a jid', body: 'x', clientId: 'c' }),
      (err: unknown) => err instanceof GatewayError && err.code === 'request.bad_input' && err.field === 'to',
    );
  });

  test('im.message names the one before it; one the bus did not take is tried again, in order', async () => {
    let down = false;
    let refused = 0;
    const evD = edge('dev-d', () => {
      if (down) refused++;
      return down;
    });
    edge('dev-c');
    const server = { host: prosody.host, port: prosody.c2sPort };
    const c = await ask('dev-c', 'im.login', { jid: 'alice@example.test', password: 'pa', ...server });
    const d = await ask('dev-d', 'im.login', { jid: 'bob@example.test', password: 'pb', ...server });
    const send = (body: string) =>
      ask('dev-c', 'im.send', { account: c.account, to: 'bob@example.test', body, clientId: `prev-${body}` });
    const messages = () => evD.filter((e) => e.name === 'im.message').map((e) => e.body);

    await send('one');
    await eventually('one', () => messages().length === 1);
    assert.equal(messages()[0].prev, null, 'a new session cannot know what came before');
    down = true;
    await send('two');
    await eventually('a push refused', () => refused > 0);
    await send('three');
    down = false;
    await eventually('two and three', () => messages().length === 3);
    const [one, two, three] = messages();
    assert.deepEqual([one.body, two.body, three.body], ['one', 'two', 'three']);
    assert.equal(two.prev, one.stanzaId);
    assert.equal(three.prev, two.stanzaId);
    assert.equal(three.account, d.account);
  });
});
