/** `sys.echo`: answers with the body it got. Proves the request path end to end. */
import { z } from 'zod';
import type { Value } from '../../../device-protocol/messages.ts';
import type { MethodDefinition } from '../types.ts';

export const sysEcho: MethodDefinition<Value | undefined> = {
  method: 'sys.echo',
  // Whatever came: the bus codec already bounded and decoded it.
  input: z.custom<Value | undefined>(() => true),
  handle: async (_ctx, input) => input,
};
