/**
 * One device's log: filter by time and kind, page back through older records,
 * and a live tail (Server-Sent Events) that adds records as they are stored.
 */
import { api, streamEvents } from '../api.ts';
import { field, formatBytes, formatTime, h, mount } from '../dom.ts';
import { DEVICE_LOG_KINDS } from '../../../../server/records/types.ts';
import type { Page } from '../main.ts';

interface LogRecord {
  at: number;
  imei: string;
  kind: string;
  node: string;
  service: string;
  message?: string;
  code?: string;
  bytesIn?: number;
  bytesOut?: number;
  detail?: Record<string, string | number | boolean>;
}

function sameRecord(a: LogRecord, b: LogRecord): boolean {
  return a.at === b.at && a.kind === b.kind && a.node === b.node && a.message === b.message;
}

const BAD_KINDS = new Set(['auth_failure', 'backend_error', 'error']);
const GOOD_KINDS = new Set(['connect', 'resume', 'backend_login']);

/** <input type="datetime-local"> value (local time) → epoch ms. */
function localToMs(value: string): number | undefined {
  if (!value) return undefined;
  const ms = new Date(value).getTime();
  return Number.isFinite(ms) ? ms : undefined;
}

export const deviceLogPage: Page = (root, [imei]) => {
  const state = { from: '', to: '', kinds: new Set<string>() };
  let records: LogRecord[] = [];
  let next: string | undefined;
  let alive = true;
  let tail: AbortController | undefined;

  const tbody = h('tbody');
  const more = h('div', { class: 'pager' });
  const count = h('span', { id: 'log-count' });
  const liveStatus = h('span', { id: 'live-status' });
  const liveToggle = h('input', { type: 'checkbox', name: 'live', checked: true });

  const query = () => ({
    from: localToMs(state.from),
    to: localToMs(state.to),
    kind: state.kinds.size > 0 ? [...state.kinds].join(',') : undefined,
  });

  function matches(r: LogRecord): boolean {
    if (state.kinds.size > 0 && !state.kinds.has(r.kind)) return false;
    const q = query();
    if (q.from !== undefined && r.at < q.from) return false;
    if (q.to !== undefined && r.at > q.to) return false;
    return true;
  }

  function row(r: LogRecord): HTMLElement {
    const badge = BAD_KINDS.has(r.kind) ? 'bad' : GOOD_KINDS.has(r.kind) ? 'ok' : '';
    const detail = r.detail
      ? Object.entries(r.detail)
          .map(([k, v]) => `${k}=${v}`)
          .join(' ')
      : '';
    return h(
      'tr',
      { class: 'log-row', 'data-kind': r.kind },
      h('td', { class: 'mono' }, formatTime(r.at)),
      h('td', null, h('span', { class: `badge ${badge}` }, r.kind)),
      h('td', null, r.service),
      h('td', { class: 'wrap' }, [r.message, r.code && h('code', null, ` ${r.code}`)]),
      h('td', { class: 'num' }, r.bytesIn !== undefined ? formatBytes(r.bytesIn) : ''),
      h('td', { class: 'num' }, r.bytesOut !== undefined ? formatBytes(r.bytesOut) : ''),
      h('td', { class: 'mono' }, r.node),
      h('td', { class: 'wrap mono' }, detail),
    );
  }

  function render(): void {
    mount(
      tbody,
      records.length > 0
        ? records.map(row)
        : h('tr', null, h('td', { colspan: 8, class: 'empty' }, 'No log records match.')),
    );
    mount(more, next && h('button', { type: 'button', onclick: () => void load(true) }, 'Load older'), count);
    count.textContent = `${records.length} records shown`;
  }

  async function load(older = false): Promise<void> {
    try {
      const page = await api<{ items: LogRecord[]; next?: string }>(`/devices/${imei}/logs`, {
        query: { ...query(), limit: 200, order: 'desc', cursor: older ? next : undefined },
      });
      if (!alive) return;
      if (older) {
        records = [...records, ...page.items];
      } else {
        // Keep what the live tail delivered while this query was under way.
        const newest = page.items[0]?.at ?? 0;
        const streamed = records.filter((r) => r.at >= newest && !page.items.some((x) => sameRecord(x, r)));
        records = [...streamed, ...page.items];
      }
      next = page.next;
      render();
    } catch (err) {
      mount(tbody, h('tr', null, h('td', { colspan: 8, class: 'error-box' }, (err as Error).message)));
    }
  }

  function startTail(): void {
    stopTail();
    if (!liveToggle.checked) return;
    const controller = new AbortController();
    tail = controller;
    mount(liveStatus, h('span', { class: 'live-dot off' }), 'connecting…');
    streamEvents(
      `/devices/${imei}/logs/stream`,
      {},
      ['log'],
      (data, event) => {
        if (event !== 'log') return;
        const r = JSON.parse(data) as LogRecord;
        if (!matches(r)) return;
        // The stream and the last query can overlap: skip a record already shown.
        if (records.some((x) => sameRecord(x, r))) return;
        records.unshift(r);
        tbody.querySelector('td.empty')?.parentElement?.remove();
        tbody.prepend(row(r));
        count.textContent = `${records.length} records shown`;
      },
      controller.signal,
      () => {
        mount(liveStatus, h('span', { class: 'live-dot' }), 'live');
        // Subscribed first, then queried: a record stored in between shows up in one or the other.
        void load();
      },
    ).then(
      () => {
        if (tail === controller && alive) setTimeout(startTail, 2000);
      },
      () => {
        if (tail !== controller || !alive) return;
        mount(liveStatus, h('span', { class: 'live-dot off' }), 'reconnecting…');
        setTimeout(() => tail === controller && alive && startTail(), 3000);
      },
    );
  }

  function stopTail(): void {
    const t = tail;
    tail = undefined;
    t?.abort();
    mount(liveStatus, h('span', { class: 'live-dot off' }), 'paused');
  }

  liveToggle.addEventListener('change', () => (liveToggle.checked ? startTail() : stopTail()));

  const timeInput = (key: 'from' | 'to', label: string) =>
    field(
      label,
      h('input', {
        type: 'datetime-local',
        name: key,
        onchange: (ev: Event) => {
          state[key] = (ev.target as HTMLInputElement).value;
          void load();
        },
      }),
    );
  const kindBoxes = DEVICE_LOG_KINDS.map((k) =>
    h(
      'label',
      { class: 'row' },
      h('input', {
        type: 'checkbox',
        name: 'kind',
        value: k,
        onchange: (ev: Event) => {
          if ((ev.target as HTMLInputElement).checked) state.kinds.add(k);
          else state.kinds.delete(k);
          void load();
        },
      }),
      k.replace('_', ' '),
    ),
  );

  mount(
    root,
    h('h1', null, 'Device log ', h('code', null, imei)),
    h(
      'div',
      { class: 'panel' },
      h(
        'div',
        { class: 'toolbar' },
        timeInput('from', 'From'),
        timeInput('to', 'To'),
        h('span', { class: 'spacer' }),
        h('label', { class: 'row' }, liveToggle, 'Live tail'),
        liveStatus,
        h('a', { href: '#/devices' }, '← Devices'),
      ),
      h(
        'fieldset',
        { class: 'row kinds' },
        h('legend', { class: 'field-label' }, 'Kinds (none checked = all)'),
        kindBoxes,
      ),
    ),
    h(
      'div',
      { class: 'panel table-wrap' },
      h(
        'table',
        { id: 'log-table' },
        h(
          'thead',
          null,
          h(
            'tr',
            null,
            ['Time', 'Kind', 'Service', 'Message', 'In', 'Out', 'Node', 'Detail'].map((t) =>
              h('th', { class: t === 'In' || t === 'Out' ? 'num' : undefined }, t),
            ),
          ),
        ),
        tbody,
      ),
      more,
    ),
  );
  // The live tail loads the page once it is subscribed.
  if (liveToggle.checked) startTail();
  else void load();
  return () => {
    alive = false;
    stopTail();
  };
};
