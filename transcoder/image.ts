/**
 * The image pipeline: one attachment in, one variant out that a small screen
 * can show within a byte budget.
 *
 * Order of checks, cheapest first, so that hostile input costs little:
 *   size → magic bytes (allowlist) → header (pixels, all frames counted) → decode.
 * The decode runs once (with JPEG shrink-on-load, EXIF orientation applied,
 * sRGB, 8 bits, alpha flattened onto white for JPEG) into a small raw image;
 * the budget is then met by encoding that raw image down a quality ladder and,
 * if the lowest rung is still too big, by shrinking it. More bytes than the
 * budget are never returned: that is transcode.over_budget.
 */
import sharp, { type Metadata, type Sharp } from 'sharp';
import { GatewayError } from '../device-protocol/errors.ts';
import {
  configureSharp,
  DEFAULT_LIMITS,
  type InputFormat,
  OUTPUT_FORMATS,
  type OutputFormat,
  type TranscoderLimits,
} from './limits.ts';
import { sniffImageFormat } from './sniff.ts';

/** What the handset should get. */
export interface ImageVariantSpec {
  /** Fit inside this width (never enlarged). */
  width: number;
  /** Fit inside this height too, when given. */
  height?: number;
  format: OutputFormat;
  /** Byte budget of the encoded variant. */
  maxBytes: number;
  /** Keep the animation (WebP output only); otherwise the first frame. */
  animate?: boolean;
  /**
   * Highest quality rung to start from (a service profile's imageQuality): the
   * ladder starts at the first rung at or below it, or at this value when every
   * rung is higher. Absent: the ladder as configured.
   */
  maxQuality?: number;
}

export interface ImageVariant {
  bytes: Uint8Array;
  format: OutputFormat;
  width: number;
  height: number;
  /** The ladder rung that fitted (100 = lossless PNG). */
  quality: number;
  /** Frames in the output (1 unless animated). */
  frames: number;
  inputBytes: number;
  inputFormat: InputFormat;
  inputWidth: number;
  /** Height of one frame of the input. */
  inputHeight: number;
  inputFrames: number;
}

const MIN_BUDGET = 64;

/** Checks a variant spec from the bus (or the CLI); throws request.bad_input naming the field. */
export function checkVariantSpec(
  value: unknown,
  limits: Pick<TranscoderLimits, 'maxOutputDimension'> = DEFAULT_LIMITS,
): ImageVariantSpec {
  const bad = (field: string, why: string) =>
    new GatewayError('request.bad_input', `spec.${field} ${why}.`, { field: `spec.${field}` });
  if (value === null || typeof value !== 'object') throw bad('', 'must be an object');
  const v = value as Record<string, unknown>;
  const dim = (field: 'width' | 'height') => {
    const n = v[field];
    if (!Number.isInteger(n) || (n as number) < 1 || (n as number) > limits.maxOutputDimension) {
      throw bad(field, `must be an integer in 1…${limits.maxOutputDimension}`);
    }
    return n as number;
  };
  const spec: ImageVariantSpec = {
    width: dim('width'),
    format: v.format as OutputFormat,
    maxBytes: v.maxBytes as number,
  };
  if (v.height !== undefined && v.height !== null) spec.height = dim('height');
  if (!(OUTPUT_FORMATS as readonly unknown[]).includes(v.format)) {
    throw bad('format', `must be one of ${OUTPUT_FORMATS.join(', ')}`);
  }
  if (!Number.isSafeInteger(v.maxBytes) || (v.maxBytes as number) < MIN_BUDGET) {
    throw bad('maxBytes', `must be an integer ≥ ${MIN_BUDGET}`);
  }
  if (v.animate !== undefined && v.animate !== null) {
    if (typeof v.animate !== 'boolean') throw bad('animate', 'must be a boolean');
    spec.animate = v.animate;
  }
  if (v.maxQuality !== undefined && v.maxQuality !== null) {
    if (!Number.isInteger(v.maxQuality) || (v.maxQuality as number) < 1 || (v.maxQuality as number) > 100) {
      throw bad('maxQuality', 'must be an integer in 1…100');
    }
    spec.maxQuality = v.maxQuality as number;
  }
  return spec;
}

