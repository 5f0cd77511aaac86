/**
 * The gateway's memory over the run: the resident set of its process and
 * every descendant (edge workers, a supervisor's children), sampled from
 * /proc at a fixed interval, against a bound of "RSS when fuzzing began plus
 * a margin".
 */
import { processTree, rssBytes } from '../bench/edge/proc-stats.ts';

export interface RssSample {
  /** Seconds since the monitor started. */
  at: number;
  bytes: number;
  processes: number;
}

/** Sum of VmRSS over `pid` and its descendants (0 when it is gone). */
export function treeRssBytes(pid: number): { bytes: number; processes: number } {
  let bytes = 0;
  let processes = 0;
  for (const p of processTree(pid)) {
    const rss = rssBytes(p);
    bytes += rss;
    if (rss > 0) processes++;
  }
  return { bytes, processes };
}

export class RssMonitor {
  readonly samples: RssSample[] = [];
  #timer: ReturnType<typeof setInterval> | undefined;
  #startedAt = 0;
  #overBound = false;

  constructor(
    readonly pid: number,
    /** Called once, the first time a sample passes `boundBytes`. */
    readonly onOverBound: (sample: RssSample, boundBytes: number) => void,
    public boundBytes = Number.POSITIVE_INFINITY,
  ) {}

  sample(): RssSample {
    const { bytes, processes } = treeRssBytes(this.pid);
    const s = { at: Math.round((Date.now() - this.#startedAt) / 100) / 10, bytes, processes };
    this.samples.push(s);
    if (!this.#overBound && bytes > this.boundBytes) {
      this.#overBound = true;
      this.onOverBound(s, this.boundBytes);
    }
    return s;
  }

  start(intervalMs: number): RssSample {
    this.#startedAt = Date.now();
    this.#timer = setInterval(() => this.sample(), intervalMs);
    this.#timer.unref();
    return this.sample();
  }

  stop(): RssSample {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    return this.sample();
  }

  peak(): RssSample | undefined {
    let best: RssSample | undefined;
    for (const s of this.samples) if (best === undefined || s.bytes > best.bytes) best = s;
    return best;
  }
}
