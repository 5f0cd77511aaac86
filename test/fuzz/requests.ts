/**
 * The requests one fuzzing device sends: (a) valid-looking bodies from the
 * method's schema (ids from what the device knows), (b) one mutation of such
 * a body, (c) a random method name and a random body. Every choice comes
 * from the device's seeded stream.
 */
import fc from 'fast-check';
import type { Value } from '../../device-protocol/messages.ts';
import {
  correlate,
  type DeviceKnowledge,
  foreignAccounts,
  knowledgeHints,
  type SharedKnowledge,
} from './knowledge.ts';
import type { FuzzMethod } from './methods.ts';
import { mutate } from './mutate.ts';
import type { Rng } from './rng.ts';
import { anyValue, arbitraryFor } from './schema-arbitrary.ts';
import { EDGE_STRINGS, PROTOTYPE_KEYS } from './values.ts';

export type Mode = 'valid' | 'mutated' | 'random';

export interface FuzzRequest {
  method: string;
  /** What goes on the wire (the codec skips undefined map entries). */
  body: Value | undefined;
  mode: Mode;
  /** The mutation, for mode 'mutated'. */
  mutation?: string;
  /** Another device's account id placed in the body: a success is an isolation breach. */
  foreignAccount?: string;
  /** Whether the method's own schema accepts the body (checked here, before sending). */
  schemaValid: boolean;
}

export interface RequestMix {
  valid: number;
  mutated: number;
  random: number;
}

export const DEFAULT_MIX: RequestMix = { valid: 0.45, mutated: 0.4, random: 0.15 };

/** Bodies that fail the schema are drawn again this often before one is kept anyway. */
const VALID_ATTEMPTS = 3;

/** A random body, bigger than the valid-looking ones: any Value the codec carries. */
const randomBody: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(undefined),
  anyValue,
  fc.dictionary(fc.string({ maxLength: 12 }), anyValue, { maxKeys: 8, noNullPrototype: true }),
);

/** Method names near the real ones, and names that are properties of every object. */
function nearMissNames(real: readonly string[], rng: Rng): string {
  const base = rng.pick(real);
  const edits: (() => string)[] = [
    () => base.toUpperCase(),
    () => `${base} `,
    () => ` ${base}`,
    () => `${base}\u0000`,
    () => `${base}.`,
    () => base.replace('.', '..'),
    () => base.replace('.', '/'),
    () => base.split('.')[0] ?? base,
    () => `${base.split('.')[0]}.`,
    () => `${base}.${base}`,
    () => base.replace(/a/g, '\u0430'), // Cyrillic а
    () => rng.pick(PROTOTYPE_KEYS),
    () => `mail.${rng.pick(PROTOTYPE_KEYS)}`,
    () => `sys.${rng.pick(PROTOTYPE_KEYS)}`,
    () => rng.pick(EDGE_STRINGS) || 'x',
    () => 'x'.repeat(rng.pick([255, 256, 257, 4096, 65_536])),
    () => 'admin.devices',
    () => 'edge.close',
    () => 'transport.request',
    () => '*',
    () => '>',
  ];
  return rng.pick(edits)();
}

export class RequestGenerator {
  readonly #arbitraries = new Map<string, fc.Arbitrary<unknown>>();
  readonly #methods: readonly FuzzMethod[];
  readonly #names: string[];

  constructor(
    methods: readonly FuzzMethod[],
    readonly rng: Rng,
    readonly self: DeviceKnowledge,
    readonly shared: SharedKnowledge,
    readonly maxFrameBytes: () => number,
    readonly mix: RequestMix = DEFAULT_MIX,
  ) {
    this.#methods = methods;
    this.#names = methods.map((m) => m.method);
  }

  #sample<T>(arb: fc.Arbitrary<T>): T {
    return fc.sample(arb, { seed: this.rng.seedForSample(), numRuns: 1 })[0] as T;
  }

  #arbitrary(m: FuzzMethod): fc.Arbitrary<unknown> {
    let arb = this.#arbitraries.get(m.method);
    if (arb === undefined) {
      arb = arbitraryFor(m.input, knowledgeHints(m.method, this.self, this.shared));
      this.#arbitraries.set(m.method, arb);
    }
    return arb;
  }

  /** A valid-looking body for `m` (and whether the schema agrees). */
  validBody(m: FuzzMethod): { body: unknown; schemaValid: boolean } {
    let body: unknown;
    for (let i = 0; i < VALID_ATTEMPTS; i++) {
      body = this.#sample(this.#arbitrary(m));
      if (this.rng.chance(0.7)) correlate(m.method, body, this.self, (list) => this.rng.pick(list));
      if (m.input.safeParse(body).success) return { body, schemaValid: true };
    }
    return { body, schemaValid: false };
  }

  next(): FuzzRequest {
    const { rng } = this;
    const mode = rng.weighted<Mode>([
      ['valid', this.mix.valid],
      ['mutated', this.mix.mutated],
      ['random', this.mix.random],
    ]);
    if (mode === 'random') {
      const method = rng.chance(0.5) ? rng.pick(this.#names) : nearMissNames(this.#names, rng);
      const body = this.#sample(randomBody);
      const known = this.#methods.find((m) => m.method === method);
      return {
        method,
        body: body as Value | undefined,
        mode,
        schemaValid: known?.input.safeParse(body).success ?? false,
      };
    }
    const m = rng.pick(this.#methods);
    const valid = this.validBody(m);
    if (mode === 'valid') {
      return {
        method: m.method,
        body: valid.body as Value | undefined,
        mode,
        schemaValid: valid.schemaValid,
      };
    }
    const mutated = mutate(valid.body, {
      rng,
      maxFrameBytes: this.maxFrameBytes(),
      foreignAccounts: foreignAccounts(this.shared, this.self),
      randomValue: () => this.#sample(anyValue),
    });
    return {
      method: m.method,
      body: mutated.body as Value | undefined,
      mode,
      mutation: mutated.mutation,
      ...(mutated.foreignAccount === undefined ? {} : { foreignAccount: mutated.foreignAccount }),
      schemaValid: m.input.safeParse(mutated.body).success,
    };
  }
}
