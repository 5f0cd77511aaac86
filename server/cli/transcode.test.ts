import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { captureIo, HOSTILE_SVG, photoJpeg, tempDir } from '../../testing/index.ts';
import { runTranscode } from './transcode.ts';

test('transcodes a file, writes the variant and prints sizes before and after', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'IMG_0001.jpg');
  writeFileSync(file, await photoJpeg(800, 600, { orientation: 6 }));
  const out = join(dir, 'small.jpg');
  const io = captureIo();
  const code = await runTranscode({ file, width: '320', format: 'jpeg', maxBytes: '30000', out }, io);
  assert.equal(code, 0, io.stderr);
  assert.match(io.stdout, /^in: {2}IMG_0001\.jpg {2}jpeg 600×800 {2}[\d,]+ bytes\n/);
  assert.match(io.stdout, /\nout: small\.jpg {2}jpeg 320×427 q\d+ {2}[\d,]+ bytes {2}\(\d+\.\d % smaller/);
  const meta = await sharp(readFileSync(out)).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height], ['jpeg', 320, 427]);
  assert.ok(readFileSync(out).length <= 30_000);
});

test('the extension is never trusted: an SVG named .jpg is refused, a JPEG named .gif is read as JPEG', async (t) => {
  const dir = tempDir(t);
  const liar = join(dir, 'photo.jpg');
  writeFileSync(liar, HOSTILE_SVG);
  const io = captureIo();
  assert.equal(await runTranscode({ file: liar, width: 100 }, io), 1);
  assert.match(io.stderr, /transcode\.unsupported_format/);
  assert.match(io.stderr, /offered the original/);

  const jpegAsGif = join(dir, 'anim.gif');
  writeFileSync(jpegAsGif, await photoJpeg(200, 100));
  const io2 = captureIo();
  assert.equal(await runTranscode({ file: jpegAsGif, width: 100, format: 'webp', json: true }, io2), 0);
  const report = JSON.parse(io2.stdout);
  assert.equal(report.inputFormat, 'jpeg');
  assert.equal(report.format, 'webp');
  assert.equal(report.width, 100);
  assert.equal(report.out, null);
});

test('bad flags throw request.bad_input naming the flag', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'a.jpg');
  writeFileSync(file, await photoJpeg(64, 48));
  await assert.rejects(runTranscode({ file, width: 'wide' }, captureIo()), {
    code: 'request.bad_input',
    field: 'width',
  });
  await assert.rejects(runTranscode({ file, format: 'bmp' }, captureIo()), {
    code: 'request.bad_input',
    field: 'spec.format',
  });
  await assert.rejects(runTranscode({ file: join(dir, 'missing.jpg') }, captureIo()), { code: 'ENOENT' });
});
