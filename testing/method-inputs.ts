/**
 * Parses request bodies with a service's MethodDefinitions as the transport's
 * dispatcher does, for the tests of their input schemas.
 */
import assert from 'node:assert/strict';
import { GatewayError } from '../device-protocol/errors.ts';
import { parseMethodInput } from '../server/transport/kit/method-input.ts';
import type { MethodDefinition } from '../server/transport/types.ts';

export function methodInputs(definitions: MethodDefinition<any>[]) {
  const byName = new Map(definitions.map((m) => [m.method, m]));
  const parse = (method: string, body: unknown): any => {
    const definition = byName.get(method);
    assert.ok(definition, `no method ${method}`);
    return parseMethodInput(definition, body);
  };
  return {
    parse,
    /** The field a body is refused for; fails unless it is request.bad_input whose message starts with the field. */
    refusedField(method: string, body: unknown): string | undefined {
      try {
        parse(method, body);
      } catch (err) {
        assert.ok(err instanceof GatewayError && err.code === 'request.bad_input', String(err));
        assert.ok(err.message.startsWith(`${err.field}: `), err.message);
        return err.field;
      }
      assert.fail(`${method} accepted ${JSON.stringify(body)}`);
    },
  };
}
