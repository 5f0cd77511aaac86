/**
 * Images made with sharp for the tests and the benchmark: nothing binary is
 * checked in, and every input is exactly what its test says it is.
 */
import { crc32 } from 'node:zlib';
import sharp from 'sharp';

/** A deterministic pseudo-random generator (tests must be reproducible). */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x1_0000_0000;
  };
}

/**
 * Raw RGB pixels that compress like a photo: smooth colour fields plus
 * sensor-like noise; with `detail`, a finer texture too, so that a
 * downscaled variant keeps about as many bytes as a real photo's would.
 */
export async function photoPixels(width: number, height: number, seed = 1, detail = false): Promise<Buffer> {
  const rnd = seededRandom(seed);
  const raw = { width, height, channels: 3 as const };
  const layer = async (div: number) => {
    const sw = Math.max(2, Math.ceil(width / div));
    const sh = Math.max(2, Math.ceil(height / div));
    const small = Buffer.alloc(sw * sh * 3);
    for (let i = 0; i < small.length; i++) small[i] = Math.floor(rnd() * 256);
    return sharp(small, { raw: { width: sw, height: sh, channels: 3 } })
      .resize(width, height, { kernel: 'cubic', fit: 'fill' })
      .raw()
      .toBuffer();
  };
  const base = await layer(100);
  const sigma = detail ? 6 : 12;
  const noise = await sharp({
    create: {
      width,
      height,
      channels: 3,
      background: '#808080',
      noise: { type: 'gaussian', mean: 128, sigma },
    },
  })
    .raw()
    .toBuffer();
  const layers = detail ? [await layer(6), noise] : [noise];
  return sharp(base, { raw })
    .composite(layers.map((input) => ({ input, raw, blend: 'soft-light' as const })))
    .removeAlpha() // composite adds an alpha channel; callers expect RGB
    .raw()
    .toBuffer();
}

/** A photo-like JPEG, optionally with an EXIF orientation tag (`detail`: see photoPixels). */
export async function photoJpeg(
  width: number,
  height: number,
  options: { orientation?: number; seed?: number; quality?: number; detail?: boolean } = {},
): Promise<Buffer> {
  const pixels = await photoPixels(width, height, options.seed ?? 1, options.detail ?? false);
  let img = sharp(pixels, { raw: { width, height, channels: 3 } }).jpeg({ quality: options.quality ?? 90 });
  if (options.orientation !== undefined) img = img.withMetadata({ orientation: options.orientation });
  return img.toBuffer();
}

/**
 * A JPEG stored as width × height with a pure red block in its stored top-left
 * quadrant and blue elsewhere, tagged with `orientation`: where the red block
 * ends up after display tells whether the orientation was applied.
 */
export async function markedJpeg(width: number, height: number, orientation: number): Promise<Buffer> {
  const red = await sharp({
    create: { width: width / 2, height: height / 2, channels: 3, background: { r: 255, g: 0, b: 0 } },
  })
    .png()
    .toBuffer();
  return sharp({ create: { width, height, channels: 3, background: { r: 0, g: 0, b: 255 } } })
    .composite([{ input: red, left: 0, top: 0 }])
    .jpeg({ quality: 95 })
    .withMetadata({ orientation })
    .toBuffer();
}

/** The same marked image as a CMYK JPEG. */
export async function cmykJpeg(width: number, height: number): Promise<Buffer> {
  const pixels = await photoPixels(width, height, 7);
  return sharp(pixels, { raw: { width, height, channels: 3 } })
    .toColourspace('cmyk')
    .jpeg({ quality: 90 })
    .toBuffer();
}

/** A 16-bit RGBA PNG: left half opaque red, right half fully transparent. */
export async function png16WithAlpha(width: number, height: number): Promise<Buffer> {
  const half = await sharp({
    create: { width: width / 2, height, channels: 4, background: { r: 255, g: 0, b: 0, alpha: 1 } },
  })
    .png()
    .toBuffer();
  return sharp({ create: { width, height, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } })
    .composite([{ input: half, left: 0, top: 0 }])
    .toColourspace('rgb16')
    .png()
    .toBuffer();
}

/** A palette GIF of a photo-like image. */
export async function paletteGif(width: number, height: number): Promise<Buffer> {
  const pixels = await photoPixels(width, height, 3);
  return sharp(pixels, { raw: { width, height, channels: 3 } })
    .gif({ colours: 64 })
    .toBuffer();
}

/** An animated GIF whose frames differ (so the encoder keeps them all). */
export async function animatedGif(width: number, height: number, frames: number): Promise<Buffer> {
  const pages = await Promise.all(
    Array.from({ length: frames }, (_, i) =>
      sharp({
        create: {
          width,
          height,
          channels: 3,
          background: { r: (i * 67) % 256, g: (i * 131) % 256, b: (i * 29) % 256 },
        },
      })
        .png()
        .toBuffer(),
    ),
  );
  return sharp(pages, { join: { animated: true } })
    .gif({ delay: Array(frames).fill(100), loop: 0 })
    .toBuffer();
}

