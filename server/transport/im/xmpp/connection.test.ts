import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { type XmlElement, xml } from '@xmpp/client';
import { GatewayError } from '../../../../device-protocol/errors.ts';
import { deferred } from './async.ts';
import { Connection } from './connection.ts';

/** Plays @xmpp/client's part: `outcome` decides what happens once the stream is opened. */
class Entity extends EventEmitter {
  status = 'offline';
  options = { service: 'xmpp://127.0.0.1:5222' };
  streamManagement = new EventEmitter();
  calls: string[] = [];
  outcome: 'online' | 'resumed' | 'error' | 'disconnect' | 'nothing' = 'online';
  disconnectResult: Promise<unknown> = Promise.resolve();
  iqAnswer: () => Promise<XmlElement | undefined> = async () => xml('iq', { type: 'result' });
  iqCaller = {
    get: (el: XmlElement, _to?: string, timeout?: number) => {
      this.calls.push(`iq get ${el.name} ${timeout}`);
      return this.iqAnswer();
    },
    set: (el: XmlElement, _to?: string, timeout?: number) => {
      this.calls.push(`iq set ${el.name} ${timeout}`);
      return this.iqAnswer();
    },
  };
  /** Services whose TCP connect fails (the library emits the socket's error, then rejects). */
  refusing = new Set<string>();
  async connect(service?: string): Promise<void> {
    this.calls.push(`connect ${service}`);
    if (service !== undefined && this.refusing.has(service)) {
      const err = Object.assign(new Error('refused'), { code: 'ECONNREFUSED' });
      this.emit('error', err);
      throw err;
    }
    this.status = 'connect';
  }
  async open(opts: { domain?: string; lang?: string }): Promise<unknown> {
    this.calls.push(`open ${opts.domain} ${opts.lang}`);
    setImmediate(() => {
      if (this.outcome === 'online') this.emit('online');
      else if (this.outcome === 'resumed') this.streamManagement.emit('resumed');
      else if (this.outcome === 'error')
        this.emit('error', Object.assign(new Error('x'), { name: 'SASLError' }));
      else if (this.outcome === 'disconnect') this.emit('disconnect');
    });
    return undefined;
  }
  disconnect(): Promise<unknown> {
    this.calls.push('disconnect');
    return this.disconnectResult;
  }
}

function setup(connectTimeoutMs = 10_000, destinations?: string[]) {
  const entity = new Entity();
  // The session's own logger: the library's socket errors have a listener.
  if (destinations) entity.on('error', () => {});
  const connection = new Connection({
    entity,
    domain: 'example.test',
    connectTimeoutMs,
    ...(destinations
      ? {
          destinations: async function* () {
            for (const d of destinations) {
              entity.calls.push(`checked ${d}`);
              yield { service: d };
            }
          },
        }
      : {}),
  });
  return { entity, connection };
}

test('a fresh session runs its setup before it counts as online; a resumed one does not', async () => {
  const { entity, connection } = setup();
  let fresh = 0;
  assert.equal(await connection.open(async () => void fresh++), false);
  assert.deepEqual(entity.calls, ['connect xmpp://127.0.0.1:5222', 'open example.test en']);
  entity.outcome = 'resumed';
  assert.equal(await connection.open(async () => void fresh++), true);
  assert.equal(fresh, 1);
  assert.equal(entity.listenerCount('online') + entity.listenerCount('error'), 0, 'no listener left behind');
  assert.equal(entity.streamManagement.listenerCount('resumed'), 0);
});

test('an error or a lost connection fails the attempt', async () => {
  const { entity, connection } = setup();
  entity.outcome = 'error';
  await assert.rejects(
    connection.open(async () => {}),
    { name: 'SASLError' },
  );
  entity.outcome = 'disconnect';
  await assert.rejects(
    connection.open(async () => {}),
    (err: unknown) => err instanceof GatewayError && err.code === 'im.unreachable' && err.retryable,
  );
});

test('the attempt, fresh setup included, is held to the connect timeout', async () => {
  const { entity, connection } = setup(20);
  entity.outcome = 'nothing';
  await assert.rejects(
    connection.open(async () => {}),
    /connecting to the XMPP server took longer than 20 ms/,
  );
  entity.outcome = 'online';
  const never = deferred<void>();
  await assert.rejects(
    connection.open(() => never.promise),
    /took longer than 20 ms/,
  );
});

