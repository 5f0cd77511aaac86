/**
 * Request bodies are untrusted: each MethodDefinition declares its `input` as
 * a zod schema with every limit in it (string lengths, list sizes, integer
 * ranges), and the dispatcher parses the body with it (parseMethodInput). The
 * first problem becomes GatewayError('request.bad_input', '<field>: <what>',
 * { field }), the field as a path (`imap.port`, `attachments[2].name`; `body`
 * for the body itself).
 *
 * One error map words every message (inputErrorMessage), so that mail, IM and
 * sys say the same thing the same way; a schema gives its own words only where
 * the generic ones say too little (a regex, a union, a cross-field rule).
 *
 * Conventions the helpers keep: an optional field that is null counts as
 * absent (handsets' JSON often carries nulls); a required one that is absent
 * or null "is required"; bytes (Uint8Array) are not an object.
 */
import { z } from 'zod';
import { GatewayError } from '../../../device-protocol/errors.ts';

/** What a value must be, by the type zod expected. */
const TYPE_WORDS: Record<string, string> = {
  string: 'must be a string',
  number: 'must be an integer',
  int: 'must be an integer',
  boolean: 'must be true or false',
  object: 'must be an object',
  array: 'must be a list',
};

/** The words of a zod issue for a handset; undefined leaves zod's own. */
export function inputErrorMessage(issue: z.core.$ZodRawIssue): string | undefined {
  switch (issue.code) {
    case 'invalid_type': {
      const absent = issue.input === undefined || issue.input === null;
      // "must be an object" says more than "is required" for a missing object, and a
      // boolean may be absent but not null.
      if (issue.expected === 'object' || issue.expected === 'array') return TYPE_WORDS[issue.expected];
      if (issue.input === undefined || (absent && issue.expected !== 'boolean')) return 'is required';
      return TYPE_WORDS[issue.expected] ?? `must be ${issue.expected}`;
    }
    case 'too_small': {
      const min = Number(issue.minimum);
      if (issue.origin === 'string')
        return min === 1 ? 'must not be empty' : `is shorter than ${min} characters`;
      if (issue.origin === 'array')
        return min === 1 ? 'must not be empty' : `must hold at least ${min} entries`;
      return `must be at least ${min}`;
    }
    case 'too_big': {
      const max = Number(issue.maximum);
      if (issue.origin === 'string') return `is longer than ${max} characters`;
      if (issue.origin === 'array') return `must hold at most ${max} entries`;
      return `must be at most ${max}`;
    }
    case 'invalid_value':
      return `must be one of ${issue.values.map(String).join(', ')}`;
    case 'invalid_format':
      return 'is malformed';
    default:
      return undefined;
  }
}

/** `imap.port`, `attachments[2].name`; the root is `root` (default `body`). */
export function fieldName(path: readonly PropertyKey[], root = 'body'): string {
  let name = '';
  for (const key of path) {
    if (typeof key === 'number') name = `${name || root}[${key}]`;
    else name = name ? `${name}.${String(key)}` : String(key);
  }
  return name || root;
}

/**
 * Parses `value` with `schema`; the first problem becomes request.bad_input
 * naming its field. `root` names the value itself (a transport request is not a body).
 */
export function parseInput<T>(schema: z.ZodType<T>, value: unknown, root = 'body'): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  // Again with the error map, only for the body refused: a per-parse map costs zod its fast
  // path (about 15 times slower), and every request passes here.
  const worded = schema.safeParse(value, { error: inputErrorMessage });
  const issue = (worded.success ? result : worded).error.issues[0];
  const field = fieldName(issue?.path ?? [], root);
  throw new GatewayError('request.bad_input', `${field}: ${issue?.message ?? 'is malformed'}`, { field });
}

/** The body of a method, parsed by its `input` schema (what the dispatcher does with every request). */
export function parseMethodInput<T>(definition: { input: z.ZodType<T> }, body: unknown): T {
  return parseInput(definition.input, body);
}

// ---- building blocks of the methods' schemas ----------------------------------------------

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);

