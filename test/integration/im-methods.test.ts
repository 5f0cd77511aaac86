// The im.* MethodDefinitions against a real Prosody, called directly with a
// real MethodContext whose push records what a device would receive.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { client, type XmppClient, xml } from '@xmpp/client';
import pino from 'pino';
import type { GatewayError } from '../../device-protocol/errors.ts';
import type { Value } from '../../device-protocol/messages.ts';
import type { Bus } from '../../server/bus/bus.ts';
import type { DeviceLogRecord, Recorder, UsageDelta } from '../../server/records/types.ts';
import { type ImService, openImService } from '../../server/transport/im/index.ts';
import { parseMethodInput } from '../../server/transport/index.ts';
import type { MethodContext, MethodDefinition } from '../../server/transport/types.ts';
import { eventually } from '../../testing/index.ts';
import { freePort, type ProsodyServer, startProsody } from '../harness/prosody.ts';

const logger = pino({ level: 'silent' });
const KEY = Buffer.alloc(32, 7).toString('base64');

const logs: Partial<DeviceLogRecord>[] = [];
const usage: Partial<UsageDelta>[] = [];
const recorder: Recorder = {
  log: (r) => logs.push(r),
  usage: (u) => usage.push(u),
  async flush() {},
  async close() {},
};
const sum = (imei: string, field: keyof UsageDelta) =>
  usage.filter((u) => u.imei === imei).reduce((n, u) => n + ((u[field] as number | undefined) ?? 0), 0);

interface Pushed {
  name: string;
  body: any;
}

class FakeDevice {
  readonly pushed: Pushed[] = [];
  #seq = 0;
  #req = 0;
  constructor(
    readonly deviceId: string,
    readonly service: ImService,
  ) {}

