/**
 * Waiting at most so long for a promise, the timer cleared as soon as it
 * settles (a forgotten one keeps a process alive, or fires into nothing).
 * Rejections of `promise` pass through either way.
 */

/** What `promise` gives, or the error `late()` makes once `ms` have passed. */
export function within<T>(promise: Promise<T>, ms: number, late: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(late()), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** What `promise` gives, or `fallback` once `ms` have passed ("wait at most this long"). */
export function orAfter<T, F>(promise: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<F>((resolve) => {
    timer = setTimeout(() => resolve(fallback), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