/** Any object that is not a list or bytes, its fields unchecked (pipe it on). */
export const plainObject = z.custom<Record<string, unknown>>(isPlainObject, { error: 'must be an object' });

/** An object (not a list, not bytes) with these fields; fields not named are dropped. */
export function objectOf<S extends z.ZodRawShape>(shape: S) {
  return plainObject.pipe(z.object(shape));
}

/**
 * An either-or body: the fields of `given` when `key` is given (neither absent
 * nor null), else those of `absent`, each branch with its own required fields
 * and errors (a preset, or the servers it stands for). The output's `$given`
 * says which.
 */
export function eitherBy<G extends z.ZodRawShape, A extends z.ZodRawShape>(key: string, given: G, absent: A) {
  const branches = z.discriminatedUnion('$given', [
    z.object({ ...given, $given: z.literal(true) }),
    z.object({ ...absent, $given: z.literal(false) }),
  ]);
  // Anything but a plain object goes on as null: "must be an object", as objectOf says.
  return z.preprocess(
    (body) =>
      isPlainObject(body) ? { ...body, $given: body[key] !== undefined && body[key] !== null } : null,
    branches,
  );
}

/** A field that must not be given (null counts as given), in `words` when it is. */
export function mustBeAbsent(words: string) {
  return z.undefined({ error: words }).optional();
}

/** A body that is ignored, whatever it is (methods without input). */
export const noInput = z.unknown().transform(() => undefined);

/** A required, non-empty string of at most `max` characters. */
export function boundedString(max: number) {
  return z.string().min(1).max(max);
}

/** An optional string of at most `max` characters (empty allowed); null is absent. */
export function optionalString(max: number) {
  return absentIfNull(z.string().max(max));
}

/** A required integer from `min` to `max`. */
export function integer(min: number, max: number) {
  return z.number().int().min(min).max(max);
}

/** An optional integer from `min` to `max`; null is absent. */
export function optionalInteger(min: number, max: number) {
  return absentIfNull(integer(min, max));
}

/** An integer from `min` to `max`, `fallback` when absent or null. */
export function integerOr(min: number, max: number, fallback: number) {
  return integer(min, max)
    .nullish()
    .transform((v) => v ?? fallback);
}

/** An optional true or false; null is absent. */
export function optionalFlag() {
  return absentIfNull(z.boolean());
}

/** `schema`, or undefined when the value is absent or null. */
export function absentIfNull<T extends z.ZodType>(schema: T) {
  return schema.nullish().transform((v): z.output<T> | undefined => v ?? undefined);
}

export interface ListLimits {
  /** Most entries; checked before any entry is looked at. */
  max: number;
  /** Fewest entries. Default 0. */
  min?: number;
  /** Not a list (or absent, for a required one), by what came instead. Default "must be a list". */
  notList?: string | ((input: unknown) => string);
  /** Too few entries. */
  tooFew?: string;
  /** Too many. Default "must hold at most <max> entries". */
  tooMany?: string;
  /** A bad entry, reported on the list itself (the field is the list's name). */
  badEntry: string;
}

/**
 * A list of `entry`s with its size checked first: a list over the limit costs
 * no look at its entries. A bad entry is reported on the list (`uids`, not
 * `uids[3]`), in the list's own words.
 */
export function listOf<T>(entry: z.ZodType<T>, limits: ListLimits) {
  const min = limits.min ?? 0;
  const { notList } = limits;
  let list = z.array(
    z.unknown(),
    notList === undefined
      ? undefined
      : { error: (issue) => (typeof notList === 'string' ? notList : notList(issue.input)) },
  );
  if (min > 0) list = list.min(min, limits.tooFew === undefined ? undefined : { error: limits.tooFew });
  list = list.max(limits.max, limits.tooMany === undefined ? undefined : { error: limits.tooMany });
  return list.transform((values, ctx): T[] => {
    const out: T[] = [];
    for (const value of values) {
      const parsed = entry.safeParse(value);
      if (!parsed.success) {
        ctx.addIssue({ code: 'custom', message: limits.badEntry, input: value });
        return z.NEVER;
      }
      out.push(parsed.data);
    }
    return out;
  });
}