  ctx(): MethodContext {
    return {
      deviceId: this.deviceId,
      sessionId: `s-${this.deviceId}`,
      requestId: String(++this.#req),
      bus: {} as Bus,
      logger,
      dataDir: '',
      now: Date.now,
      push: async (name: string, body?: Value) => {
        this.pushed.push({ name, body });
        return ++this.#seq;
      },
    };
  }

  async call(method: string, body: unknown): Promise<any> {
    const def = this.service.methods.find((m) => m.method === method) as MethodDefinition<unknown>;
    assert.ok(def, `method ${method}`);
    return def.handle(this.ctx(), parseMethodInput(def, body));
  }

  events(name: string): any[] {
    return this.pushed.filter((p) => p.name === name).map((p) => p.body);
  }
}

describe('im.* methods against Prosody', { timeout: 180_000 }, () => {
  let prosody: ProsodyServer;
  let dataDir: string;
  let service: ImService;

  const openService = () =>
    openImService({
      dataDir,
      logger,
      credentialsKey: KEY,
      presenceWindowMs: 50,
      recorder,
      trafficFlushMs: 50,
      session: { backoff: { initialMs: 50, maxMs: 500 }, connectTimeoutMs: 10_000 },
    });

  const login = (device: FakeDevice, user: string, password: string, extra: object = {}) =>
    device.call('im.login', {
      jid: prosody.jid(user),
      password,
      host: prosody.host,
      port: prosody.c2sPort,
      ...extra,
    });

  before(async () => {
    prosody = await startProsody({
      domain: 'example.test',
      users: [
        { user: 'alice', password: 'alice-secret-pw' },
        { user: 'bob', password: 'bob-secret-pw' },
        { user: 'carol', password: 'carol-secret-pw' },
      ],
    });
    dataDir = mkdtempSync(join(tmpdir(), 'mmgw-im-'));
    service = openService();
  });

  after(async () => {
    await service?.close();
    await prosody?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  test('validation names the field', () => {
    const def = service.methods.find((m) => m.method === 'im.login')!;
    assert.throws(() => parseMethodInput(def, { jid: 'no-at-sign', password: 'x' }), {
      code: 'request.bad_input',
      field: 'jid',
    });
    assert.throws(() => parseMethodInput(def, { jid: 'a@b', password: '' }), {
      code: 'request.bad_input',
      field: 'password',
    });
    assert.throws(() => parseMethodInput(def, { jid: 'a@b', password: 'x', host: 'h', port: 0 }), {
      field: 'port',
    });
    const send = service.methods.find((m) => m.method === 'im.send')!;
    const ok = { account: 'x0123456789abcdef', to: 'b@example.test', body: 'hi', clientId: 'c-1' };
    assert.deepEqual(parseMethodInput(send, ok), ok);
    assert.throws(() => parseMethodInput(send, { ...ok, body: 'a\u0001b' }), { field: 'body' });
    assert.throws(() => parseMethodInput(send, { ...ok, body: 'x'.repeat(70_000) }), { field: 'body' });
    assert.throws(() => parseMethodInput(send, { ...ok, clientId: 'has space' }), { field: 'clientId' });
    assert.throws(() => parseMethodInput(send, { ...ok, account: '../etc' }), { field: 'account' });
  });

  test('im.login: online, stored with the password sealed; errors have distinct codes', async () => {
    const device = new FakeDevice('dev-login', service);
    const result = await login(device, 'alice', 'alice-secret-pw');
    assert.equal(result.jid, 'alice@example.test');
    assert.equal(result.state, 'online');
    assert.match(result.account, /^x[0-9a-f]{16}$/);
    // Pushes go out through a per-device chain, after the answer at the latest.
    await eventually('state pushes', () => device.events('im.state').length >= 2);
    const states = device.events('im.state').map((e) => e.state);
    assert.deepEqual(states, ['connecting', 'online']);
    const listed = await device.call('im.accounts', {});
    assert.deepEqual(listed.accounts, [
      { account: result.account, jid: 'alice@example.test', state: 'online' },
    ]);
    // The same JID again is the same account.
    const again = await login(device, 'alice', 'alice-secret-pw');
    assert.equal(again.account, result.account);
    // Nothing on disk holds the password in clear.
    const dir = join(dataDir, 'transport');
    for (const f of readdirSync(dir)) {
      assert.ok(!readFileSync(join(dir, f)).includes('alice-secret-pw'), `${f} leaks the password`);
    }

    const other = new FakeDevice('dev-login-bad', service);
    await assert.rejects(login(other, 'bob', 'wrong'), (e: GatewayError) => e.code === 'im.auth_failed');
    await assert.rejects(login(other, 'bob', 'bob-secret-pw', { port: await freePort() }), {
      code: 'im.unreachable',
    });
    assert.deepEqual((await other.call('im.accounts', {})).accounts, [], 'failed logins are not stored');
    // Another device cannot use the account.
    await assert.rejects(other.call('im.roster', { account: result.account }), { code: 'im.not_found' });
  });

  test('A to B through two accounts; contact add, subscription, roster and presence', async () => {
    const a = new FakeDevice('dev-a', service);
    const b = new FakeDevice('dev-b', service);
    const accA = (await login(a, 'alice', 'alice-secret-pw')).account;
    const accB = (await login(b, 'bob', 'bob-secret-pw')).account;

    const sent = await a.call('im.send', {
      account: accA,
      to: 'bob@example.test',
      body: 'hi bob',
      clientId: 'c-1',
    });
    assert.deepEqual(sent, { account: accA, clientId: 'c-1' });
    await eventually('bob gets im.message', () => b.events('im.message').length >= 1);
    const [m] = b.events('im.message');
    assert.equal(m.account, accB);
    assert.equal(m.from, 'alice@example.test');
    assert.equal(m.body, 'hi bob');
    assert.equal(m.originId, 'c-1');
    assert.equal(typeof m.stanzaId, 'string');
    assert.equal(typeof m.at, 'string');

    // Alice asks Bob for a subscription; Bob sees the request and accepts.
    await a.call('im.contact.add', {
      account: accA,
      jid: 'bob@example.test',
      name: 'Bob',
      groups: ['Friends'],
    });
    await eventually('request', () =>
      b.events('im.subscription').some((s) => s.from === 'alice@example.test'),
    );
    assert.equal(b.events('im.subscription')[0].kind, 'subscribe');
    await b.call('im.subscription.answer', { account: accB, jid: 'alice@example.test', accept: true });
    await eventually('alice sees bob online', () =>
      a.events('im.presence').some((p) => p.items.some((i: any) => i.jid === 'bob@example.test')),
    );
    const roster = await a.call('im.roster', { account: accA });
    const bob = roster.items.find((i: any) => i.jid === 'bob@example.test');
    assert.equal(bob.name, 'Bob');
    assert.deepEqual(bob.groups, ['Friends']);
    assert.ok(['to', 'both'].includes(bob.subscription), `subscription ${bob.subscription}`);
    assert.equal(bob.presence, 'available');
    assert.ok(a.events('im.roster.changed').length > 0, 'roster pushes reach the device');

    // Bob goes away with a status: alice gets a presence delta.
    await b.call('im.presence', { account: accB, show: 'away', status: 'at lunch' });
    await eventually('alice sees bob away', () =>
      a.events('im.presence').some((p) => p.items.some((i: any) => i.show === 'away')),
    );
    const away = a
      .events('im.presence')
      .flatMap((p) => p.items)
      .find((i: any) => i.show === 'away');
    assert.deepEqual(away, { jid: 'bob@example.test', show: 'away', status: 'at lunch' });

    // Usage counters and log records, with nothing secret in them.
    await eventually('byte counters', () => sum('dev-a', 'bytesOut') > 0 && sum('dev-b', 'bytesIn') > 0);
    assert.ok(sum('dev-a', 'logins') >= 1);
    assert.ok(sum('dev-a', 'messagesOut') >= 1);
    assert.ok(sum('dev-b', 'messagesIn') >= 1);
    assert.ok(logs.some((l) => l.imei === 'dev-a' && l.kind === 'backend_login' && l.service === 'im'));
    // Messages are in the device logs both ways, as mail's are.
    assert.ok(logs.some((l) => l.imei === 'dev-a' && l.kind === 'message_out' && l.service === 'im'));
    assert.ok(logs.some((l) => l.imei === 'dev-b' && l.kind === 'message_in' && l.service === 'im'));
    assert.ok(logs.some((l) => l.imei === 'dev-login-bad' && l.code === 'im.auth_failed'));
    const recorded = JSON.stringify({ logs, usage });
    assert.ok(
      !recorded.includes('secret-pw') && !recorded.includes('hi bob'),
      'no passwords or bodies in records',
    );

    await a.call('im.contact.remove', { account: accA, jid: 'bob@example.test' });
    await eventually(
      'bob removed from the roster',
      () => !(a.service.deps.sessions.get(accA)?.roster() ?? []).some((i) => i.jid === 'bob@example.test'),
    );
  });

  test('delivery receipts and typing notifications both ways', async () => {
    const a = new FakeDevice('dev-a', service);
    const b = new FakeDevice('dev-b', service);
    const accA = (await login(a, 'alice', 'alice-secret-pw')).account;
    const accB = (await login(b, 'bob', 'bob-secret-pw')).account;
    const clientId = `rcpt-${Date.now()}`;
    await a.call('im.send', { account: accA, to: 'bob@example.test', body: 'did you get this?', clientId });
    // Bob's device took the message, so the gateway confirms delivery to alice.
    await eventually('receipt', () => a.events('im.receipt').some((r) => r.id === clientId));
    assert.deepEqual(
      a.events('im.receipt').find((r) => r.id === clientId),
      { account: accA, from: 'bob@example.test', id: clientId },
    );
    await b.call('im.typing', { account: accB, to: 'alice@example.test', state: 'composing' });
    await eventually('typing', () => a.events('im.typing').length > 0);
    assert.deepEqual(a.events('im.typing')[0], {
      account: accA,
      from: 'bob@example.test',
      state: 'composing',
    });
    const typing = service.methods.find((m) => m.method === 'im.typing')!;
    assert.throws(() => parseMethodInput(typing, { account: accA, to: 'a@b', state: 'shouting' }), {
      field: 'state',
    });
  });

  test('hostile contact: huge body is cut, a presence flood is coalesced, the session survives', async () => {
    const b = new FakeDevice('dev-hostile', service);
    const accB = (await login(b, 'bob', 'bob-secret-pw')).account;
    const carol: XmppClient = client({
      service: `xmpp://${prosody.host}:${prosody.c2sPort}`,
      domain: prosody.domain,
      username: 'carol',
      password: 'carol-secret-pw',
      resource: 'hostile',
    });
    carol.reconnect.stop();
    carol.on('error', () => {});
    await carol.start();
    try {
      await carol.send(xml('presence', {}));
      const huge = 'x'.repeat(150_000);
      await carol.send(xml('message', { type: 'chat', to: 'bob@example.test' }, xml('body', {}, huge)));
      await eventually('huge message', () =>
        b.events('im.message').some((m) => m.from === 'carol@example.test'),
      );
      const cut = b.events('im.message').find((m) => m.from === 'carol@example.test');
      assert.equal(cut.truncated, true);
      assert.equal(cut.body.length, 65_536);

      // 300 directed presence changes in a burst: the device gets the last state, in few pushes.
      const flood = 300;
      for (let i = 0; i < flood; i++) {
        await carol.send(
          xml(
            'presence',
            { to: 'bob@example.test' },
            xml('show', {}, i % 2 ? 'away' : 'dnd'),
            xml('status', {}, `s${i}`),
          ),
        );
      }
      const final = `s${flood - 1}`;
      await eventually('final presence', () =>
        b.events('im.presence').some((p) => p.items.some((i: any) => i.status === final)),
      );
      const carolItems = b
        .events('im.presence')
        .flatMap((p) => p.items)
        .filter((i: any) => i.jid === 'carol@example.test');
      assert.deepEqual(carolItems.at(-1), { jid: 'carol@example.test', show: 'away', status: final });
      assert.ok(carolItems.length < flood / 2, `${carolItems.length} presence items for ${flood} stanzas`);

      // Forgeries from a contact: a roster push and an archive result sent straight to bob's stream.
      const session0 = service.deps.sessions.get(accB)!;
      const full = session0.boundJid!;
      const pushReply = await carol.iqCaller
        .request(
          xml(
            'iq',
            { type: 'set', to: full },
            xml(
              'query',
              { xmlns: 'jabber:iq:roster' },
              xml('item', { jid: 'evil@example.test', subscription: 'both' }),
            ),
          ),
          10_000,
        )
        .then(
          () => 'accepted',
          (err) => String(err.condition ?? err),
        );
      assert.equal(pushReply, 'service-unavailable');
      assert.ok(!session0.roster().some((i) => i.jid === 'evil@example.test'));
      await carol.send(
        xml(
          'message',
          { to: full },
          xml(
            'result',
            { xmlns: 'urn:xmpp:mam:2', queryid: 'x', id: 'forged' },
            xml(
              'forwarded',
              { xmlns: 'urn:xmpp:forward:0' },
              xml(
                'message',
                { from: 'bob@example.test', to: 'x@example.test' },
                xml('body', {}, 'forged archive'),
              ),
            ),
          ),
        ),
      );

      // Still in business.
      const session = service.deps.sessions.get(accB)!;
      assert.equal(session.state, 'online');
      await carol.send(
        xml('message', { type: 'chat', to: 'bob@example.test' }, xml('body', {}, 'still there?')),
      );
      await eventually('after the flood', () =>
        b.events('im.message').some((m) => m.body === 'still there?'),
      );
      assert.ok(!b.events('im.message').some((m) => m.body === 'forged archive'));
    } finally {
      await carol.stop().catch(() => {});
    }
  });

  test('im.catchup returns the messages after the cursor, once, in order; a restarted node restores accounts', async () => {
    const a = new FakeDevice('dev-a', service);
    const b = new FakeDevice('dev-b', service);
    const accA = (await login(a, 'alice', 'alice-secret-pw')).account;
    const accB = (await login(b, 'bob', 'bob-secret-pw')).account;
    const mark = `cu-${Date.now()}`;
    await a.call('im.send', {
      account: accA,
      to: 'bob@example.test',
      body: `${mark} 0`,
      clientId: `${mark}-0`,
    });
    await eventually('first', () => b.events('im.message').some((m) => m.body === `${mark} 0`));
    const cursor = b.events('im.message').find((m) => m.body === `${mark} 0`).stanzaId;
    for (let i = 1; i <= 3; i++) {
      await a.call('im.send', {
        account: accA,
        to: 'bob@example.test',
        body: `${mark} ${i}`,
        clientId: `${mark}-${i}`,
      });
    }

    // The transport node restarts: a new service on the same data directory.
    await service.close();
    service = openService();
    const b2 = new FakeDevice('dev-b', service);
    const page = await b2.call('im.catchup', { account: accB, after: cursor });
    assert.deepEqual(
      page.messages.map((m: any) => m.body),
      [1, 2, 3].map((i) => `${mark} ${i}`),
    );
    assert.equal(page.complete, true);
    // `last` is the archive's last id, which may be a body-less stanza (a receipt) the page leaves out.
    assert.equal(typeof page.last, 'string');
    const rest = await b2.call('im.catchup', { account: accB, after: page.last });
    assert.ok(!rest.messages.some((m: any) => m.body.startsWith(mark)), 'nothing twice');
    assert.ok(page.messages.every((m: any) => m.direction === 'in' && m.from === 'alice@example.test'));
    await assert.rejects(b2.call('im.catchup', { account: accB, after: 'not-an-archive-id' }), {
      code: 'im.bad_cursor',
    });
    // restoreDevice brings the device's accounts back without im.login.
    const a2 = new FakeDevice('dev-a', service);
    await service.restoreDevice('dev-a', a2.ctx().push);
    await eventually('alice restored', () => service.deps.sessions.get(accA)?.state === 'online');
  });
});
