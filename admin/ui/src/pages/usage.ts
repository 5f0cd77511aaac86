/**
 * Usage report: counters per hour or day (UTC) for a date range, filtered by
 * service and operator; a chart, a table, the wake-ups per channel kind, and
 * the same report as CSV, JSON or XML.
 */
import { api, can, download } from '../api.ts';
import { barChart } from '../chart.ts';
import { field, formatBytes, h, mount, options, toast } from '../dom.ts';
import type { Page } from '../main.ts';
import { listRefs } from '../refs.ts';
import { type WakeupFigures, wakeupTable } from './wake-ups.ts';

interface Counters {
  logins: number;
  logouts: number;
  messagesIn: number;
  messagesOut: number;
  bytesIn: number;
  bytesOut: number;
}

interface UsageRow extends Counters {
  bucket: string;
  service?: string;
  operator?: string;
}

interface UsageReport {
  from: string;
  to: string;
  granularity: 'hour' | 'day';
  rows: UsageRow[];
  totals: Counters;
  /** Absent from an admin node of an older release. */
  wakeups?: WakeupFigures[];
}

const METRICS = {
  sessions: { label: 'Logins / logouts', keys: ['logins', 'logouts'] as const, bytes: false },
  messages: { label: 'Messages in / out', keys: ['messagesIn', 'messagesOut'] as const, bytes: false },
  bytes: { label: 'Bytes in / out', keys: ['bytesIn', 'bytesOut'] as const, bytes: true },
};
type Metric = keyof typeof METRICS;

const SERIES_NAMES: Record<keyof Counters, string> = {
  logins: 'logins',
  logouts: 'logouts',
  messagesIn: 'messages in',
  messagesOut: 'messages out',
  bytesIn: 'bytes in',
  bytesOut: 'bytes out',
};

function isoDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

function bucketLabel(bucket: string, granularity: 'hour' | 'day'): string {
  return granularity === 'day' ? bucket.slice(0, 10) : `${bucket.slice(5, 10)} ${bucket.slice(11, 16)}`;
}

