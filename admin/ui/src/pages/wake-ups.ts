/**
 * Wake-ups in the console (issue 14): a device's wake-up channels, redacted,
 * each with a remove button (from the devices page), and the usage report's
 * table of wake-ups per channel kind.
 */
import { api, can } from '../api.ts';
import { dialog, formatTime, h, mount, toast } from '../dom.ts';

interface WakeupChannel {
  id: string;
  kind: string;
  registeredAt: number;
  usedAt?: number;
  channel: string;
}

export interface WakeupFigures {
  channel: string;
  sent: number;
  failed: number;
  pruned: number;
  latency?: { meanSeconds: number; p50Seconds: number | null; p99Seconds: number | null };
}

const KIND_NAMES: Record<string, string> = { webpush: 'Web Push', fcm: 'FCM', apns: 'APNs', sms: 'SMS' };
const kindName = (kind: string) => KIND_NAMES[kind] ?? kind;

/** The device's wake-up channels in a dialog; an operator may remove one. */
export function wakeupChannelsDialog(imei: string): Promise<void> {
  return dialog(`Wake-up channels of ${imei}`, () => {
    const box = h('div', { id: 'wakeup-channels' }, h('p', { class: 'hint' }, 'Loading…'));
    const load = async () => {
      let items: WakeupChannel[];
      try {
        items = (await api<{ items: WakeupChannel[] }>(`/devices/${imei}/wakeup-channels`)).items;
      } catch (err) {
        mount(box, h('div', { class: 'error-box' }, `Could not load them: ${(err as Error).message}`));
        return;
      }
      const remove = async (c: WakeupChannel) => {
        if (
          !confirm(
            `Remove the ${kindName(c.kind)} channel ${c.channel}? The device is no longer woken through it.`,
          )
        )
          return;
        try {
          await api(`/devices/${imei}/wakeup-channels/${encodeURIComponent(c.id)}`, { method: 'DELETE' });
          toast(`Wake-up channel ${c.id} removed`);
        } catch (err) {
          toast((err as Error).message, 'error');
        }
        await load();
      };
      mount(
        box,
        h(
          'table',
          { id: 'wakeup-channel-table' },
          h(
            'thead',
            null,
            h(
              'tr',
              null,
              ['Kind', 'Channel', 'Registered', 'Last use (noted daily)', 'Id', ''].map((t) =>
                h('th', null, t),
              ),
            ),
          ),
          h(
            'tbody',
            null,
            items.length === 0
              ? h('tr', null, h('td', { colspan: 6, class: 'empty' }, 'No wake-up channels.'))
              : items.map((c) =>
                  h(
                    'tr',
                    { 'data-id': c.id, 'data-kind': c.kind },
                    h('td', null, kindName(c.kind)),
                    h('td', { class: 'mono' }, c.channel),
                    h('td', null, formatTime(c.registeredAt)),
                    h('td', null, formatTime(c.usedAt)),
                    h('td', { class: 'mono' }, c.id),
                    h(
                      'td',
                      { class: 'actions' },
                      can('write-devices') &&
                        h(
                          'button',
                          { class: 'small danger', type: 'button', onclick: () => void remove(c) },
                          'Remove',
                        ),
                    ),
                  ),
                ),
          ),
        ),
        h(
          'p',
          { class: 'hint' },
          'Only part of what names a channel is shown: its keys and whole tokens are credentials.',
        ),
      );
    };
    void load();
    return box;
  });
}

const seconds = (s: number | null | undefined) =>
  s === undefined ? '—' : s === null ? '> 60 s' : `≤ ${s} s`;

/** The usage report's wake-ups per channel kind. */
export function wakeupTable(figures: WakeupFigures[]): HTMLElement {
  return h(
    'table',
    { id: 'wakeup-table' },
    h(
      'thead',
      null,
      h(
        'tr',
        null,
        h('th', null, 'Channel'),
        ['Sent', 'Failed', 'Pruned', 'Mean latency', 'p50', 'p99'].map((t) => h('th', { class: 'num' }, t)),
      ),
    ),
    h(
      'tbody',
      null,
      figures.length === 0
        ? h('tr', null, h('td', { colspan: 7, class: 'empty' }, 'No wake-ups in this period.'))
        : figures.map((f) =>
            h(
              'tr',
              { 'data-channel': f.channel },
              h('td', null, kindName(f.channel)),
              h('td', { class: 'num' }, f.sent),
              h('td', { class: 'num' }, f.failed),
              h('td', { class: 'num' }, f.pruned),
              h('td', { class: 'num' }, f.latency ? `${f.latency.meanSeconds} s` : '—'),
              h('td', { class: 'num' }, seconds(f.latency?.p50Seconds)),
              h('td', { class: 'num' }, seconds(f.latency?.p99Seconds)),
            ),
          ),
    ),
  );
}
