/**
 * `mmgw transcode FILE --width 320 --format jpeg --max-bytes 30000 -o OUT`:
 * the transcoder's image pipeline on one file, for operators tuning
 * capability profiles. Same code and limits as the role, no bus, no cache.
 *
 * Exit codes: 0 a variant was made; 1 the pipeline refused the image
 * (transcode.* code printed: a handset would be offered the original);
 * throws (→ exit 2 in main.ts) on bad flags or an unreadable file.
 */
import { readFile, stat, writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { GatewayError } from '../../device-protocol/errors.ts';
import {
  checkVariantSpec,
  type ImageVariantSpec,
  resolveLimits,
  transcodeImage,
} from '../../transcoder/index.ts';
import { type CliIo, processIo } from './io.ts';

export interface TranscodeCliOptions {
  file: string;
  /** Fit inside this width; default 320. */
  width?: string | number;
  height?: string | number;
  /** jpeg | webp | png; default jpeg. */
  format?: string;
  /** Byte budget; default 30000. */
  maxBytes?: string | number;
  /** Keep the animation (WebP only). */
  animate?: boolean;
  /** Write the variant here; without it only the sizes are printed. */
  out?: string;
  json?: boolean;
  /** Input pixel limit (all frames); default 50000000. */
  maxPixels?: string | number;
}

function int(value: string | number | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = typeof value === 'number' ? value : /^\d+$/.test(value.trim()) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n)) {
    throw new GatewayError('request.bad_input', `--${flag} must be a whole number, got "${value}".`, {
      field: flag,
    });
  }
  return n;
}

const fmt = (n: number) => n.toLocaleString('en-US');

export async function runTranscode(opts: TranscodeCliOptions, io: CliIo = processIo): Promise<number> {
  const maxPixels = int(opts.maxPixels, 'max-pixels');
  const limits = resolveLimits(maxPixels === undefined ? {} : { maxInputPixels: maxPixels });
  const height = int(opts.height, 'height');
  const spec: ImageVariantSpec = checkVariantSpec(
    {
      width: int(opts.width, 'width') ?? 320,
      ...(height === undefined ? {} : { height }),
      format: opts.format ?? 'jpeg',
      maxBytes: int(opts.maxBytes, 'max-bytes') ?? 30_000,
      animate: opts.animate === true,
    },
    limits,
  );
  // Refuse an oversized file before reading it into memory.
  const size = (await stat(opts.file)).size;
  const name = basename(opts.file);
  if (size > limits.maxSourceBytes) {
    return refuse(
      io,
      opts,
      name,
      size,
      new GatewayError(
        'transcode.too_large',
        `The source has ${size} bytes; the limit is ${limits.maxSourceBytes}.`,
      ),
    );
  }
  const input = await readFile(opts.file);
  const started = performance.now();
  let variant: Awaited<ReturnType<typeof transcodeImage>>;
  try {
    variant = await transcodeImage(input, spec, limits);
  } catch (err) {
    if (err instanceof GatewayError && err.code.startsWith('transcode.'))
      return refuse(io, opts, name, size, err);
    throw err;
  }
  const ms = Math.round(performance.now() - started);
  if (opts.out !== undefined) await writeFile(opts.out, variant.bytes);
  const saved = 1 - variant.bytes.byteLength / size;
  if (opts.json) {
    const { bytes, ...meta } = variant;
    io.out(
      `${JSON.stringify({ ...meta, bytes: bytes.byteLength, ms, budget: spec.maxBytes, out: opts.out ?? null })}\n`,
    );
  } else {
    const frames = (n: number) => (n > 1 ? ` ${n} frames` : '');
    io.out(
      `in:  ${name}  ${variant.inputFormat} ${variant.inputWidth}×${variant.inputHeight}${frames(variant.inputFrames)}  ${fmt(size)} bytes\n` +
        `out: ${opts.out === undefined ? '(not written)' : basename(opts.out)}  ${variant.format} ${variant.width}×${variant.height}${frames(variant.frames)} q${variant.quality}  ${fmt(variant.bytes.byteLength)} bytes  (${(saved * 100).toFixed(1)} % smaller, budget ${fmt(spec.maxBytes)}, ${ms} ms)\n`,
    );
  }
  return 0;
}

function refuse(io: CliIo, opts: TranscodeCliOptions, name: string, size: number, err: GatewayError): number {
  if (opts.json)
    io.out(`${JSON.stringify({ error: { code: err.code, message: err.message }, inputBytes: size })}\n`);
  else
    io.err(
      `mmgw: ${name} (${fmt(size)} bytes): ${err.message} [${err.code}]; a handset would be offered the original.\n`,
    );
  return 1;
}
