import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { GatewayError } from '../../device-protocol/errors.ts';
import { eventually } from '../../testing/index.ts';
import { InProcessBus } from './inproc.ts';
import { serveIpcBus } from './ipc.ts';

/** A child process as serveIpcBus sees it: messages in, messages out (the wire format of ipc.ts). */
class FakeChild extends EventEmitter {
  readonly sent: unknown[][] = [];
  connected = true;
  send(message: unknown): boolean {
    this.sent.push(...((message as { $mmgwBus: unknown[][] }).$mmgwBus ?? []));
    return true;
  }
  /** Operations from the child: [op, client, …]. */
  ops(...ops: unknown[][]): void {
    this.emit('message', { $mmgwBus: ops });
  }
}

test('a request the child took is answered bus.timeout (retryable) as soon as the child exits', async () => {
  const broker = new InProcessBus();
  const child = new FakeChild();
  serveIpcBus(broker, child);
  // Hello (advanced mode), then a subscription to svc.echo with sid 1.
  child.ops([0, 'c1', 'advanced'], [1, 'c1', 1, 'svc.echo', null]);
  const started = Date.now();
  const answer = broker.request('svc.echo', { hi: 1 }, { timeoutMs: 30_000 });
  // The request reached the child (Msg with a message id); the child dies before it answers.
  await eventually('the request delivered to the child', () => child.sent.some((op) => op[0] === 8));
  child.emit('exit', null, 'SIGKILL');
  await assert.rejects(
    answer,
    (err) => err instanceof GatewayError && err.code === 'bus.timeout' && err.retryable,
  );
  assert.ok(Date.now() - started < 10_000, 'not at the requester timeout');
  // Its subscription is gone with it: nobody answers any more.
  await assert.rejects(
    broker.request('svc.echo', {}, { timeoutMs: 1000 }),
    (err) => err instanceof GatewayError && err.code === 'bus.no_responders',
  );
  await broker.close();
});
