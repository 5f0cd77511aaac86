/** `sys.echo`: answers with the body it got. Proves the request path end to end. */
import type { Value } from '../../../device-protocol/messages.ts';
import type { MethodDefinition } from '../types.ts';

export const sysEcho: MethodDefinition<Value | undefined> = {
  method: 'sys.echo',
  validate: (body) => body as Value | undefined,
  handle: async (_ctx, input) => input,
};