export const usagePage: Page = (root) => {
  const today = Date.now();
  const state = {
    from: isoDay(today - 86_400_000),
    to: isoDay(today),
    granularity: 'hour' as 'hour' | 'day',
    service: '',
    operator: '',
    metric: 'sessions' as Metric,
    hideEmpty: true,
  };
  let report: UsageReport | undefined;
  let alive = true;

  const filterBar = h('div', { class: 'toolbar' });
  const chartBox = h('div', { id: 'usage-chart' });
  const totalsBox = h('div', { class: 'cards', id: 'usage-totals' });
  const tableBox = h('div', { class: 'table-wrap' });
  const wakeupBox = h('div', { class: 'table-wrap' });

  /** Dates are whole UTC days, `to` included. */
  const query = () => ({
    from: `${state.from}T00:00:00Z`,
    to: new Date(Date.parse(`${state.to}T00:00:00Z`) + 86_400_000).toISOString(),
    granularity: state.granularity,
    service: state.service,
    operator: state.operator,
  });

  async function load(): Promise<void> {
    try {
      const r = await api<UsageReport>('/reports/usage', { query: { ...query(), format: 'json' } });
      if (!alive) return;
      report = r;
      render();
    } catch (err) {
      mount(
        chartBox,
        h('div', { class: 'error-box' }, `Could not load the report: ${(err as Error).message}`),
      );
    }
  }

  function render(): void {
    if (!report) return;
    const r = report;
    const metric = METRICS[state.metric];
    const fmt = (n: number) => (metric.bytes ? formatBytes(n) : String(n));
    mount(
      chartBox,
      barChart({
        labels: r.rows.map((row) => bucketLabel(row.bucket, r.granularity)),
        series: metric.keys.map((k) => ({ name: SERIES_NAMES[k], values: r.rows.map((row) => row[k]) })),
        format: fmt,
        bytes: metric.bytes,
      }),
      h(
        'div',
        { class: 'legend' },
        metric.keys.map((k, i) => h('span', null, h('span', { class: `swatch s${i}` }), SERIES_NAMES[k])),
        h('span', null, `per ${r.granularity}, UTC`),
      ),
    );
    const t = r.totals;
    mount(
      totalsBox,
      (
        [
          ['Logins', String(t.logins)],
          ['Logouts', String(t.logouts)],
          ['Messages in', String(t.messagesIn)],
          ['Messages out', String(t.messagesOut)],
          ['Bytes in', formatBytes(t.bytesIn)],
          ['Bytes out', formatBytes(t.bytesOut)],
        ] as const
      ).map(([label, value]) =>
        h('div', { class: 'card' }, h('div', { class: 'value' }, value), h('div', { class: 'label' }, label)),
      ),
    );
    mount(wakeupBox, wakeupTable(r.wakeups ?? []));
    const total = (row: Counters) =>
      row.logins + row.logouts + row.messagesIn + row.messagesOut + row.bytesIn + row.bytesOut;
    const rows = state.hideEmpty ? r.rows.filter((row) => total(row) > 0) : r.rows;
    mount(
      tableBox,
      h(
        'table',
        { id: 'usage-table' },
        h(
          'thead',
          null,
          h(
            'tr',
            null,
            h('th', null, r.granularity === 'hour' ? 'Hour (UTC)' : 'Day (UTC)'),
            ['Logins', 'Logouts', 'Messages in', 'Messages out', 'Bytes in', 'Bytes out'].map((x) =>
              h('th', { class: 'num' }, x),
            ),
          ),
        ),
        h(
          'tbody',
          null,
          rows.length === 0
            ? h('tr', null, h('td', { colspan: 7, class: 'empty' }, 'No usage in this period.'))
            : rows.map((row) =>
                h(
                  'tr',
                  null,
                  h('td', { class: 'mono' }, bucketLabel(row.bucket, r.granularity)),
                  h('td', { class: 'num' }, row.logins),
                  h('td', { class: 'num' }, row.logouts),
                  h('td', { class: 'num' }, row.messagesIn),
                  h('td', { class: 'num' }, row.messagesOut),
                  h('td', { class: 'num' }, formatBytes(row.bytesIn)),
                  h('td', { class: 'num' }, formatBytes(row.bytesOut)),
                ),
              ),
        ),
      ),
    );
  }

  function renderFilters(operators: string[]): void {
    const input = (key: 'from' | 'to', label: string) =>
      field(
        label,
        h('input', {
          type: 'date',
          name: key,
          value: state[key],
          onchange: (ev: Event) => {
            state[key] = (ev.target as HTMLInputElement).value;
            void load();
          },
        }),
      );
    const select = (key: 'granularity' | 'service', label: string, values: string[], any?: string) =>
      field(
        label,
        h(
          'select',
          {
            name: key,
            onchange: (ev: Event) => {
              (state as any)[key] = (ev.target as HTMLSelectElement).value;
              void load();
            },
          },
          options(values, state[key], any),
        ),
      );
    const exportLink = (format: 'csv' | 'json' | 'xml') =>
      h(
        'a',
        {
          href: '#',
          class: 'download',
          'data-format': format,
          onclick: (ev: Event) => {
            ev.preventDefault();
            download(
              '/reports/usage',
              { ...query(), format },
              `usage-${state.from}-${state.to}.${format}`,
            ).catch((err) => toast(`Download failed: ${err.message}`, 'error'));
          },
        },
        format.toUpperCase(),
      );
    mount(
      filterBar,
      input('from', 'From'),
      input('to', 'To'),
      select('granularity', 'Per', ['hour', 'day']),
      select('service', 'Service', ['session', 'mail', 'im'], 'all'),
      // A viewer may not read the operator list: free text, with the known ids offered.
      field(
        'Operator',
        h('input', {
          name: 'operator',
          list: 'usage-operators',
          placeholder: 'all',
          value: state.operator,
          onchange: (ev: Event) => {
            state.operator = (ev.target as HTMLInputElement).value.trim();
            void load();
          },
        }),
        h(
          'datalist',
          { id: 'usage-operators' },
          operators.map((id) => h('option', { value: id })),
        ),
      ),
      field(
        'Chart',
        h(
          'select',
          {
            name: 'metric',
            onchange: (ev: Event) => {
              state.metric = (ev.target as HTMLSelectElement).value as Metric;
              render();
            },
          },
          (Object.keys(METRICS) as Metric[]).map((m) =>
            h('option', { value: m, selected: m === state.metric }, METRICS[m].label),
          ),
        ),
      ),
      h('button', { type: 'button', id: 'usage-refresh', onclick: () => void load() }, 'Refresh'),
      h('span', { class: 'spacer' }),
      h(
        'span',
        { class: 'row', id: 'usage-downloads' },
        'Download:',
        exportLink('csv'),
        exportLink('json'),
        exportLink('xml'),
      ),
    );
  }

  const hideEmpty = h('input', {
    type: 'checkbox',
    checked: state.hideEmpty,
    onchange: () => {
      state.hideEmpty = hideEmpty.checked;
      render();
    },
  });

  mount(
    root,
    h('h1', null, 'Usage report'),
    h('div', { class: 'panel' }, filterBar, chartBox),
    totalsBox,
    h(
      'div',
      { class: 'panel' },
      h(
        'div',
        { class: 'toolbar' },
        h('h2', null, 'By period'),
        h('span', { class: 'spacer' }),
        h('label', null, hideEmpty, ' hide empty periods'),
      ),
      tableBox,
    ),
    h(
      'div',
      { class: 'panel' },
      h('h2', null, 'Wake-ups per channel'),
      h(
        'p',
        { class: 'hint' },
        'Over the whole period (and operator), from every transport. Latency: from the first message a wake-up told of to its push service taking it; p50 and p99 within the bucket bounds 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60 s.',
      ),
      wakeupBox,
    ),
  );
  renderFilters([]);
  void load();
  if (can('reference'))
    void listRefs('operators').then((ops) => alive && renderFilters(ops.map((o) => o.id)));
  return () => {
    alive = false;
  };
};
