/**
 * Chat accounts an operator provisioned for a device (admin API, `mmgw device
 * account set`): when the device's session comes up, the transport keeps its
 * own store in step with the registry, with no im.login from the handset.
 *
 * - New or changed (password, JID, preset server): stored (the id derives
 *   from device and JID, as for im.login), its XMPP session opened, and
 *   `im.online {account, jid, state, preset, provisioned: true}` pushed once
 *   it is online (a failure comes as the usual im.state).
 * - Unchanged: left to restoreDevice, which brings stored accounts back.
 * - Gone from the registry (or its preset or the im service from the
 *   profile): logged out, removed, `im.logged_out {account, preset,
 *   provisioned: true}` pushed.
 */
import { toGatewayError } from '../../../device-protocol/errors.ts';
import { findPreset, provisionedSecretContext, serviceAllowed } from '../../store/device-profile.ts';
import { type ImAccountSettings, imAccountId } from './account-store.ts';
import type { ProvisionOptions } from '../service-profile.ts';
import type { ImDeps } from './deps.ts';
import { imServerFromPreset } from './presets.ts';

export interface ImProvisionOptions extends ProvisionOptions {
  /** How long to wait for a new account's first login before moving on. Default 10 s. */
  firstLoginMs?: number;
}

export async function provisionImAccounts(deps: ImDeps, o: ImProvisionOptions): Promise<void> {
  const { deviceId, profile, logger } = o;
  const wanted = new Map<string, ImAccountSettings>();
  const listed = new Set<string>();
  for (const p of serviceAllowed(profile, 'im') ? profile.accounts : []) {
    const preset = p.service === 'im' ? findPreset(profile, 'im', p.label) : undefined;
    if (preset === undefined) continue;
    const jid = p.user.toLowerCase();
    const id = imAccountId(deviceId, jid);
    listed.add(id);
    try {
      const password = o.open(p.secret, provisionedSecretContext(deviceId, p.label));
      wanted.set(id, {
        jid,
        password,
        ...imServerFromPreset(preset, jid),
        preset: p.label,
        provisioned: true,
      });
    } catch (err) {
      // A secret this node cannot open (another credentials key?) or a JID off the preset's domain.
      logger?.warn(
        { deviceId, preset: p.label, code: toGatewayError(err).code, err: String((err as Error).message) },
        'provisioned chat account not usable',
      );
    }
  }

  const local = new Map(deps.accounts.list(deviceId).map((a) => [a.id, a]));
  for (const [id, account] of local) {
    if (!account.provisioned || listed.has(id)) continue;
    await deps.sessions.close(id);
    deps.sessions.recordLogout(account);
    await deps.accounts.remove(deviceId, id);
    logger?.info({ deviceId, account: id, preset: account.preset }, 'provisioned chat account removed');
    await o
      .push('im.logged_out', { account: id, preset: account.preset ?? '', provisioned: true })
      .catch(() => 0);
  }

  await Promise.all(
    [...wanted].map(async ([id, settings]) => {
      const before = local.get(id);
      const unchanged =
        before?.provisioned &&
        before.password === settings.password &&
        before.host === settings.host &&
        before.port === settings.port &&
        before.preset === settings.preset;
      if (unchanged) return;
      const account = await deps.accounts.put(deviceId, settings, o.now());
      logger?.info({ deviceId, account: id, preset: settings.preset }, 'provisioned chat account stored');
      // persistent: an unreachable server is retried in the background (im.state tells the device).
      const started = deps.sessions.open(account, { persistent: true });
      let timer: NodeJS.Timeout | undefined;
      const online = await Promise.race([
        started.then(
          () => true,
          () => false,
        ),
        new Promise<boolean>((r) => {
          timer = setTimeout(() => r(false), o.firstLoginMs ?? 10_000);
        }),
      ]).finally(() => clearTimeout(timer));
      if (!online) return;
      await o
        .push('im.online', {
          account: id,
          jid: account.jid,
          state: 'online',
          preset: settings.preset ?? '',
          provisioned: true,
        })
        .catch(() => 0);
    }),
  );
}
