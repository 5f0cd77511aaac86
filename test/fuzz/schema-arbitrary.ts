/**
 * Valid-looking request bodies from a method's zod `input` schema: a
 * fast-check arbitrary built by walking the schema (zod 4 internals,
 * `schema._zod.def`), honouring the limits the schema states (string
 * lengths, regexes, integer ranges, enums, required and optional fields).
 *
 * Why not z.toJSONSchema: the methods' schemas are mostly pipes from a
 * z.custom guard into an object (kit/method-input.ts objectOf) or preprocess
 * steps, which JSON Schema in "input" mode cannot see through; walking the
 * definition can.
 *
 * What a schema hides in a closure (a listOf entry, a refine, a transform
 * that parses a JID) is not visible: such places get a hint (`hint(path)`,
 * the caller's knowledge of the field, e.g. a real account id) or an
 * arbitrary Value. So "valid-looking": most bodies pass the schema, some do
 * not, and the caller can check with the schema itself.
 */
import fc from 'fast-check';
import type { z } from 'zod';

/** An arbitrary for the field at `path` (names from the body's root), or undefined to walk the schema. */
export type FieldHint = (path: readonly string[]) => fc.Arbitrary<unknown> | undefined;

/** Longest string a "valid-looking" body gets by default: limits are probed by the mutations. */
const TYPICAL_STRING = 40;
/** Longest list a "valid-looking" body gets. */
const TYPICAL_LIST = 6;

/** Any small Value (the codec's types): what a field of unknown shape gets. */
export const anyValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', maxDepth: 3 },
    fc.constant(null),
    fc.boolean(),
    fc.integer({ min: -1000, max: 100_000 }),
    fc.double(),
    fc.string({ maxLength: 30 }),
    fc.uint8Array({ maxLength: 32 }),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 10 }), tie('value'), { maxKeys: 4, noNullPrototype: true }),
  ),
})).value;

type Def = Record<string, any> & { type: string };

function defOf(schema: unknown): Def {
  return (schema as { _zod: { def: Def } })._zod.def;
}

interface Bounds {
  min?: number;
  max?: number;
  minInclusive: boolean;
  maxInclusive: boolean;
  integer: boolean;
  pattern?: RegExp;
}

function boundsOf(def: Def): Bounds {
  const b: Bounds = { minInclusive: true, maxInclusive: true, integer: false };
  for (const check of (def.checks ?? []) as unknown[]) {
    const c = defOf(check) as Def & { check?: string };
    switch (c.check) {
      case 'min_length':
        b.min = c.minimum;
        break;
      case 'max_length':
        b.max = c.maximum;
        break;
      case 'length_equals':
        b.min = c.length;
        b.max = c.length;
        break;
      case 'greater_than':
        b.min = Number(c.value);
        b.minInclusive = c.inclusive;
        break;
      case 'less_than':
        b.max = Number(c.value);
        b.maxInclusive = c.inclusive;
        break;
      case 'number_format':
        if (c.format === 'safeint' || c.format === 'int32' || c.format === 'uint32') b.integer = true;
        break;
      case 'string_format':
        if (c.format === 'regex' && c.pattern instanceof RegExp) b.pattern = c.pattern;
        break;
    }
  }
  // z.int() and friends carry the format on the schema itself.
  if (def.format === 'safeint' || def.format === 'int32' || def.format === 'uint32') b.integer = true;
  return b;
}

function stringArbitrary(def: Def): fc.Arbitrary<string> {
  const b = boundsOf(def);
  const min = b.min ?? 0;
  const max = b.max ?? Number.POSITIVE_INFINITY;
  if (b.pattern !== undefined) {
    const fits = (s: string) => s.length >= min && s.length <= max;
    // A regex with a length limit: most matches fit; the odd one that does not is dropped.
    return fc.stringMatching(b.pattern).filter(fits);
  }
  const typicalMax = Math.max(min, Math.min(max, TYPICAL_STRING));
  // zod counts UTF-16 code units and a grapheme may take several: cut to the limit (a surrogate
  // pair cut in half is one more edge case) and pad to the minimum.
  const typical = fc
    .string({ minLength: min, maxLength: typicalMax, unit: 'grapheme' })
    .map((s) => s.slice(0, max).padEnd(min, 'a'));
  if (!Number.isFinite(max)) return typical;
  // Now and then exactly at the limit: the longest valid value.
  const longest = fc.constantFrom('a', 'é', '😀').map((c) => c.repeat(Math.floor(max / c.length)));
  return fc.oneof({ arbitrary: typical, weight: 9 }, { arbitrary: longest, weight: 1 });
}

