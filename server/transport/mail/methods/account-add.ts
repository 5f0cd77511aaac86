/**
 * mail.account.add: logs in to IMAP and verifies SMTP (EHLO, STARTTLS, AUTH)
 * before anything is stored, so a stored account is one that worked.
 *
 * Before anything is connected: the device's account count against the
 * node's cap (policy.too_many_accounts), and both servers against the
 * outbound policy (policy.destination_not_allowed); the checks then connect
 * to the addresses the policy checked.
 *
 * With `preset` (a label of the device's service profile, see mail.presets)
 * the handset gives only address, password and optionally user: the servers
 * come from the preset.
 */
import { z } from 'zod';
import {
  boundedString,
  eitherBy,
  integer,
  mustBeAbsent,
  objectOf,
  optionalString,
} from '../../kit/method-input.ts';
import type { MailServerSettings, TlsMode } from '../account-store.ts';
import type { MailDeps } from '../deps.ts';
import type { PinnedDestination } from '../../../net/destination-policy.ts';
import { mailDestination } from '../destination.ts';
import { connectImap } from '../imap-session.ts';
import { mailConnectError } from '../mail-errors.ts';
import { assertAccountRoom } from '../../kit/outbound.ts';
import { servicePreset } from '../../kit/presets.ts';
import { mailPresets, mailSettingsFromPreset } from '../presets.ts';
import { createSmtpTransport, smtpWithin } from '../smtp.ts';
import type { MethodDefinition } from '../../types.ts';

export type AccountAddInput =
  | { address: string; name?: string; imap: MailServerSettings; smtp: MailServerSettings }
  | { address: string; name?: string; preset: string; user: string; password: string };

const TLS_MODES = ['none', 'starttls', 'implicit'] as const satisfies readonly TlsMode[];

const serverFields = {
  tls: z.enum(TLS_MODES),
  allowInvalidCert: z.boolean().optional(),
  host: boundedString(255),
  port: integer(1, 65535),
  user: optionalString(320),
};
const imapServer = objectOf({ ...serverFields, password: boundedString(1000) });
// The SMTP login defaults to the IMAP one (the usual case), password included.
const smtpServer = objectOf({ ...serverFields, password: boundedString(1000).optional() });

type ServerInput = z.output<typeof smtpServer>;

function serverSettings(s: ServerInput, user: string, password: string): MailServerSettings {
  return {
    host: s.host,
    port: s.port,
    tls: s.tls,
    user: s.user || user,
    password: s.password ?? password,
    ...(s.allowInvalidCert ? { allowInvalidCert: true } : {}),
  };
}

const comesFromPreset = mustBeAbsent('comes from the preset; give preset or servers');

const identity = {
  address: boundedString(320).regex(/^[^\s@]+@[^\s@]+$/, { error: 'must be an e-mail address' }),
  name: optionalString(200),
};

/** With `preset` the servers come from the device's service profile; without, the body gives both. */
const accountAddInput = eitherBy(
  'preset',
  {
    ...identity,
    preset: z.string().max(100),
    imap: comesFromPreset,
    smtp: comesFromPreset,
    user: optionalString(320),
    password: boundedString(1000),
  },
  { ...identity, imap: imapServer, smtp: smtpServer },
).transform((b): AccountAddInput => {
  const who = { address: b.address, ...(b.name ? { name: b.name } : {}) };
  if (b.$given) return { ...who, preset: b.preset, user: b.user || b.address, password: b.password };
  const imap = serverSettings(b.imap, b.address, b.imap.password);
  return { ...who, imap, smtp: serverSettings(b.smtp, imap.user, imap.password) };
});

export function accountAddMethod(deps: MailDeps): MethodDefinition<AccountAddInput> {
  return {
    method: 'mail.account.add',
    input: accountAddInput,
    async handle(ctx, given) {
      const input =
        'preset' in given
          ? {
              address: given.address,
              ...(given.name ? { name: given.name } : {}),
              preset: given.preset,
              ...mailSettingsFromPreset(servicePreset(mailPresets, ctx.profile, given.preset), {
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
      assertAccountRoom(deps.accounts.count(ctx.deviceId), deps.maxAccountsPerDevice);
      // Both looked up at once; IMAP's refusal wins when both are refused (the same answer every time).
      const [imapAt, smtpAt] = (
        await Promise.allSettled([
          mailDestination(deps.policy, 'imap', input.imap, ctx.logger),
          mailDestination(deps.policy, 'smtp', input.smtp, ctx.logger),
        ])
      ).map((r) => (r.status === 'fulfilled' ? r.value : failed(r.reason))) as [
        PinnedDestination,
        PinnedDestination,
      ];
      const client = await connectImap(input.imap, {
        policy: deps.policy,
        destination: imapAt,
        connectTimeoutMs: timeout,
        logger: ctx.logger,
      }).catch(failed);
      const { sent, received } = client.stats();
      await client.logout().catch(() => client.close());
      const smtp = createSmtpTransport(input.smtp, smtpAt, timeout);
      try {
        // Connect, greeting, TLS and login, within twice the connect timeout whatever the server does.
        await smtpWithin(smtp, 2 * timeout, () => smtp.transport.verify());
      } catch (err) {
        failed(mailConnectError(err, 'smtp', ctx.logger));
      } finally {
        smtp.close();
      }
      // Counted again with the write: adds of one device that raced the first check cannot pass the cap.
      const account = await deps.accounts.add(ctx.deviceId, input, ctx.now(), {
        maxPerDevice: deps.maxAccountsPerDevice,
      });
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