/** A stable text form of a spec, part of the cache key. */
export function variantKey(spec: ImageVariantSpec): string {
  const q = spec.maxQuality === undefined ? '' : `:q${spec.maxQuality}`;
  return `img:${spec.format}:${spec.width}x${spec.height ?? 0}:${spec.maxBytes}:${spec.animate ? 'a' : 's'}${q}`;
}

/** Size and format checks that need no decoding; returns the sniffed format. */
export function checkSource(input: Uint8Array, limits: TranscoderLimits): InputFormat {
  if (!(input instanceof Uint8Array) || input.byteLength === 0) {
    throw new GatewayError('transcode.bad_input', 'The image is empty.');
  }
  if (input.byteLength > limits.maxSourceBytes) {
    throw new GatewayError(
      'transcode.too_large',
      `The source has ${input.byteLength} bytes; the limit is ${limits.maxSourceBytes}.`,
    );
  }
  const format = sniffImageFormat(input);
  if (format === undefined || !limits.inputFormats.includes(format)) {
    throw new GatewayError(
      'transcode.unsupported_format',
      format === undefined
        ? 'The bytes are not an image format the transcoder accepts.'
        : `Input format ${format} is disabled.`,
    );
  }
  return format;
}

/** Turns whatever sharp threw into a typed error. */
export function toTranscodeError(err: unknown, inputFormat?: InputFormat): GatewayError {
  if (err instanceof GatewayError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (/pixel limit/i.test(message)) {
    return new GatewayError('transcode.too_many_pixels', undefined, { cause: err });
  }
  if (/timeout/i.test(message)) return new GatewayError('transcode.timeout', undefined, { cause: err });
  if (
    /unsupported image format|compression format has not been built|no decoding plugin|not supported/i.test(
      message,
    ) ||
    ((inputFormat === 'heif' || inputFormat === 'avif') && /heif/i.test(message))
  ) {
    return new GatewayError('transcode.unsupported_format', 'This build cannot decode the image.', {
      cause: err,
    });
  }
  return new GatewayError('transcode.bad_input', 'The image could not be decoded.', { cause: err });
}

type Rung = number | 'lossless';

interface Encoded {
  data: Buffer;
  width: number;
  /** Height of one frame. */
  height: number;
  q: number;
  frames: number;
}

interface Decoded {
  data: Buffer;
  width: number;
  /** Whole strip height (all frames stacked). */
  height: number;
  channels: 1 | 2 | 3 | 4;
  premultiplied: boolean;
  frames: number;
  delay?: number[];
  loop?: number;
}

export interface TranscodeOptions {
  /** Monotonic milliseconds (injected by tests); default performance.now. */
  now?: () => number;
}

/**
 * Shrinks one image to the variant spec. Throws GatewayError with a
 * transcode.* code (or request.bad_input for a bad spec); never returns more
 * than spec.maxBytes.
 */
export async function transcodeImage(
  input: Uint8Array,
  specIn: ImageVariantSpec,
  limits: TranscoderLimits = DEFAULT_LIMITS,
  options: TranscodeOptions = {},
): Promise<ImageVariant> {
  configureSharp();
  const spec = checkVariantSpec(specIn, limits);
  const now = options.now ?? (() => performance.now());
  const deadline = now() + limits.jobTimeoutMs;
  const inputFormat = checkSource(input, limits);
  const source = Buffer.isBuffer(input)
    ? input
    : Buffer.from(input.buffer, input.byteOffset, input.byteLength);

  let meta: Metadata;
  try {
    meta = await sharp(source, { limitInputPixels: false, failOn: 'none' }).metadata();
  } catch (err) {
    throw toTranscodeError(err, inputFormat);
  }
  const decodedAs = meta.format as string | undefined;
  const expected = inputFormat === 'avif' ? 'heif' : inputFormat;
  if (decodedAs !== expected) {
    throw new GatewayError(
      'transcode.unsupported_format',
      'The image header does not match its magic bytes.',
    );
  }
  // As displayed: EXIF orientations 5–8 swap width and height.
  const swap = (meta.orientation ?? 1) >= 5;
  const storedWidth = meta.width ?? 0;
  const storedHeight = meta.pageHeight ?? meta.height ?? 0;
  const inputWidth = swap ? storedHeight : storedWidth;
  const inputHeight = swap ? storedWidth : storedHeight;
  const inputFrames = Math.max(1, meta.pages ?? 1);
  if (inputWidth < 1 || inputHeight < 1)
    throw new GatewayError('transcode.bad_input', 'The image has no pixels.');
  const pixels = inputWidth * inputHeight * inputFrames;
  if (pixels > limits.maxInputPixels) {
    throw new GatewayError(
      'transcode.too_many_pixels',
      `The image has ${pixels} pixels (${inputWidth}×${inputHeight}×${inputFrames} frames); the limit is ${limits.maxInputPixels}.`,
    );
  }

  const animate =
    spec.animate === true &&
    spec.format === 'webp' &&
    inputFrames > 1 &&
    inputFrames <= limits.maxOutputFrames;

  const remainingSeconds = () => {
    const left = deadline - now();
    if (left <= 0)
      throw new GatewayError('transcode.timeout', `Transcoding took over ${limits.jobTimeoutMs} ms.`);
    return Math.max(1, Math.ceil(left / 1000));
  };

  /** The source pipeline: decode (first frame or all), orient, fit, sRGB 8-bit, white under JPEG. */
  const fromSource = (frames: boolean): Sharp => {
    let pipeline = sharp(source, {
      limitInputPixels: limits.maxInputPixels,
      failOn: limits.failOn,
      sequentialRead: true,
      autoOrient: true,
      pages: frames ? -1 : 1,
    })
      .resize({
        width: spec.width,
        ...(spec.height === undefined ? {} : { height: spec.height }),
        fit: 'inside',
        withoutEnlargement: true,
      })
      // sRGB, 8 bits per channel: CMYK, 16-bit and grey-with-profile inputs all end up the same.
      .toColourspace('srgb');
    if (spec.format === 'jpeg') pipeline = pipeline.flatten({ background: '#ffffff' });
    return pipeline.timeout({ seconds: remainingSeconds() });
  };

  const withEncoder = (img: Sharp, quality: Rung, animation?: { loop?: number; delay?: number[] }): Sharp => {
    const q = quality === 'lossless' ? 100 : quality;
    switch (spec.format) {
      case 'jpeg':
        return img.jpeg({ quality: q, optimiseCoding: true });
      case 'webp':
        return img.webp({
          quality: q,
          effort: 4,
          ...(animation
            ? { loop: animation.loop ?? 0, ...(animation.delay ? { delay: animation.delay } : {}) }
            : {}),
        });
      case 'png':
        return quality === 'lossless'
          ? img.png({ compressionLevel: 9, effort: 4 })
          : img.png({ compressionLevel: 9, palette: true, quality: q, effort: 4 });
    }
  };

  const decode = async (frames: boolean): Promise<Decoded> => {
    try {
      const { data, info } = await fromSource(frames)
        .raw({ depth: 'uchar' })
        .toBuffer({ resolveWithObject: true });
      const frameCount = frames ? Math.max(1, info.pages ?? 1) : 1;
      return {
        data,
        width: info.width,
        height: info.height,
        channels: info.channels,
        premultiplied: info.premultiplied,
        frames: frameCount,
        ...(frames && meta.delay ? { delay: meta.delay.slice(0, frameCount) } : {}),
        ...(frames && meta.loop !== undefined ? { loop: meta.loop } : {}),
      };
    } catch (err) {
      throw toTranscodeError(err, inputFormat);
    }
  };

  const encode = async (raw: Decoded, width: number, quality: Rung): Promise<Encoded> => {
    const frameHeight = raw.height / raw.frames;
    let img: Sharp = sharp(raw.data, {
      raw: {
        width: raw.width,
        height: raw.height,
        channels: raw.channels,
        premultiplied: raw.premultiplied,
        ...(raw.frames > 1 ? { pageHeight: frameHeight } : {}),
      },
    });
    if (width !== raw.width) img = img.resize({ width, fit: 'inside' });
    img = withEncoder(
      img.timeout({ seconds: remainingSeconds() }),
      quality,
      raw.frames > 1 ? raw : undefined,
    );
    try {
      const { data, info } = await img.toBuffer({ resolveWithObject: true });
      return {
        data,
        width: info.width,
        height: raw.frames > 1 ? frameHeight * (width / raw.width) : info.height,
        q: quality === 'lossless' ? 100 : quality,
        frames: raw.frames,
      };
    } catch (err) {
      throw toTranscodeError(err, inputFormat);
    }
  };

  const done = (out: Encoded): ImageVariant => ({
    bytes: out.data,
    format: spec.format,
    width: out.width,
    height: Math.round(out.height),
    quality: out.q,
    frames: out.frames,
    inputBytes: input.byteLength,
    inputFormat,
    inputWidth,
    inputHeight,
    inputFrames,
  });

  // Never empty: the limits check rejects an empty qualityLadder, and a maxQuality below every
  // rung becomes the one rung.
  const ladder: Rung[] =
    spec.format === 'png'
      ? ['lossless', ...qualityRungs(limits.qualityLadder, spec.maxQuality)]
      : qualityRungs(limits.qualityLadder, spec.maxQuality);

  /** Walks the ladder (from `start`) on the decoded image, then shrinks it; undefined when nothing fits. */
  const fit = async (raw: Decoded, start: number): Promise<ImageVariant | undefined> => {
    let last: Encoded | undefined;
    for (const quality of ladder.slice(start)) {
      last = await encode(raw, raw.width, quality);
      if (last.data.byteLength <= spec.maxBytes) return done(last);
    }
    if (raw.frames > 1) return undefined; // animated and too big: the caller falls back to one frame
    // Shrink: the encoded size is roughly proportional to the pixel count.
    const lowest = ladder[ladder.length - 1]!;
    let width = raw.width;
    let height = raw.height;
    let size = last?.data.byteLength ?? spec.maxBytes * 2;
    for (;;) {
      const factor = Math.min(0.9, Math.max(0.25, Math.sqrt(spec.maxBytes / size) * 0.95));
      width = Math.floor(width * factor);
      height = Math.floor(height * factor);
      if (width < limits.minDimension || height < limits.minDimension) return undefined;
      const out = await encode(raw, width, lowest);
      if (out.data.byteLength <= spec.maxBytes) return done(out);
      size = out.data.byteLength;
    }
  };

  if (animate) {
    const animated = await fit(await decode(true), 0);
    if (animated) return animated;
    // Too big even at the lowest rung: the first frame alone, below.
  }
  {
    // The common case: the first rung fits. Encoded straight from the source in one libvips
    // pipeline (as sharp used directly would), without the raw intermediate.
    try {
      const { data, info } = await withEncoder(fromSource(false), ladder[0]!).toBuffer({
        resolveWithObject: true,
      });
      const first: Encoded = {
        data,
        width: info.width,
        height: info.height,
        q: ladder[0] === 'lossless' ? 100 : ladder[0]!,
        frames: 1,
      };
      if (data.byteLength <= spec.maxBytes) return done(first);
    } catch (err) {
      throw toTranscodeError(err, inputFormat);
    }
    const result = await fit(await decode(false), 1);
    if (result) return result;
  }
  throw new GatewayError(
    'transcode.over_budget',
    `No ${spec.format} variant of at least ${limits.minDimension} px fits ${spec.maxBytes} bytes.`,
  );
}

/** The lossy rungs at or below maxQuality (maxQuality itself when every rung is above it). */
export function qualityRungs(ladder: readonly number[], maxQuality: number | undefined): number[] {
  if (maxQuality === undefined) return [...ladder];
  const kept = ladder.filter((q) => q <= maxQuality);
  return kept.length > 0 ? kept : [maxQuality];
}
