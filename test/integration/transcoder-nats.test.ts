/**
 * The source travels inside the request, so over NATS the server's max_payload
 * bounds it (1 MiB unless configured; transcoder.maxSourceBytes is 25 MB).
 * Real nats-server, role and client on separate connections.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import sharp from 'sharp';
import { GatewayError } from '../../device-protocol/errors.ts';
import type { Bus } from '../../server/bus/bus.ts';
import { connectNatsBus } from '../../server/bus/nats.ts';
import { startNatsServer } from '../harness/nats.ts';
import { DEFAULT_LIMITS } from '../../transcoder/limits.ts';
import { TranscoderClient } from '../../transcoder/protocol.ts';
import { startTranscoder } from '../../transcoder/role.ts';
import { photoJpeg } from '../../testing/index.ts';

const screen = { width: 320, height: 240, format: 'jpeg', maxBytes: 30_000 } as const;

async function setup(t: TestContext, maxPayloadBytes?: number): Promise<TranscoderClient> {
  const nats = await startNatsServer(maxPayloadBytes === undefined ? {} : { maxPayloadBytes });
  const dataDir = mkdtempSync(join(tmpdir(), 'mmgw-transcoder-nats-'));
  const buses: Bus[] = [];
  t.after(async () => {
    for (const bus of buses) await bus.close();
    await nats.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });
  const roleBus = await connectNatsBus({ servers: nats.url, name: 'transcoder' });
  buses.push(roleBus);
  const role = await startTranscoder({ bus: roleBus, dataDir });
  t.after(() => role.stop());
  const clientBus = await connectNatsBus({ servers: nats.url, name: 'transport' });
  buses.push(clientBus);
  await roleBus.flush();
  return new TranscoderClient(clientBus, { timeoutMs: 60_000 });
}

/** An incompressible PNG of about `bytes` bytes (stored, not deflated): a big source that is a real image. */
async function noisePng(bytes: number): Promise<Buffer> {
  const side = Math.floor(Math.sqrt(bytes / 3));
  return sharp(randomBytes(side * side * 3), { raw: { width: side, height: side, channels: 3 } })
    .png({ compressionLevel: 0 })
    .toBuffer();
}

describe('transcoder role over NATS: source size against max_payload', () => {
  test('with the server default (1 MiB), a larger source is refused on the bus at once, typed and not retryable; the role keeps serving', async (t) => {
    const client = await setup(t);
    const big = await noisePng(2 * 1024 * 1024);
    await assert.rejects(client.image(big, screen), (err: unknown) => {
      assert.ok(err instanceof GatewayError, String(err));
      assert.equal(err.code, 'bus.bad_message');
      assert.equal(err.retryable, false);
      assert.match(err.message, /max_payload/);
      return true;
    });
    const small = await client.image(await photoJpeg(800, 600), screen);
    assert.equal(small.format, 'jpeg');
    assert.ok(small.bytes.byteLength <= screen.maxBytes);
  });

  test('with max_payload raised to 32 MiB, a source near the 25 MB limit is transcoded over NATS', async (t) => {
    const client = await setup(t, 32 * 1024 * 1024);
    const source = await noisePng(DEFAULT_LIMITS.maxSourceBytes - 1024 * 1024);
    assert.ok(source.byteLength > 20 * 1024 * 1024 && source.byteLength <= DEFAULT_LIMITS.maxSourceBytes);
    const reply = await client.image(source, screen);
    assert.equal(reply.inputBytes, source.byteLength);
    assert.equal(reply.inputFormat, 'png');
    assert.ok(reply.width <= 320 && reply.height <= 240);
    assert.ok(reply.bytes.byteLength <= screen.maxBytes);
  });
});
