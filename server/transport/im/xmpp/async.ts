/** Promise helpers the session's plugins share. */
import { GatewayError } from '../../../../device-protocol/errors.ts';
import { within } from '../../kit/deadline.ts';

export interface Deferred<T> {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** `promise`, or a retryable im.unreachable naming `what` once `ms` have passed. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return within(
    promise,
    ms,
    () => new GatewayError('im.unreachable', `${what} took longer than ${ms} ms`, { retryable: true }),
  );
}
