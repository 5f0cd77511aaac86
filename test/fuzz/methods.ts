/**
 * The methods a gateway answers for devices, with their input schemas, as
 * the transport role builds them (sys.*, then the mail and IM services):
 * a method added to a service is fuzzed without touching the fuzzer.
 *
 * The services' factories take their dependencies (stores, sessions) but
 * only use them in `handle`: building the list with none is what the
 * services' own input tests do.
 */
import type { z } from 'zod';
import { defaultMethods } from '../../server/transport/index.ts';
import type { ImDeps } from '../../server/transport/im/deps.ts';
import { imMethods } from '../../server/transport/im/index.ts';
import type { MailDeps } from '../../server/transport/mail/deps.ts';
import { mailMethods } from '../../server/transport/mail/index.ts';

export type Service = 'sys' | 'mail' | 'im';

export interface FuzzMethod {
  method: string;
  service: Service;
  input: z.ZodType;
}

export function gatewayMethods(): FuzzMethod[] {
  const definitions = [...defaultMethods('fuzz'), ...mailMethods({} as MailDeps), ...imMethods({} as ImDeps)];
  return definitions.map((d) => ({
    method: d.method,
    service: d.method.slice(0, d.method.indexOf('.')) as Service,
    input: d.input,
  }));
}
