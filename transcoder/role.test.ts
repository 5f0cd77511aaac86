import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import sharp from 'sharp';
import { GatewayError } from '../device-protocol/errors.ts';
import { InProcessBus } from '../server/bus/inproc.ts';
import type { TranscoderLimits } from './limits.ts';
import { TranscoderClient, TranscoderSubjects } from './protocol.ts';
import { startTranscoder, type TranscoderRole } from './role.ts';
import { gifWithFrames, HOSTILE_SVG, photoJpeg, pngClaiming } from '../testing/index.ts';

async function setup(
  t: TestContext,
  limits: Partial<TranscoderLimits> = {},
): Promise<{ bus: InProcessBus; role: TranscoderRole; client: TranscoderClient; dataDir: string }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'mmgw-transcoder-'));
  const bus = new InProcessBus();
  const role = await startTranscoder({ bus, dataDir, limits });
  t.after(async () => {
    await role.stop();
    await bus.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  return { bus, role, client: new TranscoderClient(bus), dataDir };
}

const screen = { width: 160, height: 120, format: 'jpeg', maxBytes: 20_000 } as const;

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'ok';
  } catch (err) {
    assert.ok(err instanceof GatewayError, `expected a GatewayError, got ${String(err)}`);
    return err.code;
  }
}

describe('transcoder role over the in-process bus', () => {
  test('serves a variant; the second ask is a cache hit with the same bytes and no sharp job', async (t) => {
    const { role, client } = await setup(t);
    const photo = await photoJpeg(640, 480, { orientation: 6 });
    const first = await client.image(photo, screen);
    assert.equal(first.cached, false);
    assert.deepEqual([first.width, first.height], [90, 120]);
    assert.ok(first.bytes.byteLength <= screen.maxBytes);
    assert.equal((await sharp(first.bytes).metadata()).format, 'jpeg');
    assert.equal(role.stats().transcodes, 1);
    await role.flush();

    const second = await client.image(photo, screen);
    assert.equal(second.cached, true);
    assert.deepEqual(Buffer.from(second.bytes), Buffer.from(first.bytes));
    assert.deepEqual({ ...second, bytes: null, cached: null }, { ...first, bytes: null, cached: null });
    assert.equal(role.stats().transcodes, 1, 'sharp not called again');
    assert.equal(role.stats().cacheHits, 1);

    // Another variant of the same source is another entry.
    const webp = await client.image(photo, { ...screen, format: 'webp' });
    assert.equal(webp.cached, false);
    assert.equal(role.stats().transcodes, 2);
  });

  test("a source handed over is moved to the role (the caller's copy detached) and gives the same variant", async (t) => {
    const { role, client } = await setup(t);
    const photo = await photoJpeg(640, 480, { orientation: 6 });
    const copied = await client.image(photo, screen);
    // A fresh buffer of its own, as a fetched attachment arrives (a whole ArrayBuffer: movable).
    const fetched = Buffer.allocUnsafeSlow(photo.byteLength);
    photo.copy(fetched);
    const moved = await client.image(
      fetched,
      { ...screen, maxBytes: screen.maxBytes - 1 },
      { handOver: true },
    );
    assert.equal(fetched.byteLength, 0, "the caller's buffer was moved, not copied");
    assert.equal(moved.cached, false);
    assert.equal(role.stats().transcodes, 2);
    assert.deepEqual(Buffer.from(moved.bytes), Buffer.from(copied.bytes));
  });

  test('identical concurrent requests share one job', async (t) => {
    const { role, client } = await setup(t);
    const photo = await photoJpeg(320, 240, { seed: 4 });
    const [a, b, c] = await Promise.all([
      client.image(photo, screen),
      client.image(photo, screen),
      client.image(photo, screen),
    ]);
    assert.deepEqual(Buffer.from(a.bytes), Buffer.from(b.bytes));
    assert.deepEqual(Buffer.from(a.bytes), Buffer.from(c.bytes));
    assert.equal(role.stats().transcodes, 1);
    assert.equal(role.stats().joined, 2);
  });

  test('hostile inputs get typed errors over the bus, and the role keeps serving after each', async (t) => {
    const { bus, role, client } = await setup(t);
    const good = await photoJpeg(200, 150, { seed: 9 });
    const truncated = good.subarray(0, Math.floor(good.length / 2));
    const cases: Array<[string, Uint8Array, string]> = [
      ['zero bytes', new Uint8Array(0), 'transcode.bad_input'],
      ['truncated JPEG', truncated, 'transcode.bad_input'],
      ['PNG claiming 100000×100000', pngClaiming(100_000, 100_000), 'transcode.too_many_pixels'],
      ['SVG with external references (named .jpg)', HOSTILE_SVG, 'transcode.unsupported_format'],
      ['GIF with 2000 frames', gifWithFrames(200, 200, 2000), 'transcode.too_many_pixels'],
    ];
    let width = 100;
    for (const [name, bytes, code] of cases) {
      assert.equal(await codeOf(client.image(bytes, screen)), code, name);
      // A new width each time, so that the cache cannot answer for the transcoder.
      const ok = await client.image(good, { ...screen, width: width++ });
      assert.equal(ok.cached, false);
      assert.ok(ok.bytes.byteLength > 0, `still serving after ${name}`);
    }
    assert.equal(
      await codeOf(client.image(good, { ...screen, format: 'tiff' as 'jpeg' })),
      'request.bad_input',
    );
    assert.equal(
      await codeOf(bus.request(TranscoderSubjects.image, { source: 'not bytes', spec: screen })),
      'request.bad_input',
    );
    const failures = role.stats().failures;
    assert.equal(failures['transcode.too_many_pixels'], 2);
    assert.equal(failures['transcode.bad_input'], 2);
    assert.equal(failures.internal, undefined);
  });

  test('a full queue answers transcode.busy (retryable) instead of growing', async (t) => {
    const { role, client } = await setup(t, { maxConcurrent: 1, maxQueued: 1 });
    const photos = await Promise.all([1, 2, 3, 4].map((seed) => photoJpeg(320, 240, { seed })));
    const results = await Promise.allSettled(photos.map((p) => client.image(p, screen)));
    const served = results.filter((r) => r.status === 'fulfilled');
    const busy = results.filter(
      (r): r is PromiseRejectedResult =>
        r.status === 'rejected' && r.reason instanceof GatewayError && r.reason.code === 'transcode.busy',
    );
    assert.equal(served.length, 2, 'one running + one queued');
    assert.equal(busy.length, 2);
    assert.equal(busy[0]?.reason.retryable, true);
    assert.equal(role.stats().queue.refused, 2);
    // Busy is momentary: a retry once the queue drained is served.
    const retry = await client.image(photos[3]!, screen);
    assert.equal(retry.cached, false);
  });

  test('a malformed body or image request is refused with the field at fault', async (t) => {
    const { bus } = await setup(t);
    const refusal = async (subject: string, data: unknown) => {
      const err = await bus.request(subject, data).then(
        () => assert.fail('expected a refusal'),
        (e: unknown) => e as GatewayError,
      );
      assert.equal(err.code, 'request.bad_input');
      return { message: err.message, field: err.field };
    };
    const body = TranscoderSubjects.body;
    assert.deepEqual(await refusal(body, { html: '<p>a</p>', text: 'a' }), {
      message: 'Send exactly one of html or text.',
      field: 'html',
    });
    assert.equal((await refusal(body, {})).field, 'html');
    assert.equal((await refusal(body, { text: 'a', chunkBytes: 1.5 })).field, 'chunkBytes');
    assert.equal((await refusal(body, { text: 'a', chunkBytes: 2 ** 21 })).field, 'chunkBytes');
    assert.equal((await refusal(body, { text: 'a', more: 7 })).field, 'more');
    assert.equal((await refusal(body, 'text')).message, 'body request must be an object.');
    assert.equal((await refusal(TranscoderSubjects.image, { source: 'bytes', spec: {} })).field, 'source');
  });

  test('bodies: HTML to text in chunks with a more token; the conversion is cached', async (t) => {
    const { role, client } = await setup(t);
    const html = `<h1>News</h1>${Array.from({ length: 40 }, (_, i) => `<p>Item ${i}: <img src="x.png"> some words here <a href="https://e.example/${i}">link ${i}</a></p>`).join('')}`;
    const first = await client.body({ html, chunkBytes: 400 });
    await role.flush();
    assert.match(first.text, /^News\n\nItem 0: some words here link 0 <https:\/\/e\.example\/0>/);
    assert.ok(Buffer.byteLength(first.text) <= 400);
    assert.ok(first.more);
    const second = await client.body({ html, chunkBytes: 400, more: first.more });
    assert.equal(second.offset, first.text.length);
    assert.equal(role.stats().cacheHits, 1, 'the second chunk reused the converted text');
    assert.equal(
      await codeOf(client.body({ html: `${html}x`, chunkBytes: 400, more: first.more })),
      'request.bad_input',
    );
    assert.equal(await codeOf(client.body({ html, text: 'both' })), 'request.bad_input');
    const plain = await client.body({ text: 'short   \n\n\n\nplain' });
    assert.deepEqual(plain, { text: 'short\n\nplain', offset: 0, totalBytes: 12 });
  });

  test('two roles in one queue group: each request is served once; a stopped role takes nothing', async (t) => {
    const { bus, role } = await setup(t);
    const dataDir2 = mkdtempSync(join(tmpdir(), 'mmgw-transcoder-'));
    const role2 = await startTranscoder({ bus, dataDir: dataDir2 });
    t.after(async () => {
      await role2.stop();
      rmSync(dataDir2, { recursive: true, force: true });
    });
    const client = new TranscoderClient(bus);
    const photos = await Promise.all([1, 2, 3, 4].map((seed) => photoJpeg(96, 64, { seed })));
    await Promise.all(photos.map((p) => client.image(p, screen)));
    assert.equal(role.stats().imageRequests + role2.stats().imageRequests, 4);
    await role.stop();
    await role2.stop();
    assert.equal(await codeOf(client.image(photos[0]!, screen)), 'bus.no_responders');
  });
});
