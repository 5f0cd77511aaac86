/**
 * Mail accounts an operator provisioned for a device (admin API, `mmgw device
 * account set`): when the device's session comes up, the transport keeps its
 * own store in step with the registry and brings each account online, with
 * no mail.account.add from the handset.
 *
 * - New or changed (password, user, preset servers): stored under an id
 *   derived from device and label (so the same account keeps its id), its
 *   IMAP session opened, and `mail.account.added {account, address, preset,
 *   provisioned: true, state}` pushed.
 * - Unchanged: its IMAP session opened if it was not; the pool's
 *   `mail.account.state` pushes say so.
 * - Gone from the registry (or its preset or the mail service from the
 *   profile): removed, and `mail.account.removed {account, preset,
 *   provisioned: true}` pushed.
 */
import { createHash } from 'node:crypto';
import { toGatewayError } from '../../../device-protocol/errors.ts';
import {
  findPreset,
  type ProvisionedAccount,
  provisionedSecretContext,
  serviceAllowed,
} from '../../store/device-profile.ts';
import type { ProvisionOptions } from '../service-profile.ts';
import type { MailAccount, MailServerSettings } from './account-store.ts';
import type { MailDeps } from './deps.ts';
import { isMailPreset, mailSettingsFromPreset } from './presets.ts';

export function provisionedMailAccountId(deviceId: string, label: string): string {
  return (
    'm' + createHash('sha256').update(`${deviceId}\u0000provisioned\u0000${label}`).digest('hex').slice(0, 16)
  );
}

const sameServer = (a: MailServerSettings, b: MailServerSettings) =>
  a.host === b.host &&
  a.port === b.port &&
  a.tls === b.tls &&
  a.user === b.user &&
  a.password === b.password &&
  Boolean(a.allowInvalidCert) === Boolean(b.allowInvalidCert);

export async function provisionMailAccounts(deps: MailDeps, o: ProvisionOptions): Promise<void> {
  const { deviceId, profile, logger } = o;
  const wanted = new Map<string, Omit<MailAccount, 'id' | 'deviceId' | 'createdAt'>>();
  // Listed but not usable now (a secret this node cannot open): left as it is, not removed.
  const listed = new Set<string>();
  for (const p of serviceAllowed(profile, 'mail') ? profile.accounts : []) {
    if (p.service !== 'mail' || !findPreset(profile, 'mail', p.label)) continue;
    const id = provisionedMailAccountId(deviceId, p.label);
    listed.add(id);
    const settings = resolve(p, o);
    if (settings) wanted.set(id, settings);
  }

  const local = new Map(deps.accounts.list(deviceId).map((a) => [a.id, a]));
  for (const [id, account] of local) {
    if (!account.provisioned || listed.has(id)) continue;
    await deps.watchers?.stop(id);
    await deps.sessions.drop(id);
    await deps.accounts.remove(deviceId, id);
    logger?.info({ deviceId, account: id, preset: account.preset }, 'provisioned mail account removed');
    await o
      .push('mail.account.removed', { account: id, preset: account.preset ?? '', provisioned: true })
      .catch(() => 0);
  }

  await Promise.all(
    [...wanted].map(async ([id, settings]) => {
      const before = local.get(id);
      const changed =
        before === undefined ||
        before.address !== settings.address ||
        before.preset !== settings.preset ||
        !before.provisioned ||
        !sameServer(before.imap, settings.imap) ||
        !sameServer(before.smtp, settings.smtp);
      let account = before;
      if (changed) {
        await deps.watchers?.stop(id);
        await deps.sessions.drop(id);
        account = await deps.accounts.put(deviceId, id, settings, o.now());
        logger?.info({ deviceId, account: id, preset: settings.preset }, 'provisioned mail account stored');
      } else if (deps.sessions.state(id) === 'online') {
        return;
      }
      // Bring it online now: the pool pushes mail.account.state (connecting, online or auth_failed).
      await deps.sessions
        .use(account as MailAccount, 'noop', (client) => client.noop())
        .catch((err) =>
          logger?.warn(
            { deviceId, account: id, code: toGatewayError(err).code },
            'provisioned mail account not online',
          ),
        );
      if (changed) {
        await o
          .push('mail.account.added', {
            account: id,
            address: settings.address,
            preset: settings.preset ?? '',
            provisioned: true,
            state: deps.sessions.state(id),
          })
          .catch(() => 0);
      }
    }),
  );
}

/** The account's settings from its preset, or undefined (logged) when it cannot be used. */
function resolve(
  p: ProvisionedAccount,
  o: ProvisionOptions,
): Omit<MailAccount, 'id' | 'deviceId' | 'createdAt'> | undefined {
  const preset = findPreset(o.profile, 'mail', p.label);
  if (preset === undefined || !isMailPreset(preset)) {
    o.logger?.warn(
      { deviceId: o.deviceId, preset: p.label },
      'provisioned mail account has no usable preset',
    );
    return undefined;
  }
  let password: string;
  try {
    password = o.open(p.secret, provisionedSecretContext(o.deviceId, p.label));
  } catch (err) {
    // Most likely the admin sealed it with another key: MMGW_CREDENTIALS_KEY must be the same on admin and transport nodes.
    o.logger?.warn(
      {
        deviceId: o.deviceId,
        preset: p.label,
        code: toGatewayError(err).code,
        err: String((err as Error).message),
      },
      'provisioned mail password cannot be opened',
    );
    return undefined;
  }
  return {
    address: p.address ?? p.user,
    preset: p.label,
    provisioned: true,
    ...mailSettingsFromPreset(preset, { user: p.user, password }),
  };
}
