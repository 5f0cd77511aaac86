/**
 * Per-device records of the edge, through a recording Recorder: connect,
 * disconnect (with the reason code), auth_failure, resume, carrier_switch,
 * takeover, and usage (logins, logouts, bytes per session written when a
 * carrier closes or once a minute, never per frame).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Kind } from '../../device-protocol/messages.ts';
import type { DeviceLogRecord, Recorder, UsageDelta } from '../../server/records/types.ts';
import { eventually } from '../../testing/index.ts';
import { ENGINES, WAIT, startTestEdge } from './edge-client.ts';

const IMEI_A = '356938035643809';
const IMEI_B = '490154203237518';

type Logged = Omit<DeviceLogRecord, 'at' | 'node'> & { at?: number };
type Used = Omit<UsageDelta, 'at'> & { at?: number };

class RecordingRecorder implements Recorder {
  readonly logs: Logged[] = [];
  readonly usages: Used[] = [];
  log(record: Logged): void {
    this.logs.push(record);
  }
  usage(delta: Used): void {
    this.usages.push(delta);
  }
  async flush(): Promise<void> {}
  async close(): Promise<void> {}
  kinds(imei: string): string[] {
    return this.logs.filter((r) => r.imei === imei).map((r) => r.kind);
  }
  bytes(imei: string): { bytesIn: number; bytesOut: number; records: number } {
    const list = this.usages.filter((u) => u.imei === imei && (u.bytesIn || u.bytesOut));
    return {
      bytesIn: list.reduce((n, u) => n + (u.bytesIn ?? 0), 0),
      bytesOut: list.reduce((n, u) => n + (u.bytesOut ?? 0), 0),
      records: list.length,
    };
  }
  sum(imei: string, key: 'logins' | 'logouts'): number {
    return this.usages.filter((u) => u.imei === imei).reduce((n, u) => n + (u[key] ?? 0), 0);
  }
}

for (const engine of ENGINES) {
  describe(`edge records (${engine})`, () => {
    test('connect, disconnect, auth_failure, resume, carrier_switch, takeover, logins/logouts and bytes', async (t) => {
      const recorder = new RecordingRecorder();
      let clock = 1_800_000_000_000;
      const e = await startTestEdge(t, { engine, recorder, now: () => clock, heartbeatMs: 60_000 });
      e.directory.add(IMEI_A, 'secret-a');
      e.directory.add(IMEI_B, 'secret-b');

      const ws = await e.client('ws');
      const w = await ws.hello(IMEI_A, { secret: 'secret-a' });
      assert.deepEqual(recorder.kinds(IMEI_A), ['connect']);
      assert.deepEqual(recorder.logs[0]?.detail, { carrier: 'ws' });
      assert.equal(recorder.sum(IMEI_A, 'logins'), 1);

      // Frames go both ways: no usage record per frame.
      for (let i = 0; i < 20; i++) await ws.send({ kind: Kind.Ping, nonce: i });
      await e.push(IMEI_A, 'one');
      await ws.nextOf(Kind.Event);
      await ws.send({ kind: Kind.Request, id: 'r1', method: 'echo', body: 'hello' });
      await ws.nextOf(Kind.Response);
      assert.equal(recorder.bytes(IMEI_A).records, 0, 'bytes are not written per frame');

      // A minute later the sweep writes the bytes of the open session.
      clock += 61_000;
      await eventually('the minutely usage flush', () => recorder.bytes(IMEI_A).records === 1, WAIT);
      const minutely = recorder.bytes(IMEI_A);
      assert.ok(minutely.bytesIn > 20 && minutely.bytesOut > 20, JSON.stringify(minutely));

      // The carrier drops: disconnect with its reason, and the bytes since the flush.
      await ws.send({ kind: Kind.Ping, nonce: 99 });
      await ws.nextOf(Kind.Pong);
      ws.kill();
      await eventually('the disconnect record', () => recorder.kinds(IMEI_A).includes('disconnect'), WAIT);
      const disconnect = recorder.logs.find((r) => r.kind === 'disconnect')!;
      assert.equal(disconnect.code, 'carrier.closed');
      assert.deepEqual(disconnect.detail, { carrier: 'ws' });
      assert.equal(recorder.bytes(IMEI_A).records, 2);

      // Resumed over long-poll: resume and carrier_switch ws → poll.
      const poll = await e.client('poll');
      await poll.resume(w, 1);
      assert.deepEqual(recorder.kinds(IMEI_A), ['connect', 'disconnect', 'resume', 'carrier_switch']);
      const sw = recorder.logs.find((r) => r.kind === 'carrier_switch')!;
      assert.deepEqual(sw.detail, { from: 'ws', to: 'poll' });

      // A wrong secret: auth_failure with its code (for that device only).
      const bad = await e.client('ws');
      await bad.helloAnswer(IMEI_B, { secret: 'wrong' });
      assert.deepEqual(recorder.kinds(IMEI_B), ['auth_failure']);
      assert.equal(recorder.logs.find((r) => r.imei === IMEI_B)!.code, 'auth.bad_secret');

      // A new Hello takes over: disconnect of the old carrier, takeover and logout of the old session, a new login.
      const ws2 = await e.client('ws');
      await ws2.hello(IMEI_A, { secret: 'secret-a' });
      assert.deepEqual(recorder.kinds(IMEI_A).slice(4), ['disconnect', 'takeover', 'logout', 'connect']);
      assert.equal(recorder.logs.find((r) => r.kind === 'logout')!.code, 'session.replaced');
      assert.equal(recorder.logs.filter((r) => r.kind === 'disconnect').at(-1)!.code, 'session.replaced');
      assert.equal(recorder.logs.find((r) => r.kind === 'takeover')!.code, 'session.replaced');
      assert.equal(recorder.sum(IMEI_A, 'logouts'), 1);
      assert.equal(recorder.sum(IMEI_A, 'logins'), 2);
      for (const u of recorder.usages) assert.equal(u.service, 'session');
      for (const u of recorder.usages) if (u.imei === IMEI_A) assert.equal(u.operator, 'test');
    });
  });
}
