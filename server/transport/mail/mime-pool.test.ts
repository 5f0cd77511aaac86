import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatewayError } from '../../../device-protocol/errors.ts';
import { WorkerJobError } from '../kit/worker-pool.ts';
import { type MimePool, openMimePool, renderTextPart, TEXT_OFFLOAD_BYTES } from './mime-pool.ts';

test('a large text part is rendered by the MIME worker (the .ts module, from the sources)', async () => {
  const pool = openMimePool({ size: 1 });
  try {
    const html = Buffer.from(`<p>${'word '.repeat(TEXT_OFFLOAD_BYTES / 5)}</p><p>end</p>`);
    const text = await renderTextPart(pool, html, { html: true });
    assert.ok(text.endsWith('end'));
    assert.equal(pool.workers, 1, 'the worker ran it');
  } finally {
    await pool.close();
  }
});

test('a small part stays on the event loop; a busy pool is mail.too_complex, retryable', async () => {
  const unused = {
    run: () => assert.fail('a small part must not go to a worker'),
  } as unknown as MimePool;
  assert.equal(
    await renderTextPart(unused, Buffer.from('=C3=A9t=C3=A9'), { encoding: 'quoted-printable', html: false }),
    'été',
  );
  const busy = {
    run: async () => {
      throw new WorkerJobError('busy', 'full');
    },
  } as unknown as MimePool;
  await assert.rejects(
    renderTextPart(busy, Buffer.alloc(TEXT_OFFLOAD_BYTES + 1, 0x61), { html: false }),
    (err: unknown) => err instanceof GatewayError && err.code === 'mail.too_complex' && err.retryable,
  );
});
