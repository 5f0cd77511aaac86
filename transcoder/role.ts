/**
 * The transcoder role: stateless image and body shrinking behind the bus.
 * Each node subscribes in the queue group `transcoders`; in `all` mode the
 * same code runs in a supervised child process of the node (or, with
 * --no-supervise, in its one process) over the node's in-process bus.
 *
 * A request costs, in order: a size and magic-byte check (hostile input is
 * refused before it is fingerprinted or queued), a cache lookup, a join onto an
 * identical job already running (single flight), and only then a place in
 * the bounded job queue.
 */
import type { Logger } from 'pino';
import { z } from 'zod';
import { GatewayError } from '../device-protocol/errors.ts';
import type { Bus, BusMessage, RoleDefinition, RoleHandle, Subscription } from '../server/index.ts';
import { chunkText, htmlToReadableText, tidyText } from './body.ts';
import { SourceFingerprint, TranscodeCache } from './cache.ts';
import { checkSource, checkVariantSpec, type ImageVariant, transcodeImage, variantKey } from './image.ts';
import { JobQueue, type JobQueueStats } from './job-queue.ts';
import { configureSharp, resolveLimits, type TranscoderLimits } from './limits.ts';
import {
  type BodyReply,
  plainBytes,
  type ImageReply,
  TRANSCODER_QUEUE_GROUP,
  TranscoderSubjects,
} from './protocol.ts';

export interface StartTranscoderOptions {
  bus: Bus;
  /** The cache lives in `<dataDir>/transcoder-cache`. */
  dataDir: string;
  logger?: Logger;
  limits?: Partial<TranscoderLimits>;
  /** Queue group; default 'transcoders'. */
  queueGroup?: string;
}

export interface TranscoderStats {
  imageRequests: number;
  bodyRequests: number;
  cacheHits: number;
  /** Requests that joined an identical job already running. */
  joined: number;
  /** Images actually run through sharp. */
  transcodes: number;
  /** Failed requests by error code. */
  failures: Record<string, number>;
  queue: JobQueueStats;
  cache: { entries: number; bytes: number; maxBytes: number } | undefined;
}

export interface TranscoderRole {
  readonly limits: TranscoderLimits;
  stats(): TranscoderStats;
  /** Resolves once every cache write started so far is committed. */
  flush(): Promise<void>;
  /** Stops taking requests, lets running jobs finish, closes the cache. */
  stop(): Promise<void>;
}

const MAX_CHUNK_BYTES = 1024 * 1024;

// Requests come over the bus from other nodes: parsed like any untrusted input. The first issue's
// message (set per field below) becomes the request.bad_input the caller sees.
const imageRequestShape = z.looseObject({
  source: z.instanceof(Uint8Array, { error: 'source must be bytes.' }),
  spec: z.unknown(),
});

const chunkBytesWords = `chunkBytes must be an integer ≤ ${MAX_CHUNK_BYTES}.`;

const bodyRequestShape = z
  .looseObject({
    html: z.string().optional(),
    text: z.string().optional(),
    chunkBytes: z.int({ error: chunkBytesWords }).max(MAX_CHUNK_BYTES, { error: chunkBytesWords }).optional(),
    more: z.string({ error: 'more must be a string.' }).optional(),
  })
  .check((ctx) => {
    if ((ctx.value.html === undefined) === (ctx.value.text === undefined)) {
      ctx.issues.push({
        code: 'custom',
        message: 'Send exactly one of html or text.',
        input: ctx.value,
        path: ['html'],
      });
    }
  });

function parseRequest<T>(schema: z.ZodType<T>, data: unknown, what: string): T {
  if (data === null || typeof data !== 'object') {
    throw new GatewayError('request.bad_input', `${what} request must be an object.`);
  }
  const parsed = schema.safeParse(data);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const field = issue?.path.length ? String(issue.path[0]) : undefined;
  throw new GatewayError('request.bad_input', issue?.message ?? 'bad request.', field ? { field } : {});
}

type ImageMeta = Omit<ImageVariant, 'bytes'>;

