/**
 * `sys.stream {count, from?, intervalMs?}`: answers `{accepted, from, count}`
 * at once, then pushes `sys.tick {n}` for n = from … from+count-1, in order,
 * each one only after the edge has taken the previous one into the session's
 * replay buffer. It stops at the first push that fails (the device's session
 * is gone, the node is closing): a device continues by asking again from the
 * last tick it got, which is what the failover tests do.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { integer, objectOf } from '../kit/method-input.ts';
import type { MethodContext, MethodDefinition } from '../types.ts';

export const MAX_STREAM_COUNT = 1_000_000;
export const MAX_STREAM_INTERVAL_MS = 60_000;

export interface SysStreamInput {
  count: number;
  from: number;
  intervalMs: number;
}

async function pushTicks(ctx: MethodContext, input: SysStreamInput): Promise<void> {
  const end = input.from + input.count;
  for (let n = input.from; n < end; n++) {
    try {
      await ctx.push('sys.tick', { n });
    } catch (err) {
      ctx.logger.debug({ err, n }, 'sys.stream stopped');
      return;
    }
    if (input.intervalMs > 0 && n + 1 < end) await sleep(input.intervalMs);
  }
}

export const sysStream: MethodDefinition<SysStreamInput> = {
  method: 'sys.stream',
  input: objectOf({
    count: integer(0, MAX_STREAM_COUNT),
    from: integer(0, Number.MAX_SAFE_INTEGER - MAX_STREAM_COUNT).default(1),
    intervalMs: integer(0, MAX_STREAM_INTERVAL_MS).default(0),
  }),
  async handle(ctx, input) {
    // After the answer is on its way: the first tick must not overtake it.
    setImmediate(() => void pushTicks(ctx, input));
    return { accepted: true, from: input.from, count: input.count };
  },
};
