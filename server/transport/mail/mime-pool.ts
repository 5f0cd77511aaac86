/**
 * The mail service's MIME workers (issue #11): large FETCH rows (a
 * BODYSTRUCTURE of thousands of parts, fetch-offload.ts) and large text parts
 * are parsed and decoded there, never on the event loop, so one device's
 * hostile mail does not slow every other device. Small ones stay on the
 * event loop, where they cost less than the trip to a worker.
 */
import { WorkerJobError, WorkerPool, type WorkerPoolOptions } from '../kit/worker-pool.ts';
import type { MimeJob, MimeResult } from './mime-jobs.ts';
import { tooComplex } from './mime-limits.ts';
import { renderText, type TextPartCoding } from './mime-text.ts';

/** dist/ runs the built worker; the sources (tests, benchmarks) the .ts one, as node.ts does for its edge worker. */
const BUILT = import.meta.url.endsWith('.js');
export const MIME_WORKER = new URL(`./mime-worker.${BUILT ? 'js' : 'ts'}`, import.meta.url);

export type MimePool = WorkerPool<MimeJob, MimeResult>;

export function openMimePool(opts: Omit<WorkerPoolOptions, 'entry'> = {}): MimePool {
  return new WorkerPool<MimeJob, MimeResult>({ entry: MIME_WORKER, ...opts });
}

/** Text parts up to this many raw bytes are decoded on the event loop (well under a millisecond). */
export const TEXT_OFFLOAD_BYTES = 32 * 1024;

/**
 * A text part's bytes as text (mime-text.ts renderText), in a worker when
 * large. A worker that fails (time, memory) is mail.too_complex; a full
 * queue the same, retryable.
 */
export async function renderTextPart(
  pool: MimePool | undefined,
  raw: Uint8Array,
  coding: TextPartCoding,
): Promise<string> {
  if (pool === undefined || raw.byteLength <= TEXT_OFFLOAD_BYTES) return renderText(raw, coding);
  // A copy the worker gets for itself (moved, not cloned); the caller's buffer may share a pool slab.
  const copy = new Uint8Array(raw);
  try {
    const result = await pool.run({ kind: 'text', raw: copy, coding }, [copy.buffer]);
    if (result.kind !== 'text') throw new Error('a text job answered with another kind');
    return result.text;
  } catch (err) {
    if (err instanceof WorkerJobError) throw tooComplex('uid', err.reason === 'busy');
    throw err;
  }
}
