import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { z } from 'zod';
import {
  eitherBy,
  integer,
  integerOr,
  objectOf,
  optionalString,
} from '../../server/transport/kit/method-input.ts';
import { gatewayMethods } from './methods.ts';
import { arbitraryFor } from './schema-arbitrary.ts';

const sample = (schema: z.ZodType, n = 300, hint?: Parameters<typeof arbitraryFor>[1]) =>
  fc.sample(arbitraryFor(schema, hint), { seed: 42, numRuns: n });

const accepted = (schema: z.ZodType, bodies: unknown[]) =>
  bodies.filter((b) => schema.safeParse(b).success).length;

describe('schema arbitraries', () => {
  test('the kit’s building blocks: objects through the guard pipe, lengths, ranges, enums, optionals', () => {
    const schema = objectOf({
      name: z.string().min(2).max(5),
      port: integer(1, 65535),
      limit: integerOr(1, 500, 50),
      tls: z.enum(['none', 'starttls']),
      note: optionalString(10),
      id: z.string().regex(/^x[0-9a-f]{4}$/),
    });
    const bodies = sample(schema);
    assert.equal(accepted(schema, bodies), bodies.length);
    // Optional fields are sometimes left out, required ones never.
    assert.ok(bodies.some((b: any) => !('note' in b)));
    assert.ok(bodies.every((b: any) => 'name' in b && 'port' in b && 'id' in b));
    // The longest valid string comes up, not only short ones.
    assert.ok(bodies.some((b: any) => [...b.name].length === 5 || b.name.length === 5));
  });

  test('either-or bodies (eitherBy): both branches, and never the internal $given field', () => {
    const schema = eitherBy(
      'preset',
      { preset: z.string().max(10), user: z.string() },
      { host: z.string().min(1), port: integer(1, 9) },
    );
    const bodies = sample(schema);
    assert.ok(accepted(schema, bodies) > bodies.length * 0.9);
    assert.ok(bodies.some((b: any) => 'preset' in b) && bodies.some((b: any) => 'host' in b));
    assert.ok(bodies.every((b: any) => !('$given' in b)));
  });

  test('a hint replaces the walk below its field', () => {
    const schema = objectOf({ account: z.string().max(100), folder: z.string() });
    const bodies = sample(schema, 50, (path) =>
      path.join('.') === 'account' ? fc.constant('m42') : undefined,
    );
    assert.ok(bodies.every((b: any) => b.account === 'm42'));
    assert.ok(bodies.some((b: any) => b.folder !== 'm42'));
  });

  test('every method of the gateway gets bodies; most of those its schema can see into pass it', () => {
    const methods = gatewayMethods();
    assert.ok(methods.length >= 25, `${methods.length} methods`);
    for (const m of methods) {
      const bodies = sample(m.input, 100);
      assert.equal(bodies.length, 100, m.method);
      // Lists whose entries hide in a closure (uids, recipients) and JIDs need the device's hints.
      if (/^(mail\.(send|flag|move|delete)|im\.(login|send|contact|subscription|typing))/.test(m.method))
        continue;
      assert.ok(accepted(m.input, bodies) >= 70, `${m.method}: ${accepted(m.input, bodies)} of 100 pass`);
    }
  });
});
