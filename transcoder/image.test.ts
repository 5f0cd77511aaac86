import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import sharp from 'sharp';
import { GatewayError } from '../device-protocol/errors.ts';
import { checkVariantSpec, transcodeImage } from './image.ts';
import { DEFAULT_LIMITS, resolveLimits } from './limits.ts';
import { sniffImageFormat } from './sniff.ts';
import {
  animatedGif,
  cmykJpeg,
  gifWithFrames,
  HOSTILE_SVG,
  markedJpeg,
  paletteGif,
  photoJpeg,
  pixelAt,
  png16WithAlpha,
  pngClaiming,
  webpPhoto,
} from '../testing/index.ts';

const isRed = ([r, g, b]: readonly [number, number, number]) => r > 180 && g < 80 && b < 80;
const isBlue = ([r, g, b]: readonly [number, number, number]) => b > 180 && r < 80 && g < 80;

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof GatewayError, `expected a GatewayError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return true;
  });
}

describe('transcodeImage: orientation', () => {
  // Where the stored top-left quadrant appears once the EXIF orientation is applied.
  const expected: Record<number, 'tl' | 'tr' | 'bl' | 'br'> = {
    1: 'tl',
    2: 'tr',
    3: 'br',
    4: 'bl',
    5: 'tl',
    6: 'tr',
    7: 'br',
    8: 'bl',
  };
  for (let orientation = 1; orientation <= 8; orientation++) {
    test(`EXIF orientation ${orientation}`, async () => {
      const input = await markedJpeg(200, 100, orientation);
      const out = await transcodeImage(input, { width: 80, height: 80, format: 'jpeg', maxBytes: 20_000 });
      const portrait = orientation >= 5;
      assert.equal(out.width, portrait ? 40 : 80);
      assert.equal(out.height, portrait ? 80 : 40);
      assert.equal(out.inputWidth, portrait ? 100 : 200);
      assert.equal(out.format, 'jpeg');
      assert.ok(out.bytes.byteLength <= 20_000);
      const meta = await sharp(out.bytes).metadata();
      assert.equal(meta.format, 'jpeg');
      assert.equal(meta.orientation, undefined, 'orientation tag stripped (already applied)');
      assert.equal(meta.exif, undefined, 'metadata stripped');
      const w = out.width;
      const h = out.height;
      const corners = {
        tl: await pixelAt(out.bytes, Math.floor(w / 4), Math.floor(h / 4)),
        tr: await pixelAt(out.bytes, Math.floor((3 * w) / 4), Math.floor(h / 4)),
        bl: await pixelAt(out.bytes, Math.floor(w / 4), Math.floor((3 * h) / 4)),
        br: await pixelAt(out.bytes, Math.floor((3 * w) / 4), Math.floor((3 * h) / 4)),
      };
      for (const [corner, rgb] of Object.entries(corners)) {
        if (corner === expected[orientation]) assert.ok(isRed(rgb), `${corner} should be red, is ${rgb}`);
        else assert.ok(isBlue(rgb), `${corner} should be blue, is ${rgb}`);
      }
    });
  }
});

describe('transcodeImage: input kinds', () => {
  test('photo-like JPEG with metadata → smaller JPEG within budget, never enlarged', async () => {
    const input = await sharp(await photoJpeg(640, 480))
      .withMetadata({ exif: { IFD0: { Copyright: 'secret-owner', Make: 'PhoneCo' } } })
      .jpeg({ quality: 95 })
      .toBuffer();
    const out = await transcodeImage(input, { width: 320, height: 240, format: 'jpeg', maxBytes: 30_000 });
    assert.deepEqual([out.width, out.height], [320, 240]);
    assert.ok(out.bytes.byteLength <= 30_000);
    assert.equal(out.quality, 80, 'the first rung fits');
    assert.equal(Buffer.from(out.bytes).includes('secret-owner'), false);
    assert.equal(Buffer.from(out.bytes).includes('PhoneCo'), false);
    const big = await transcodeImage(input, { width: 2000, format: 'jpeg', maxBytes: 500_000 });
    assert.deepEqual([big.width, big.height], [640, 480], 'no enlargement');
  });

  test('CMYK JPEG → sRGB JPEG with 3 channels', async () => {
    const input = await cmykJpeg(160, 120);
    assert.equal((await sharp(input).metadata()).space, 'cmyk');
    const out = await transcodeImage(input, { width: 80, format: 'jpeg', maxBytes: 10_000 });
    const meta = await sharp(out.bytes).metadata();
    assert.equal(meta.space, 'srgb');
    assert.equal(meta.channels, 3);
    assert.deepEqual([out.width, out.height], [80, 60]);
  });

  test('16-bit PNG with alpha → JPEG flattened on white; → PNG keeps alpha in 8 bits', async () => {
    const input = await png16WithAlpha(64, 32);
    assert.equal((await sharp(input).metadata()).depth, 'ushort');
    const jpeg = await transcodeImage(input, { width: 32, format: 'jpeg', maxBytes: 5_000 });
    assert.equal((await sharp(jpeg.bytes).metadata()).channels, 3);
    assert.ok(isRed(await pixelAt(jpeg.bytes, 4, 8)));
    const white = await pixelAt(jpeg.bytes, 28, 8);
    assert.ok(
      white.every((c) => c > 240),
      `transparent → white, got ${white}`,
    );
    const png = await transcodeImage(input, { width: 32, format: 'png', maxBytes: 5_000 });
    const meta = await sharp(png.bytes).metadata();
    assert.equal(meta.format, 'png');
    assert.equal(meta.depth, 'uchar');
    assert.equal(meta.hasAlpha, true);
    assert.equal(png.quality, 100, 'lossless PNG fits');
    assert.deepEqual([png.width, png.height], [32, 16]);
  });

  test('palette GIF → PNG and JPEG', async () => {
    const input = await paletteGif(120, 90);
    const png = await transcodeImage(input, { width: 60, format: 'png', maxBytes: 20_000 });
    assert.equal((await sharp(png.bytes).metadata()).format, 'png');
    assert.deepEqual([png.width, png.height], [60, 45]);
    assert.equal(png.inputFormat, 'gif');
    const jpeg = await transcodeImage(input, { width: 60, format: 'jpeg', maxBytes: 20_000 });
    assert.equal((await sharp(jpeg.bytes).metadata()).format, 'jpeg');
  });

  test('animated GIF → animated WebP when the device animates, first frame otherwise', async () => {
    const input = await animatedGif(40, 30, 6);
    const anim = await transcodeImage(input, { width: 20, format: 'webp', maxBytes: 20_000, animate: true });
    assert.equal(anim.frames, 6);
    assert.equal(anim.inputFrames, 6);
    const meta = await sharp(anim.bytes).metadata();
    assert.equal(meta.format, 'webp');
    assert.equal(meta.pages, 6);
    assert.deepEqual([anim.width, anim.height], [20, 15]);
    assert.deepEqual([meta.width, meta.pageHeight ?? meta.height], [20, 15]);

    const still = await transcodeImage(input, { width: 20, format: 'webp', maxBytes: 20_000 });
    assert.equal(still.frames, 1);
    assert.equal((await sharp(still.bytes).metadata()).pages ?? 1, 1);
    const jpeg = await transcodeImage(input, { width: 20, format: 'jpeg', maxBytes: 20_000, animate: true });
    assert.equal(jpeg.frames, 1);
    assert.deepEqual([jpeg.width, jpeg.height], [20, 15]);
  });

  test('an animation too big for the budget falls back to its first frame, within the budget', async () => {
    // Solid frames: quality hardly changes their size, so eight of them never fit where one does.
    const input = await animatedGif(64, 48, 8);
    const spec = { width: 64, format: 'webp', maxBytes: 100_000, animate: true } as const;
    const anim = await transcodeImage(input, spec);
    const still = await transcodeImage(input, { ...spec, animate: false });
    assert.equal(anim.frames, 8);
    assert.equal(still.frames, 1);
    const budget = still.bytes.byteLength;
    const squeezed = await transcodeImage(input, { ...spec, maxBytes: budget });
    assert.equal(squeezed.frames, 1);
    assert.ok(squeezed.bytes.byteLength <= budget);
    assert.equal((await sharp(squeezed.bytes).metadata()).pages ?? 1, 1);
  });

  test('WebP → JPEG and WebP', async () => {
    const input = await webpPhoto(200, 150);
    assert.equal(sniffImageFormat(input), 'webp');
    const jpeg = await transcodeImage(input, { width: 100, format: 'jpeg', maxBytes: 10_000 });
    assert.equal((await sharp(jpeg.bytes).metadata()).format, 'jpeg');
    assert.deepEqual([jpeg.width, jpeg.height], [100, 75]);
    const webp = await transcodeImage(input, { width: 100, format: 'webp', maxBytes: 10_000 });
    assert.equal((await sharp(webp.bytes).metadata()).format, 'webp');
  });
});

describe('transcodeImage: AVIF (read by this build of libheif)', () => {
  test('AVIF → JPEG', async () => {
    const input = await sharp(await photoJpeg(64, 48))
      .avif({ quality: 50, effort: 0 })
      .toBuffer();
    assert.equal(sniffImageFormat(input), 'avif');
    const out = await transcodeImage(input, { width: 32, format: 'jpeg', maxBytes: 5_000 });
    assert.equal(out.inputFormat, 'avif');
    assert.deepEqual([out.width, out.height], [32, 24]);
  });
});

describe('transcodeImage: byte budget', () => {
  test('a tight budget walks down the ladder, then shrinks, and never exceeds it', async () => {
    const input = await photoJpeg(400, 300, { seed: 11 });
    const roomy = await transcodeImage(input, { width: 400, format: 'jpeg', maxBytes: 1_000_000 });
    for (const maxBytes of [Math.floor(roomy.bytes.byteLength * 0.6), 4_000, 1_500]) {
      const out = await transcodeImage(input, { width: 400, format: 'jpeg', maxBytes });
      assert.ok(out.bytes.byteLength <= maxBytes, `${out.bytes.byteLength} > ${maxBytes}`);
      assert.ok(out.quality < 80 || out.width < 400, 'some step was taken');
      const meta = await sharp(out.bytes).metadata();
      assert.deepEqual([meta.width, meta.height], [out.width, out.height]);
    }
    const shrunk = await transcodeImage(input, { width: 400, format: 'jpeg', maxBytes: 1_500 });
    assert.ok(shrunk.width < 400, 'the size step was needed');
    assert.equal(shrunk.quality, 30, 'at the lowest rung');
  });

  test('a budget no image can meet is a typed error, not an oversized answer', async () => {
    const input = await photoJpeg(64, 48);
    await rejectsWith(
      transcodeImage(input, { width: 64, format: 'jpeg', maxBytes: 100 }),
      'transcode.over_budget',
    );
  });
});

describe('transcodeImage: hostile input', () => {
  const spec = { width: 100, format: 'jpeg', maxBytes: 10_000 } as const;

  test('zero bytes', async () => {
    await rejectsWith(transcodeImage(new Uint8Array(0), spec), 'transcode.bad_input');
  });

  test('truncated JPEG', async () => {
    const whole = await photoJpeg(200, 150);
    await rejectsWith(
      transcodeImage(whole.subarray(0, Math.floor(whole.length / 2)), spec),
      'transcode.bad_input',
    );
  });

  test('PNG whose header claims 100000 × 100000', async () => {
    await rejectsWith(transcodeImage(pngClaiming(100_000, 100_000), spec), 'transcode.too_many_pixels');
  });

  test('GIF with thousands of frames: all frames count against the pixel limit', async () => {
    // 200 × 200 × 2000 = 80 MP > 50 MP, in about 50 kB.
    const gif = gifWithFrames(200, 200, 2000);
    assert.ok(gif.length < 100_000);
    await rejectsWith(transcodeImage(gif, spec), 'transcode.too_many_pixels');
    await rejectsWith(
      transcodeImage(gif, { ...spec, format: 'webp', animate: true }),
      'transcode.too_many_pixels',
    );
  });

  test('SVG with external references and PDF are refused by their bytes', async () => {
    await rejectsWith(transcodeImage(HOSTILE_SVG, spec), 'transcode.unsupported_format');
    await rejectsWith(
      transcodeImage(Buffer.from('%PDF-1.7\n1 0 obj <<>> endobj\n'), spec),
      'transcode.unsupported_format',
    );
    await rejectsWith(
      transcodeImage(Buffer.from('just some text, long enough'), spec),
      'transcode.unsupported_format',
    );
  });

  test('source size and pixel limits are configurable', async () => {
    const input = await photoJpeg(64, 48);
    await rejectsWith(
      transcodeImage(input, spec, resolveLimits({ maxSourceBytes: input.length - 1 })),
      'transcode.too_large',
    );
    await rejectsWith(
      transcodeImage(input, spec, resolveLimits({ maxInputPixels: 64 * 48 - 1 })),
      'transcode.too_many_pixels',
    );
    await rejectsWith(
      transcodeImage(input, spec, resolveLimits({ inputFormats: ['png'] })),
      'transcode.unsupported_format',
    );
  });

  test('a job past its time limit is transcode.timeout', async () => {
    const input = await photoJpeg(64, 48);
    let clock = 0;
    // Every look at the clock moves it by 25 s: the limit (20 s) has passed at the first step.
    const now = () => {
      clock += 25_000;
      return clock;
    };
    await rejectsWith(transcodeImage(input, spec, DEFAULT_LIMITS, { now }), 'transcode.timeout');
  });

  test('bad variant specs are request.bad_input naming the field', () => {
    for (const [bad, field] of [
      [{ width: 0, format: 'jpeg', maxBytes: 1000 }, 'spec.width'],
      [{ width: 100, format: 'gif', maxBytes: 1000 }, 'spec.format'],
      [{ width: 100, format: 'jpeg', maxBytes: 10 }, 'spec.maxBytes'],
      [{ width: 100, height: 1e9, format: 'jpeg', maxBytes: 1000 }, 'spec.height'],
      [{ width: 100, format: 'jpeg', maxBytes: 1000, animate: 'yes' }, 'spec.animate'],
    ] as const) {
      assert.throws(
        () => checkVariantSpec(bad, DEFAULT_LIMITS),
        (err: unknown) =>
          err instanceof GatewayError && err.code === 'request.bad_input' && err.field === field,
      );
    }
  });
});
