import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { encodeBatch, encodeFrame } from '../../device-protocol/codec.ts';
import { type Frame, Kind } from '../../device-protocol/messages.ts';
import { WireTrace } from './wire-trace.ts';

const batch = (...frames: Frame[]) => encodeBatch(frames.map((f) => encodeFrame(f)));

describe('wire trace of a long-poll handset', () => {
  test('notes when a request went out and which frame answered it, and passes the answer on unchanged', async () => {
    const answers = [batch(), batch({ kind: Kind.Response, seq: 7, id: 'd1.1', body: 'ok' })];
    const trace = new WireTrace(async () => new Response(answers.shift() as BodyInit));
    const res = await trace.fetch('http://gw/v1/poll', {
      method: 'POST',
      body: batch({ kind: Kind.Request, id: 'd1.1', method: 'sys.echo' }) as BodyInit,
    });
    assert.equal((await res.arrayBuffer()).byteLength, 0);
    const got = await trace.fetch('http://gw/v1/poll?wait=25000&ack=6', { method: 'GET' });
    assert.ok((await got.arrayBuffer()).byteLength > 0);
    const evidence = trace.evidence('d1.1');
    assert.match(evidence, /sent [\d.]+s POST/);
    assert.match(evidence, /answer [\d.]+s Response seq 7 in GET\?wait=25000&ack=6 → 200/);
    assert.match(evidence, /GET\?wait=25000&ack=6 → 200 at [\d.]+s: 1 frames seq 7…7/);
  });

  test('a request never seen on the wire says so', () => {
    const trace = new WireTrace(async () => new Response(null));
    assert.match(trace.evidence('nope'), /never sent on the wire\n\s+no answer frame on the wire/);
  });
});
