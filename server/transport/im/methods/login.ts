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
import { asObject, bad, bareJidField, optInt, optStr, reqStr } from '../input.ts';
import { imPreset, imServerFromPreset } from '../presets.ts';

export interface ImLoginInput {
  jid: string;
  password: string;
  host?: string;
  port?: number;
  preset?: string;
}

export function imLoginMethod(deps: ImDeps): MethodDefinition<ImLoginInput> {
  return {
    method: 'im.login',
    validate(raw) {
      const body = asObject(raw);
      const input: ImLoginInput = {
        jid: bareJidField(body, 'jid'),
        password: reqStr(body, 'password', 1024),
      };
      const preset = optStr(body, 'preset', 100);
      if (preset !== undefined) {
        if (body.host !== undefined) throw bad('host', 'comes from the preset; give preset or host');
        if (body.port !== undefined) throw bad('port', 'comes from the preset; give preset or port');
        return { ...input, preset };
      }
      const host = optStr(body, 'host', 255);
      if (host !== undefined) {
        if (!/^[A-Za-z0-9.\-:[\]]+$/.test(host)) throw bad('host', 'must be a host name or IP address');
        input.host = host;
      }
      const port = optInt(body, 'port', 1, 65535);
      if (port !== undefined) {
        if (host === undefined) throw bad('port', 'needs host as well');
        input.port = port;
      }
      return input;
    },
    async handle(ctx, given) {
      const input =
        given.preset === undefined
          ? given
          : { ...given, ...imServerFromPreset(imPreset(ctx.profile, given.preset), given.jid) };
      deps.sessions.setPusher(ctx.deviceId, ctx.push, ctx.caps ?? {});
      const now = ctx.now();
      const candidate = {
        id: imAccountId(ctx.deviceId, input.jid),
        deviceId: ctx.deviceId,
        ...input,
        createdAt: now,
        updatedAt: now,
      };
      await deps.sessions.open(candidate);
      const account = await deps.accounts.put(ctx.deviceId, input, now);
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
