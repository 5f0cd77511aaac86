/**
 * im.login: connects (SASL, bind, stream management, carbons, roster) and
 * stores the account, password sealed, only once the session is online, so a
 * stored account is one that worked. The same JID again updates the account.
 * With `preset` (a label of the device's service profile, see im.presets) the
 * server comes from the preset instead of host/port.
 */
import type { MethodDefinition } from '../../types.ts';
import { imAccountId } from '../account-store.ts';
import type { ImDeps } from '../deps.ts';
import { z } from 'zod';
import {
  boundedString,
  eitherBy,
  mustBeAbsent,
  optionalInteger,
  optionalString,
} from '../../kit/method-input.ts';
import { bareJid } from '../fields.ts';
import { servicePreset } from '../../kit/presets.ts';
import { imPresets, imServerFromPreset } from '../presets.ts';

export interface ImLoginInput {
  jid: string;
  password: string;
  host?: string;
  port?: number;
  preset?: string;
}

const account = { jid: bareJid, password: boundedString(1024) };

/** With `preset` the server comes from the device's service profile; without, from host/port or DNS SRV. */
const loginInput = eitherBy(
  'preset',
  {
    ...account,
    preset: z.string().max(100),
    host: mustBeAbsent('comes from the preset; give preset or host'),
    port: mustBeAbsent('comes from the preset; give preset or port'),
  },
  {
    ...account,
    host: optionalString(255).refine((host) => host === undefined || /^[A-Za-z0-9.\-:[\]]+$/.test(host), {
      error: 'must be a host name or IP address',
    }),
    port: optionalInteger(1, 65535),
  },
)
  .superRefine((b, ctx) => {
    if (!b.$given && b.port !== undefined && b.host === undefined) {
      ctx.addIssue({ code: 'custom', path: ['port'], message: 'needs host as well' });
    }
  })
  .transform(({ jid, password, ...b }): ImLoginInput => {
    if (b.$given) return { jid, password, preset: b.preset };
    return {
      jid,
      password,
      ...(b.host === undefined ? {} : { host: b.host }),
      ...(b.port === undefined ? {} : { port: b.port }),
    };
  });

export function imLoginMethod(deps: ImDeps): MethodDefinition<ImLoginInput> {
  return {
    method: 'im.login',
    input: loginInput,
    async handle(ctx, given) {
      const input =
        given.preset === undefined
          ? given
          : {
              ...given,
              ...imServerFromPreset(servicePreset(imPresets, ctx.profile, given.preset), given.jid),
            };
      deps.sessions.setPusher(ctx.deviceId, ctx.push, ctx.caps ?? {});
      const now = ctx.now();
      // The id derives from device and JID: the same JID again updates the one account.
      const id = imAccountId(ctx.deviceId, input.jid);
      const candidate = {
        id,
        deviceId: ctx.deviceId,
        ...input,
        createdAt: now,
        updatedAt: now,
      };
      await deps.sessions.open(candidate);
      const account = await deps.accounts.put(ctx.deviceId, id, input, now);
      ctx.logger.info({ account: account.id, jid: account.jid }, 'im account online');
      return {
        account: account.id,
        jid: account.jid,
        state: 'online',
        ...(account.preset === undefined ? {} : { preset: account.preset }),
      };
    },
  };
}
