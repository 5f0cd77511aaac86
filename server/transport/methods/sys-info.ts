/** `sys.info`: which transport node serves this device (shows routing at work). */
import { noInput } from '../kit/method-input.ts';
import type { MethodDefinition } from '../types.ts';

export function createSysInfo(nodeId: string): MethodDefinition<undefined> {
  return {
    method: 'sys.info',
    input: noInput,
    handle: async () => ({ nodeId }),
  };
}