export async function webpPhoto(width: number, height: number): Promise<Buffer> {
  const pixels = await photoPixels(width, height, 5);
  return sharp(pixels, { raw: { width, height, channels: 3 } })
    .webp({ quality: 85 })
    .toBuffer();
}

/** A PNG with screenshot-like content (flat areas, sharp edges, text-like stripes). */
export async function screenshotPng(width: number, height: number): Promise<Buffer> {
  const px = Buffer.alloc(width * height * 3, 0xf4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      if (y < 48) px.fill(0x30, i, i + 3);
      else if (y % 24 < 12 && x % 9 < 6 && x > 16 && x < width - 16 && ((x * 7 + y) >> 5) % 3 !== 0)
        px.fill(0x20, i, i + 3);
    }
  }
  return sharp(px, { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
}

/** The same PNG with a tEXt chunk after IHDR: other bytes (another content hash), same pixels. */
export function withPngText(png: Buffer, text: string): Buffer {
  const ihdrEnd = 8 + 4 + 4 + 13 + 4;
  return Buffer.concat([
    png.subarray(0, ihdrEnd),
    pngChunk('tEXt', Buffer.from(`Comment\0${text}`, 'latin1')),
    png.subarray(ihdrEnd),
  ]);
}

/** The same JPEG with a COM segment after SOI: other bytes, same pixels. */
export function withJpegComment(jpeg: Buffer, text: string): Buffer {
  const body = Buffer.from(text, 'latin1');
  const segment = Buffer.alloc(4);
  segment[0] = 0xff;
  segment[1] = 0xfe;
  segment.writeUInt16BE(body.length + 2, 2);
  return Buffer.concat([jpeg.subarray(0, 2), segment, body, jpeg.subarray(2)]);
}

function pngChunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const typeAndData = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typeAndData) >>> 0);
  return Buffer.concat([len, typeAndData, crc]);
}

/** A PNG whose IHDR claims width × height (valid CRCs) followed by a tiny IDAT: a decompression-bomb header. */
export function pngClaiming(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // truecolour
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', Buffer.from([0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01])),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

/**
 * A GIF with a width × height logical screen and `frames` frames of one
 * pixel each: tiny on disk, but frames × width × height pixels once decoded.
 */
export function gifWithFrames(width: number, height: number, frames: number): Buffer {
  const header = Buffer.from([
    ...Buffer.from('GIF89a', 'latin1'),
    width & 0xff,
    width >> 8,
    height & 0xff,
    height >> 8,
    0x80, // global colour table of 2 entries
    0,
    0,
    0xff,
    0xff,
    0xff,
    0,
    0,
    0,
  ]);
  const frame = Buffer.from([
    // graphic control extension (delay 0)
    0x21, 0xf9, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00,
    // image descriptor: 1×1 at 0,0
    0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0,
    // LZW min code size 2, one sub-block of 2 bytes, terminator
    0x02, 0x02, 0x44, 0x01, 0x00,
  ]);
  return Buffer.concat([header, ...Array<Buffer>(frames).fill(frame), Buffer.from([0x3b])]);
}

/** An SVG that would fetch an external resource and read a local file if rendered. */
export const HOSTILE_SVG = Buffer.from(
  `<?xml version="1.0"?>
<!DOCTYPE svg [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="100" height="100">
  <image xlink:href="http://127.0.0.1:9/tracker.png" width="100" height="100"/>
  <text>&xxe;</text>
</svg>
`,
  'utf8',
);

/** Decodes an output and returns the RGB colour at (x, y). */
export async function pixelAt(bytes: Uint8Array, x: number, y: number): Promise<[number, number, number]> {
  const { data, info } = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
  const i = (y * info.width + x) * info.channels;
  return [data[i]!, data[i + 1]!, data[i + 2]!];
}

/** A photo cut out by a soft-edged disc: an RGBA PNG like a sticker or a logo. */
export async function alphaPng(width: number, height: number, seed = 13): Promise<Buffer> {
  const rgb = await photoPixels(width, height, seed);
  const alpha = Buffer.alloc(width * height);
  const cx = width / 2;
  const cy = height / 2;
  const r = Math.min(width, height) * 0.45;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const d = Math.hypot(x - cx, y - cy);
      alpha[y * width + x] = d < r - 4 ? 255 : d > r + 4 ? 0 : Math.round(((r + 4 - d) / 8) * 255);
    }
  }
  return sharp(rgb, { raw: { width, height, channels: 3 } })
    .joinChannel(alpha, { raw: { width, height, channels: 1 } })
    .png()
    .toBuffer();
}

/** An animated GIF of photo-like frames. */
export async function animatedPhotoGif(width: number, height: number, frames: number): Promise<Buffer> {
  const pages = await Promise.all(
    Array.from({ length: frames }, async (_, i) =>
      sharp(await photoPixels(width, height, 100 + i), { raw: { width, height, channels: 3 } })
        .png()
        .toBuffer(),
    ),
  );
  return sharp(pages, { join: { animated: true } })
    .gif({ delay: Array(frames).fill(80), loop: 0 })
    .toBuffer();
}