function numberArbitrary(def: Def): fc.Arbitrary<number> {
  const b = boundsOf(def);
  if (b.integer) {
    let min = b.min ?? Number.MIN_SAFE_INTEGER;
    let max = b.max ?? Number.MAX_SAFE_INTEGER;
    if (!b.minInclusive) min = Math.floor(min) + 1;
    if (!b.maxInclusive) max = Math.ceil(max) - 1;
    min = Math.max(Math.ceil(min), Number.MIN_SAFE_INTEGER);
    max = Math.min(Math.floor(max), Number.MAX_SAFE_INTEGER);
    const edges = [...new Set([min, max, Math.min(max, min + 1)])];
    return fc.oneof({ arbitrary: fc.integer({ min, max }), weight: 4 }, fc.constantFrom(...edges));
  }
  return fc.double({
    noNaN: true,
    noDefaultInfinity: true,
    ...(b.min === undefined ? {} : { min: b.min, minExcluded: !b.minInclusive }),
    ...(b.max === undefined ? {} : { max: b.max, maxExcluded: !b.maxInclusive }),
  });
}

/** Does the schema accept an absent value (so the field may be left out)? */
function acceptsAbsent(schema: unknown): boolean {
  const def = defOf(schema);
  switch (def.type) {
    case 'optional':
    case 'default':
    case 'prefault':
    case 'undefined':
    case 'unknown':
    case 'any':
    case 'custom':
      return true;
    case 'nullable':
    case 'readonly':
    case 'catch':
      return acceptsAbsent(def.innerType);
    case 'pipe':
      // A preprocess step may turn absence into something (stringList: [] for an absent optional list).
      return defOf(def.in).type === 'transform' ? acceptsAbsent(def.out) : acceptsAbsent(def.in);
    case 'union':
      return (def.options as unknown[]).some(acceptsAbsent);
    default:
      return false;
  }
}

/**
 * A fast-check arbitrary of bodies that `schema` probably accepts. `hint`
 * is asked first for every field (by its path); what it returns replaces the
 * walk below that field.
 */
export function arbitraryFor(schema: unknown, hint: FieldHint = () => undefined): fc.Arbitrary<unknown> {
  return walk(schema, [], hint);
}

function walk(schema: unknown, path: readonly string[], hint: FieldHint): fc.Arbitrary<unknown> {
  if (path.length > 0) {
    const hinted = hint(path);
    if (hinted !== undefined) return hinted;
  }
  const def = defOf(schema);
  switch (def.type) {
    case 'string':
      return stringArbitrary(def);
    case 'number':
    case 'int':
      return numberArbitrary(def);
    case 'bigint':
      return fc.integer();
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'undefined':
    case 'void':
      return fc.constant(undefined);
    case 'literal':
      return fc.constantFrom(...(def.values as unknown[]));
    case 'enum':
      return fc.constantFrom(...Object.values(def.entries as Record<string, unknown>));
    case 'optional':
    case 'default':
    case 'prefault':
      return fc.option(walk(def.innerType, path, hint), { nil: undefined, freq: 3 });
    case 'nullable':
      return fc.option(walk(def.innerType, path, hint), { nil: null, freq: 4 });
    case 'readonly':
    case 'catch':
    case 'nonoptional':
      return walk(def.innerType, path, hint);
    case 'lazy':
      return walk(def.getter(), path, hint);
    case 'pipe': {
      // preprocess(fn, out): what `out` wants; custom guard → object (objectOf): the object;
      // x.transform(fn): what `x` wants.
      const inType = defOf(def.in).type;
      if (inType === 'transform' || inType === 'custom') return walk(def.out, path, hint);
      return walk(def.in, path, hint);
    }
    case 'object':
      return objectArbitrary(def, path, hint);
    case 'array': {
      const b = boundsOf(def);
      const minLength = b.min ?? 0;
      const maxLength = Math.max(minLength, Math.min(b.max ?? TYPICAL_LIST, TYPICAL_LIST));
      return fc.array(walk(def.element, [...path, '[]'], hint), { minLength, maxLength });
    }
    case 'tuple':
      return fc.tuple(...(def.items as unknown[]).map((item, i) => walk(item, [...path, `[${i}]`], hint)));
    case 'record':
      return fc.dictionary(fc.string({ maxLength: 12 }), walk(def.valueType, [...path, '*'], hint), {
        maxKeys: 4,
        noNullPrototype: true,
      });
    case 'union':
      return fc.oneof(...(def.options as unknown[]).map((o) => walk(o, path, hint)));
    case 'intersection':
      return walk(def.left, path, hint);
    default:
      // custom, unknown, any, transform, …: nothing to go by.
      return anyValue;
  }
}

function objectArbitrary(def: Def, path: readonly string[], hint: FieldHint): fc.Arbitrary<unknown> {
  const shape = def.shape as Record<string, z.ZodType>;
  const model: Record<string, fc.Arbitrary<unknown>> = {};
  const requiredKeys: string[] = [];
  for (const [key, field] of Object.entries(shape)) {
    // eitherBy's discriminator is set by its own preprocess step; a handset never sends it.
    if (key.startsWith('$')) continue;
    model[key] = walk(field, [...path, key], hint);
    if (!acceptsAbsent(field)) requiredKeys.push(key);
  }
  return fc
    .record(model, { requiredKeys, noNullPrototype: true })
    .map((o) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)));
}
