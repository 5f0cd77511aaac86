/**
 * A tiny typed event emitter. `node:events` is not available in browsers, and
 * EventTarget cannot type its payloads, so the SDK carries its own.
 *
 * A listener that throws must not break the state machine that emitted the
 * event (the SDK emits from inside its frame handling), so the error is
 * rethrown on a later tick, where it surfaces like any uncaught error of the
 * application, and the remaining listeners still run.
 */

export type Listener<T> = (payload: T) => void;

export class TypedEmitter<Events extends object> {
  readonly #listeners = new Map<keyof Events, Set<Listener<never>>>();

  /** Adds a listener; returns the function that removes it again. */
  on<K extends keyof Events>(name: K, fn: Listener<Events[K]>): () => void {
    let set = this.#listeners.get(name);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(name, set);
    }
    set.add(fn as Listener<never>);
    return () => {
      this.#listeners.get(name)?.delete(fn as Listener<never>);
    };
  }

  /** Adds a listener that removes itself after its first call. */
  once<K extends keyof Events>(name: K, fn: Listener<Events[K]>): () => void {
    const off = this.on(name, (payload) => {
      off();
      fn(payload);
    });
    return off;
  }

  emit<K extends keyof Events>(name: K, payload: Events[K]): void {
    const set = this.#listeners.get(name);
    if (set === undefined || set.size === 0) return;
    // Copy: a listener may add or remove listeners while we iterate.
    for (const fn of [...set] as Listener<Events[K]>[]) {
      try {
        fn(payload);
      } catch (err) {
        setTimeout(() => {
          throw err;
        }, 0);
      }
    }
  }

  listenerCount(name: keyof Events): number {
    return this.#listeners.get(name)?.size ?? 0;
  }

  removeAllListeners(): void {
    this.#listeners.clear();
  }
}