export async function startTranscoder(options: StartTranscoderOptions): Promise<TranscoderRole> {
  const { bus, logger } = options;
  const limits = resolveLimits(options.limits);
  configureSharp();
  const cache =
    limits.cacheMaxBytes > 0
      ? TranscodeCache.open(options.dataDir, { maxBytes: limits.cacheMaxBytes })
      : undefined;
  // Without a cache the fingerprint only joins identical jobs in flight: a key of this process will do.
  const fingerprint = cache?.fingerprint ?? SourceFingerprint.random();
  const queue = new JobQueue(limits);
  const inflight = new Map<string, Promise<ImageVariant>>();
  const counters = { imageRequests: 0, bodyRequests: 0, cacheHits: 0, joined: 0, transcodes: 0 };
  const failures: Record<string, number> = {};
  let stopped = false;
  const pendingWrites = new Set<Promise<void>>();
  /** Keeps a cache write in pendingWrites until it settles; a failed write only costs a future transcode. */
  const track = (write: Promise<void>): Promise<void> => {
    const p = write.catch((err) => logger?.warn({ err }, 'transcoder cache write failed'));
    pendingWrites.add(p);
    p.finally(() => pendingWrites.delete(p));
    return p;
  };

  const fail = (err: unknown, subject: string): never => {
    const gw = err instanceof GatewayError ? err : new GatewayError('internal', undefined, { cause: err });
    failures[gw.code] = (failures[gw.code] ?? 0) + 1;
    if (gw.code === 'internal') logger?.error({ err, subject }, 'transcoder job failed');
    else logger?.debug({ code: gw.code, subject, message: gw.message }, 'transcoder request refused');
    throw gw;
  };

  const handleImage = async (msg: BusMessage): Promise<ImageReply> => {
    counters.imageRequests++;
    const req = parseRequest(imageRequestShape, msg.data, 'image');
    const source = req.source;
    const spec = checkVariantSpec(req.spec, limits);
    checkSource(source, limits);
    const key = TranscodeCache.key(fingerprint.of(source), variantKey(spec));
    const hit = cache?.get<ImageMeta>(key);
    if (hit !== undefined) {
      counters.cacheHits++;
      return { ...hit.meta, bytes: plainBytes(hit.bytes), cached: true };
    }
    let job = inflight.get(key);
    if (job !== undefined) {
      counters.joined++;
    } else {
      let written: Promise<void> = Promise.resolve();
      job = queue.run(source.byteLength, async () => {
        counters.transcodes++;
        const variant = await transcodeImage(source, spec, limits);
        const { bytes, ...meta } = variant;
        // Not awaited here: the commit (and its fsync) must not hold a job slot or delay
        // the answer. Until it is committed, a request for the same key joins this job.
        if (cache !== undefined) written = track(cache.put(key, bytes, meta));
        return variant;
      });
      inflight.set(key, job);
      job
        .then(
          () => written,
          () => undefined,
        )
        .finally(() => inflight.delete(key));
    }
    const variant = await job;
    return { ...variant, bytes: plainBytes(variant.bytes), cached: false };
  };

  const handleBody = async (msg: BusMessage): Promise<BodyReply> => {
    counters.bodyRequests++;
    const req = parseRequest(bodyRequestShape, msg.data, 'body');
    const chunkBytes = req.chunkBytes ?? limits.bodyChunkBytes;
    let text: string;
    if (req.html !== undefined) {
      const html = req.html;
      const key = TranscodeCache.key(fingerprint.of(html), 'body:text:1');
      const hit = cache?.get<null>(key);
      if (hit !== undefined) {
        counters.cacheHits++;
        text = Buffer.from(hit.bytes).toString('utf8');
      } else {
        text = htmlToReadableText(html, limits.maxBodyBytes);
        if (cache !== undefined) track(cache.put(key, Buffer.from(text, 'utf8'), null));
      }
    } else {
      const raw = req.text ?? '';
      if (Buffer.byteLength(raw, 'utf8') > limits.maxBodyBytes) {
        throw new GatewayError(
          'transcode.too_large',
          `The body is larger than ${limits.maxBodyBytes} bytes.`,
        );
      }
      text = tidyText(raw);
    }
    return chunkText(text, chunkBytes, req.more);
  };

  const guard =
    <T>(subject: string, handler: (msg: BusMessage) => Promise<T>) =>
    async (msg: BusMessage): Promise<T> => {
      if (stopped)
        throw new GatewayError('request.unavailable', 'This transcoder is stopping.', { retryable: true });
      try {
        return await handler(msg);
      } catch (err) {
        return fail(err, subject);
      }
    };

  const group = options.queueGroup ?? TRANSCODER_QUEUE_GROUP;
  const subscriptions: Subscription[] = [
    bus.subscribe(TranscoderSubjects.image, guard(TranscoderSubjects.image, handleImage), { queue: group }),
    bus.subscribe(TranscoderSubjects.body, guard(TranscoderSubjects.body, handleBody), { queue: group }),
  ];
  logger?.info(
    { maxConcurrent: limits.maxConcurrent, maxQueued: limits.maxQueued, cacheMaxBytes: limits.cacheMaxBytes },
    'transcoder role started',
  );

  return {
    limits,
    stats: () => ({
      ...counters,
      failures: { ...failures },
      queue: queue.stats,
      cache: cache?.stats,
    }),
    async flush() {
      await Promise.all([...pendingWrites]);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const s of subscriptions) s.unsubscribe();
      await queue.idle();
      await Promise.all([...pendingWrites]);
      await cache?.close();
    },
  };
}

/** The transcoder's entry in a node's role table (server/roles.ts). */
export const transcoderRole: RoleDefinition = {
  name: 'transcoder',
  async start(ctx): Promise<RoleHandle> {
    // Stateless: a queue group on the bus, so several transcoders share the work.
    const transcoder = await startTranscoder({ bus: ctx.bus, dataDir: ctx.config.data, logger: ctx.logger });
    return { stop: () => transcoder.stop() };
  },
};
