/**
 * mail.account.add: logs in to IMAP and verifies SMTP (EHLO, STARTTLS, AUTH)
 * before anything is stored, so a stored account is one that worked.
 *
 * With `preset` (a label of the device's service profile, see mail.presets)
 * the handset gives only address, password and optionally user: the servers
 * come from the preset.
 */
import type { MailServerSettings, TlsMode } from '../account-store.ts';
import type { MailDeps } from '../deps.ts';
import { connectImap } from '../imap-session.ts';
import { asObject, bad, type Body, reqStr, str } from '../input.ts';
import { mailConnectError } from '../mail-errors.ts';
import { mailPreset, mailSettingsFromPreset } from '../presets.ts';
import { createSmtpTransport } from '../smtp.ts';
import type { MethodDefinition } from '../../types.ts';

export type AccountAddInput =
  | { address: string; name?: string; imap: MailServerSettings; smtp: MailServerSettings }
  | { address: string; name?: string; preset: string; user: string; password: string };

const TLS_MODES: TlsMode[] = ['none', 'starttls', 'implicit'];

function serverSettings(body: Body, which: 'imap' | 'smtp', fallbackUser: string): MailServerSettings {
  const s = asObject(body[which], which);
  const prefix = `${which}.`;
  const tls = reqStr(s, 'tls', { prefix, max: 20 }) as TlsMode;
  if (!TLS_MODES.includes(tls)) throw bad(`${which}.tls`, `must be one of ${TLS_MODES.join(', ')}`);
  const allow = s.allowInvalidCert;
  if (allow !== undefined && typeof allow !== 'boolean')
    throw bad(`${which}.allowInvalidCert`, 'must be a boolean');
  const host = reqStr(s, 'host', { prefix, max: 255 });
  const port = s.port;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw bad(`${which}.port`, 'must be an integer from 1 to 65535');
  }
  return {
    host,
    port,
    tls,
    user: str(s, 'user', { prefix, max: 320, optional: true }) || fallbackUser,
    password: reqStr(s, 'password', { prefix, max: 1000 }),
    ...(allow ? { allowInvalidCert: true } : {}),
  };
}

export function accountAddMethod(deps: MailDeps): MethodDefinition<AccountAddInput> {
  return {
    method: 'mail.account.add',
    validate(raw) {
      const body = asObject(raw);
      const address = reqStr(body, 'address', { max: 320 });
      if (!/^[^\s@]+@[^\s@]+$/.test(address)) throw bad('address', 'must be an e-mail address');
      const name = str(body, 'name', { max: 200, optional: true });
      const preset = str(body, 'preset', { max: 100, optional: true });
      if (preset !== undefined) {
        for (const field of ['imap', 'smtp'])
          if (body[field] !== undefined) throw bad(field, 'comes from the preset; give preset or servers');
        return {
          address,
          ...(name ? { name } : {}),
          preset,
          user: str(body, 'user', { max: 320, optional: true }) || address,
          password: reqStr(body, 'password', { max: 1000 }),
        };
      }
      const imap = serverSettings(body, 'imap', address);
      // The SMTP login defaults to the IMAP one (the usual case), password included.
      const smtpBody = asObject(body.smtp, 'smtp');
      const smtp = serverSettings(
        { smtp: { password: imap.password, ...smtpBody } } as Body,
        'smtp',
        imap.user,
      );
      return { address, ...(name ? { name } : {}), imap, smtp };
    },
    async handle(ctx, given) {
      const input =
        'preset' in given
          ? {
              address: given.address,
              ...(given.name ? { name: given.name } : {}),
              preset: given.preset,
              ...mailSettingsFromPreset(mailPreset(ctx.profile, given.preset), {
                user: given.user,
                password: given.password,
              }),
            }
          : given;
      const timeout = deps.connectTimeoutMs ?? 15_000;
      // A failed check is still a backend error in the device's log (no account id: nothing is stored).
      const failed = (err: unknown): never => {
        deps.usage?.({
          deviceId: ctx.deviceId,
          account: '',
          op: 'login',
          bytesIn: 0,
          bytesOut: 0,
          ok: false,
          code: (err as { code?: string }).code ?? 'internal',
        });
        throw err;
      };
      const client = await connectImap(input.imap, { connectTimeoutMs: timeout, logger: ctx.logger }).catch(
        failed,
      );
      const { sent, received } = client.stats();
      await client.logout().catch(() => client.close());
      const transport = createSmtpTransport(input.smtp, timeout);
      try {
        await transport.verify();
      } catch (err) {
        failed(mailConnectError(err, 'smtp'));
      } finally {
        transport.close();
      }
      const account = await deps.accounts.add(ctx.deviceId, input, ctx.now());
      deps.usage?.({
        deviceId: ctx.deviceId,
        account: account.id,
        op: 'login',
        bytesIn: received,
        bytesOut: sent,
        ok: true,
      });
      ctx.logger.info(
        { deviceId: ctx.deviceId, account: account.id, imapHost: input.imap.host, smtpHost: input.smtp.host },
        'mail account added',
      );
      return {
        account: account.id,
        address: account.address,
        ...(account.preset === undefined ? {} : { preset: account.preset }),
      };
    },
  };
}
