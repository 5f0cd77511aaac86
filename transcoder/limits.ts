/**
 * The transcoder's limits and sharp's process-wide settings, in one place so
 * that an operator can see (and configure) every bound that keeps a hostile
 * or merely huge attachment from taking a node down.
 *
 * Memory model (why these defaults):
 * - `sharp.concurrency(1)`: libvips may use several threads inside one job;
 *   we run up to `maxConcurrent` jobs side by side instead. One thread per job
 *   keeps a job's working set to one set of scanline buffers, and makes
 *   memory grow with `maxConcurrent` only.
 * - `sharp.cache(false)`: libvips' operation cache keeps recent decoded
 *   images for re-use. Our jobs never repeat an operation (the content
 *   cache in cache.ts catches repeats before sharp), so it would only hold
 *   memory (default 50 MB and 100 operations).
 * - libuv pool (`UV_THREADPOOL_SIZE`, default 4, read once at process start):
 *   sharp runs each job on a pool thread, as do lmdb writes, fs and dns.
 *   We leave it at 4 and cap sharp jobs at `maxConcurrent` (default 2, the
 *   core count of a small node), so at least two pool threads always stay
 *   free for the other users: a burst of images never stalls the rest of the
 *   node. Raise the pool size together with `maxConcurrent` on bigger hosts.
 * - Sources wait in a bounded queue (`maxQueued` jobs and `maxQueuedBytes`);
 *   past either bound the role answers transcode.busy instead of growing.
 * The ceiling this gives (memoryCeilingBytes): RSS above the idle process
 * stays under 2 × maxQueuedBytes (in `all` mode each waiting source exists
 * twice: the requester's bytes and the bus message, which the role reads as
 * a view, not as a third copy; server/bus/codec.ts) plus
 * maxConcurrent × 64 MB (one job's working set: shrink-on-load
 * JPEG needs far less, a 50-megapixel PNG streamed by sequential read about
 * that). Defaults: 2 × 128 + 2 × 64 = 384 MB. transcoder/memory.test.ts
 * checks it with 20 concurrent 24-megapixel inputs; `npm run bench:transcode`
 * records the measured peak in test/bench/RESULTS.md.
 */
import sharp from 'sharp';
import { GatewayError } from '../device-protocol/errors.ts';

export const INPUT_FORMATS = ['jpeg', 'png', 'webp', 'gif', 'avif', 'heif'] as const;
export type InputFormat = (typeof INPUT_FORMATS)[number];