test('an answer still awaited when the stream goes fails at once', async () => {
  const { entity, connection } = setup();
  await connection.open(async () => {});
  const pending = deferred<string>();
  const waiting = connection.unlessDisconnected(pending.promise);
  entity.emit('disconnect');
  await assert.rejects(waiting, /the XMPP connection was lost/);
  await connection.disconnected();
  // The next attempt has a stream of its own.
  await connection.open(async () => {});
  assert.equal(await connection.unlessDisconnected(Promise.resolve('ok')), 'ok');
});

test('iq goes to the caller with its timeout and maps its failure to an im.* error', async () => {
  const { entity, connection } = setup();
  await connection.iq('get', xml('query'));
  await connection.iq('set', xml('enable'), 5);
  assert.deepEqual(entity.calls, ['iq get query 30000', 'iq set enable 5']);
  entity.iqAnswer = async () => {
    throw Object.assign(new Error('x'), { name: 'StanzaError', condition: 'forbidden' });
  };
  await assert.rejects(
    connection.iq('get', xml('query')),
    (err: unknown) => err instanceof GatewayError && err.code === 'im.server_error',
  );
});

test('drop closes what is still open, and a close that fails is no error', async () => {
  const { entity, connection } = setup();
  entity.status = 'disconnect';
  await connection.drop();
  assert.deepEqual(entity.calls, []);
  entity.status = 'open';
  entity.disconnectResult = Promise.reject(new Error('broken'));
  await connection.drop();
  assert.deepEqual(entity.calls, ['disconnect']);
});

test('with destinations, each is tried in order until one connects; a failed one is closed first', async () => {
  const { entity, connection } = setup(10_000, [
    'xmpp://203.0.114.1:5222',
    'xmpp://203.0.114.2:5222',
    'xmpp://203.0.114.3:5222',
  ]);
  entity.refusing.add('xmpp://203.0.114.1:5222');
  // The refused socket's error came while connecting: it must not fail the stream that follows.
  assert.equal(await connection.open(async () => {}), false);
  assert.deepEqual(entity.calls, [
    'checked xmpp://203.0.114.1:5222',
    'connect xmpp://203.0.114.1:5222',
    'disconnect',
    'checked xmpp://203.0.114.2:5222',
    'connect xmpp://203.0.114.2:5222',
    'open example.test en',
  ]);
});

test('with destinations that all fail, the attempt fails with the last error; with none, with the refusal', async () => {
  const { entity, connection } = setup(10_000, ['xmpp://203.0.114.1:5222']);
  entity.refusing.add('xmpp://203.0.114.1:5222');
  await assert.rejects(
    connection.open(async () => {}),
    { code: 'ECONNREFUSED' },
  );
  const entity2 = new Entity();
  const refusing = new Connection({
    entity: entity2,
    domain: 'example.test',
    connectTimeoutMs: 10_000,
    // biome-ignore lint/correctness/useYield: a policy that refuses before anything is yielded
    destinations: async function* () {
      throw new GatewayError('policy.destination_not_allowed');
    },
  });
  await assert.rejects(
    refusing.open(async () => {}),
    (err: unknown) => err instanceof GatewayError && err.code === 'policy.destination_not_allowed',
  );
  assert.deepEqual(entity2.calls, [], 'nothing connected');
});

test('an attempt whose open() fails without an event leaves no listener for the next one', async () => {
  const { entity, connection } = setup();
  entity.on('error', () => {});
  entity.open = async () => {
    throw Object.assign(new Error('timeout'), { name: 'TimeoutError' });
  };
  await assert.rejects(
    connection.open(async () => {}),
    { name: 'TimeoutError' },
  );
  assert.equal(entity.listenerCount('online'), 0);
  assert.equal(entity.listenerCount('error'), 1, "only the test's own");
});

test('a server that hangs up before its stream header fails the attempt at once, not at a timeout', async () => {
  const { entity, connection } = setup(60_000);
  entity.open = () => {
    setImmediate(() => entity.emit('disconnect'));
    return new Promise(() => {}); // the library waits for the header until its own timeout
  };
  const started = Date.now();
  await assert.rejects(
    connection.open(async () => {}),
    /the XMPP server closed the connection/,
  );
  assert.ok(Date.now() - started < 5000);
});
