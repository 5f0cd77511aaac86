import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { z } from 'zod';
import { GatewayError } from '../../../device-protocol/errors.ts';
import {
  boundedString,
  eitherBy,
  fieldName,
  integer,
  integerOr,
  listOf,
  mustBeAbsent,
  noInput,
  objectOf,
  optionalFlag,
  optionalInteger,
  optionalString,
  parseInput,
  parseMethodInput,
} from './method-input.ts';

/** The request.bad_input a parse throws, as {field, message}. */
function refusal(schema: z.ZodType, value: unknown): { field: string | undefined; message: string } {
  try {
    parseInput(schema, value);
  } catch (err) {
    assert.ok(err instanceof GatewayError);
    assert.equal(err.code, 'request.bad_input');
    return { field: err.field, message: err.message };
  }
  assert.fail(`${JSON.stringify(value)} was accepted`);
}

describe('method input (zod)', () => {
  test('field names are paths; the value itself is the root', () => {
    assert.equal(fieldName([]), 'body');
    assert.equal(fieldName([], 'request'), 'request');
    assert.equal(fieldName(['imap', 'port']), 'imap.port');
    assert.equal(fieldName(['attachments', 2, 'name']), 'attachments[2].name');
    assert.equal(fieldName([3]), 'body[3]');
  });

  test('strings: required, type, empty and the length limit, each in its own words', () => {
    const schema = objectOf({ name: boundedString(5) });
    assert.deepEqual(refusal(schema, {}), { field: 'name', message: 'name: is required' });
    assert.deepEqual(refusal(schema, { name: null }), { field: 'name', message: 'name: is required' });
    assert.deepEqual(refusal(schema, { name: 7 }), { field: 'name', message: 'name: must be a string' });
    assert.deepEqual(refusal(schema, { name: '' }), { field: 'name', message: 'name: must not be empty' });
    assert.deepEqual(refusal(schema, { name: 'abcdef' }), {
      field: 'name',
      message: 'name: is longer than 5 characters',
    });
    assert.deepEqual(
      parseInput(schema, { name: 'abcde', extra: 1 }),
      { name: 'abcde' },
      'unknown fields dropped',
    );
  });

  test('optional fields: absent or null is absent, empty allowed, the limit still holds', () => {
    const schema = objectOf({ note: optionalString(3), n: optionalInteger(1, 9), on: optionalFlag() });
    assert.deepEqual(parseInput(schema, {}), {});
    const nulls = parseInput(schema, { note: null, n: null, on: null });
    assert.deepEqual([nulls.note, nulls.n, nulls.on], [undefined, undefined, undefined]);
    assert.deepEqual(parseInput(schema, { note: '' }), { note: '' });
    assert.equal(refusal(schema, { note: 'abcd' }).field, 'note');
    assert.deepEqual(refusal(schema, { on: 'yes' }), { field: 'on', message: 'on: must be true or false' });
  });

  test('integers: a range, whole numbers only, a default for absent or null', () => {
    const schema = objectOf({ n: integer(1, 10), d: integerOr(0, 5, 3) });
    assert.deepEqual(parseInput(schema, { n: 10 }), { n: 10, d: 3 });
    assert.deepEqual(parseInput(schema, { n: 1, d: null }), { n: 1, d: 3 });
    assert.deepEqual(refusal(schema, { n: 0 }), { field: 'n', message: 'n: must be at least 1' });
    assert.deepEqual(refusal(schema, { n: 11 }), { field: 'n', message: 'n: must be at most 10' });
    assert.deepEqual(refusal(schema, { n: 1.5 }), { field: 'n', message: 'n: must be an integer' });
    assert.deepEqual(refusal(schema, { n: '3' }), { field: 'n', message: 'n: must be an integer' });
    assert.equal(refusal(schema, { n: 2, d: 6 }).field, 'd');
  });

  test('a body must be an object: not null, a list, a string or bytes', () => {
    const schema = objectOf({ a: optionalString(1) });
    for (const body of [undefined, null, [], 'x', 3, new Uint8Array([1])]) {
      assert.deepEqual(refusal(schema, body), { field: 'body', message: 'body: must be an object' });
    }
    assert.deepEqual(refusal(objectOf({ inner: objectOf({}) }), { inner: new Uint8Array(1) }), {
      field: 'inner',
      message: 'inner: must be an object',
    });
  });

  test('lists: the size is checked before any entry, a bad entry is reported on the list', () => {
    let looked = 0;
    const entry = z.number().refine(() => ++looked > 0);
    const schema = objectOf({ ids: listOf(entry, { max: 3, min: 1, badEntry: 'ids are numbers' }) });
    assert.deepEqual(refusal(schema, { ids: [1, 2, 3, 4] }), {
      field: 'ids',
      message: 'ids: must hold at most 3 entries',
    });
    assert.equal(looked, 0, 'no entry of an oversized list is looked at');
    assert.deepEqual(refusal(schema, { ids: [] }), { field: 'ids', message: 'ids: must not be empty' });
    assert.deepEqual(refusal(schema, { ids: [1, 'x'] }), { field: 'ids', message: 'ids: ids are numbers' });
    assert.deepEqual(refusal(schema, { ids: 'x' }), { field: 'ids', message: 'ids: must be a list' });
    assert.deepEqual(parseInput(schema, { ids: [1, 2, 3] }), { ids: [1, 2, 3] });
    const worded = listOf(z.string(), {
      max: 1,
      notList: (v) => (v === undefined ? 'missing' : 'wrong'),
      badEntry: '-',
    });
    assert.equal(refusal(objectOf({ l: worded }), {}).message, 'l: missing');
    assert.equal(refusal(objectOf({ l: worded }), { l: 1 }).message, 'l: wrong');
  });

  test('either-or bodies: each branch its own fields, chosen by whether the key is given', () => {
    const schema = eitherBy(
      'preset',
      { preset: z.string(), host: mustBeAbsent('comes from the preset') },
      { host: boundedString(10) },
    );
    assert.deepEqual(parseInput(schema, { preset: 'p' }), { preset: 'p', $given: true });
    assert.deepEqual(parseInput(schema, { preset: null, host: 'h' }), { host: 'h', $given: false });
    assert.deepEqual(refusal(schema, { preset: 'p', host: 'h' }), {
      field: 'host',
      message: 'host: comes from the preset',
    });
    assert.deepEqual(refusal(schema, { preset: 'p', host: null }), {
      field: 'host',
      message: 'host: comes from the preset',
    });
    assert.deepEqual(refusal(schema, {}), { field: 'host', message: 'host: is required' });
    assert.deepEqual(refusal(schema, new Uint8Array(2)), {
      field: 'body',
      message: 'body: must be an object',
    });
  });

  test('enums name what they take; nested paths keep list indexes', () => {
    const schema = objectOf({ items: z.array(objectOf({ kind: z.enum(['a', 'b']) })) });
    assert.deepEqual(refusal(schema, { items: [{ kind: 'a' }, { kind: 'c' }] }), {
      field: 'items[1].kind',
      message: 'items[1].kind: must be one of a, b',
    });
  });

  test('parseMethodInput parses with the definition’s schema; noInput ignores any body', () => {
    assert.equal(parseMethodInput({ input: noInput }, { anything: [1, 2] }), undefined);
    assert.deepEqual(parseMethodInput({ input: objectOf({ n: integer(0, 1) }) }, { n: 1 }), { n: 1 });
    assert.throws(() => parseMethodInput({ input: objectOf({ n: integer(0, 1) }) }, { n: 2 }), {
      code: 'request.bad_input',
      field: 'n',
    });
  });
});