export const OUTPUT_FORMATS = ['jpeg', 'webp', 'png'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export interface TranscoderLimits {
  /** Input pixels, all frames counted (width × frame height × frames). */
  maxInputPixels: number;
  /** Largest source accepted, in bytes. */
  maxSourceBytes: number;
  /** Input formats accepted, recognised by their bytes (never by name). */
  inputFormats: readonly InputFormat[];
  /** Wall-clock limit of one job (decode, ladder and shrink steps together). */
  jobTimeoutMs: number;
  /** Jobs running at once (each on one libuv pool thread, one libvips thread). */
  maxConcurrent: number;
  /** Jobs waiting; one more is refused with transcode.busy. */
  maxQueued: number;
  /** Source bytes held by waiting jobs; one more is refused with transcode.busy. */
  maxQueuedBytes: number;
  /** A job that waited longer than this is answered transcode.busy (its requester has likely given up). */
  maxQueueWaitMs: number;
  /** Qualities tried in order until the output fits the byte budget. */
  qualityLadder: readonly number[];
  /** The size steps stop below this width or height. */
  minDimension: number;
  /** Largest width/height a variant may ask for. */
  maxOutputDimension: number;
  /**
   * When a decoder's complaint aborts the job (sharp's failOn). 'warning', as
   * sharp advises for untrusted input: a damaged file is refused (and the
   * original offered) rather than half-decoded.
   */
  failOn: 'none' | 'truncated' | 'error' | 'warning';
  /** Frames kept for an animated variant; more frames → first frame only. */
  maxOutputFrames: number;
  /** Size bound of the content-addressed cache; 0 disables it. */
  cacheMaxBytes: number;
  /** Largest HTML (or text) body accepted by body shrinking, in bytes. */
  maxBodyBytes: number;
  /** Default chunk size of shrunk text, UTF-8 bytes. */
  bodyChunkBytes: number;
}

export const DEFAULT_LIMITS: Readonly<TranscoderLimits> = Object.freeze({
  maxInputPixels: 50_000_000,
  maxSourceBytes: 25 * 1024 * 1024,
  inputFormats: INPUT_FORMATS,
  jobTimeoutMs: 20_000,
  maxConcurrent: 2,
  maxQueued: 32,
  maxQueuedBytes: 128 * 1024 * 1024,
  maxQueueWaitMs: 30_000,
  qualityLadder: [80, 70, 60, 50, 40, 30],
  minDimension: 16,
  maxOutputDimension: 4096,
  failOn: 'warning',
  maxOutputFrames: 200,
  cacheMaxBytes: 256 * 1024 * 1024,
  maxBodyBytes: 4 * 1024 * 1024,
  bodyChunkBytes: 16 * 1024,
});

const POSITIVE_INTS: Array<keyof TranscoderLimits> = [
  'maxInputPixels',
  'maxSourceBytes',
  'jobTimeoutMs',
  'maxConcurrent',
  'maxQueued',
  'maxQueuedBytes',
  'maxQueueWaitMs',
  'minDimension',
  'maxOutputDimension',
  'maxOutputFrames',
  'maxBodyBytes',
  'bodyChunkBytes',
];

/** Fills in defaults and checks every value; a bad one stops the start with config.invalid naming it. */
export function resolveLimits(partial: Partial<TranscoderLimits> = {}): TranscoderLimits {
  const limits: TranscoderLimits = { ...DEFAULT_LIMITS, ...partial };
  for (const key of POSITIVE_INTS) {
    const v = limits[key];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
      throw new GatewayError('config.invalid', `transcoder.${key} must be a positive integer.`, {
        field: key,
      });
    }
  }
  if (!Number.isSafeInteger(limits.cacheMaxBytes) || limits.cacheMaxBytes < 0) {
    throw new GatewayError('config.invalid', 'transcoder.cacheMaxBytes must be an integer ≥ 0.', {
      field: 'cacheMaxBytes',
    });
  }
  if (
    limits.qualityLadder.length === 0 ||
    !limits.qualityLadder.every((q) => Number.isInteger(q) && q >= 1 && q <= 100)
  ) {
    throw new GatewayError('config.invalid', 'transcoder.qualityLadder must be integers in 1…100.', {
      field: 'qualityLadder',
    });
  }
  if (!limits.inputFormats.every((f) => (INPUT_FORMATS as readonly string[]).includes(f))) {
    throw new GatewayError('config.invalid', `transcoder.inputFormats: one of ${INPUT_FORMATS.join(', ')}.`, {
      field: 'inputFormats',
    });
  }
  if (!['none', 'truncated', 'error', 'warning'].includes(limits.failOn)) {
    throw new GatewayError('config.invalid', 'transcoder.failOn: none, truncated, error or warning.', {
      field: 'failOn',
    });
  }
  return limits;
}

/** Working set of one running job, for the ceiling below. */
export const JOB_WORKING_SET_BYTES = 64 * 1024 * 1024;

/** The documented bound of RSS growth under load (see the top of this file). */
export function memoryCeilingBytes(
  limits: Pick<TranscoderLimits, 'maxQueuedBytes' | 'maxConcurrent'>,
): number {
  return 2 * limits.maxQueuedBytes + limits.maxConcurrent * JOB_WORKING_SET_BYTES;
}

let configured = false;

/** Applies the process-wide sharp settings described above; idempotent. */
export function configureSharp(): void {
  if (configured) return;
  configured = true;
  sharp.concurrency(1);
  sharp.cache(false);
}
