/** `sys.info`: which transport node serves this device (shows routing at work). */
import type { MethodDefinition } from '../types.ts';

export function createSysInfo(nodeId: string): MethodDefinition<undefined> {
  return {
    method: 'sys.info',
    validate: () => undefined,
    handle: async () => ({ nodeId }),
  };
}
