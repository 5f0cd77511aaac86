/**
 * System monitor: every node from its heartbeats, refreshed live (the
 * /nodes/stream events every 2 s; polling every 3 s when the stream is not
 * available), the last hour as charts (/nodes/history, read again at its
 * sampling interval), a drain button for admins, and the alarms.
 */
import { api, can, streamEvents } from '../api.ts';
import { barChart, type ChartOptions, lineChart } from '../chart.ts';
import { formatBytes, formatDuration, formatTime, h, mount, toast } from '../dom.ts';
import type { Page } from '../main.ts';
import type { Alarm, NodeView } from '../../../monitor.ts';
import type { HistorySample } from '../../../monitor-history.ts';

interface HistoryEntry {
  seq: number;
  kind: string;
  severity: Alarm['severity'];
  subject: string;
  state: 'raised' | 'cleared';
  message: string;
  at: number;
  node: string;
}

/** The last hour's charts: which sample fields each draws, under which names. */
type HourSeries = { name: string; legend: string; key: Exclude<keyof HistorySample, 'at'> };
interface HourChart {
  id: string;
  title: string;
  draw: (o: ChartOptions) => SVGElement;
  series: HourSeries[];
}
const HOUR_SERIES: Record<'sessions' | 'events' | 'errors', HourSeries[]> = {
  sessions: [
    { name: 'sessions', legend: 'sessions', key: 'sessions' },
    { name: 'connected', legend: 'connected', key: 'connected' },
  ],
  events: [{ name: 'events/s', legend: 'device log events /s', key: 'eventsPerSecond' }],
  errors: [
    { name: 'errors', legend: 'backend and device errors', key: 'errors' },
    { name: 'refused logins', legend: 'refused logins', key: 'authFailures' },
  ],
};

const POLL_MS = 3000;
const HISTORY_ROWS = 100;

function severityBadge(severity: Alarm['severity']): HTMLElement {
  const cls = severity === 'critical' ? 'bad' : severity === 'warning' ? 'warn' : 'ok';
  return h('span', { class: `badge ${cls}` }, severity);
}

export const monitorPage: Page = (root) => {
  let nodes: NodeView[] = [];
  let alarms: Alarm[] = [];
  let history: HistoryEntry[] = [];
  let updatedAt = 0;
  let alive = true;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let hourTimer: ReturnType<typeof setTimeout> | undefined;
  const stream = new AbortController();

  const cards = h('div', { class: 'cards', id: 'monitor-cards' });
  const nodeBox = h('div', { class: 'table-wrap' });
  const alarmBox = h('div', { class: 'table-wrap' });
  const historyBox = h('div', { class: 'table-wrap' });
  const updated = h('span', { class: 'hint', id: 'monitor-updated' });
  const hourBox = h('div', { class: 'charts', id: 'monitor-hour' });

  function statusBadge(status: NodeView['status']): HTMLElement {
    const cls = status === 'up' ? 'ok' : status === 'draining' ? 'warn' : 'bad';
    return h('span', { class: `badge ${cls}`, 'data-status': status }, status);
  }

  async function drain(node: NodeView): Promise<void> {
    if (!confirm(`Drain ${node.nodeId}? Its devices are told to move, then the node stops.`)) return;
    try {
      await api(`/nodes/${encodeURIComponent(node.nodeId)}/drain`, {
        method: 'POST',
        body: { reason: 'drained from the admin console' },
      });
      toast(`Asked ${node.nodeId} to drain`);
    } catch (err) {
      toast((err as Error).message, 'error');
    }
  }

  function render(): void {
    const up = nodes.filter((n) => n.status === 'up').length;
    const live = nodes.filter((n) => n.status !== 'gone');
    const connected = live.reduce((sum, n) => sum + n.connected, 0);
    const sessions = live.reduce((sum, n) => sum + n.sessions, 0);
    const active = alarms.filter((a) => a.active);
    mount(
      cards,
      (
        [
          ['Nodes up', `${up} / ${nodes.length}`],
          ['Connected devices', String(connected)],
          ['Sessions (incl. waiting to resume)', String(sessions)],
          ['Active alarms', String(active.length)],
        ] as const
      ).map(([label, value]) =>
        h('div', { class: 'card' }, h('div', { class: 'value' }, value), h('div', { class: 'label' }, label)),
      ),
    );
    mount(
      nodeBox,
      h(
        'table',
        { id: 'node-table' },
        h(
          'thead',
          null,
          h(
            'tr',
            null,
            h('th', null, 'Node'),
            h('th', null, 'Roles'),
            h('th', null, 'Release'),
            h('th', { class: 'num' }, 'Uptime'),
            h('th', { class: 'num' }, 'Memory'),
            h('th', { class: 'num' }, 'CPU'),
            h('th', { class: 'num' }, 'Connected'),
            h('th', { class: 'num' }, 'Sessions'),
            h('th', { class: 'num' }, 'Serves'),
            h('th', null, 'Status'),
            h('th', null, 'Last heartbeat'),
            h('th', null, ''),
          ),
        ),
        h(
          'tbody',
          null,
          nodes.length === 0
            ? h('tr', null, h('td', { colspan: 12, class: 'empty' }, 'No node has reported yet.'))
            : nodes.map((n) =>
                h(
                  'tr',
                  { class: 'node-row', 'data-node': n.nodeId },
                  h('td', { class: 'mono' }, n.nodeId),
                  h('td', null, n.roles.join(', ')),
                  h('td', null, n.release),
                  h('td', { class: 'num' }, formatDuration(n.uptimeSeconds)),
                  h('td', { class: 'num' }, formatBytes(n.rssBytes)),
                  h('td', { class: 'num' }, `${n.cpuPercent.toFixed(1)} %`),
                  h('td', { class: 'num' }, n.connected),
                  h('td', { class: 'num' }, n.sessions),
                  h('td', { class: 'num served' }, servedText(n)),
                  h('td', null, statusBadge(n.status)),
                  h('td', null, formatTime(n.lastSeenAt)),
                  h(
                    'td',
                    null,
                    can('drain') &&
                      n.status === 'up' &&
                      h(
                        'button',
                        { class: 'small danger', type: 'button', onclick: () => drain(n) },
                        'Drain',
                      ),
                  ),
                ),
              ),
        ),
      ),
    );
    mount(
      alarmBox,
      h(
        'table',
        { id: 'alarm-table' },
        h(
          'thead',
          null,
          h(
            'tr',
            null,
            ['Severity', 'Kind', 'Subject', 'Message', 'Since', 'Last', 'Count', 'State'].map((t) =>
              h('th', null, t),
            ),
          ),
        ),
        h(
          'tbody',
          null,
          alarms.length === 0
            ? h('tr', null, h('td', { colspan: 8, class: 'empty' }, 'No alarms.'))
            : alarms.map((a) =>
                h(
                  'tr',
                  { class: 'alarm-row' },
                  h('td', null, severityBadge(a.severity)),
                  h('td', null, a.kind.replaceAll('_', ' ')),
                  h('td', { class: 'mono' }, a.subject),
                  h('td', { class: 'wrap' }, a.message),
                  h('td', null, formatTime(a.since)),
                  h('td', null, formatTime(a.lastAt)),
                  h('td', { class: 'num' }, a.count),
                  h(
                    'td',
                    null,
                    a.active
                      ? h('span', { class: 'badge bad' }, 'active')
                      : h('span', { class: 'badge' }, 'cleared'),
                  ),
                ),
              ),
        ),
      ),
    );
    mount(
      historyBox,
      h(
        'table',
        { id: 'alarm-history' },
        h(
          'thead',
          null,
          h(
            'tr',
            null,
            ['Time', 'State', 'Severity', 'Kind', 'Subject', 'Message', 'Node'].map((t) => h('th', null, t)),
          ),
        ),
        h(
          'tbody',
          null,
          history.length === 0
            ? h('tr', null, h('td', { colspan: 7, class: 'empty' }, 'No alarm history.'))
            : history.map((e) =>
                h(
                  'tr',
                  { class: 'history-row', 'data-state': e.state },
                  h('td', null, formatTime(e.at)),
                  h('td', null, e.state),
                  h('td', null, severityBadge(e.severity)),
                  h('td', null, e.kind.replaceAll('_', ' ')),
                  h('td', { class: 'mono' }, e.subject),
                  h('td', { class: 'wrap' }, e.message),
                  h('td', { class: 'mono' }, e.node),
                ),
              ),
        ),
      ),
    );
    mount(updated, h('span', { class: 'live-dot' }), `updated ${formatTime(updatedAt)}`);
  }

  /** The last hour, read again each time the admin node takes a sample. */
  async function loadHour(): Promise<void> {
    let intervalMs = 15_000;
    try {
      const r = await api<{ intervalMs: number; items: HistorySample[] }>('/nodes/history');
      if (!alive) return;
      intervalMs = r.intervalMs;
      renderHour(r.items, r.intervalMs);
    } catch (err) {
      mount(hourBox, h('div', { class: 'empty' }, `Could not load the last hour: ${(err as Error).message}`));
    }
    if (alive) hourTimer = setTimeout(() => void loadHour(), Math.max(5000, intervalMs));
  }

  function renderHour(items: HistorySample[], intervalMs: number): void {
    if (items.length === 0) {
      const s = Math.round(intervalMs / 1000);
      mount(hourBox, h('div', { class: 'empty' }, `No samples yet: the first comes within ${s} s.`));
      return;
    }
    // Seconds too when the samples span less than a quarter of an hour (a node just started).
    const seconds = (items.at(-1)?.at ?? 0) - (items[0]?.at ?? 0) < 15 * 60_000;
    const labels = items.map((x) => clock(x.at, seconds));
    // About the size it is drawn at (three a row), so that its text stays legible.
    const size = { width: 400, height: 220 };
    const charts: HourChart[] = [
      { id: 'chart-sessions', title: 'Sessions', draw: lineChart, series: HOUR_SERIES.sessions },
      { id: 'chart-events', title: 'Events per second', draw: lineChart, series: HOUR_SERIES.events },
      {
        id: 'chart-errors',
        title: `Errors per ${Math.round(intervalMs / 1000)} s`,
        draw: barChart,
        series: HOUR_SERIES.errors,
      },
    ];
    mount(
      hourBox,
      charts.map((c) =>
        h(
          'figure',
          { class: 'chart-box', id: c.id },
          h('figcaption', null, c.title),
          c.draw({
            ...size,
            labels,
            fractional: c.series.some((x) => x.key === 'eventsPerSecond'),
            series: c.series.map((x) => ({ name: x.name, values: items.map((i) => i[x.key]) })),
          }),
          h(
            'div',
            { class: 'legend' },
            c.series.map((x, i) => h('span', null, h('span', { class: `swatch s${i}` }), x.legend)),
          ),
        ),
      ),
    );
  }

  /** The history is read again when the alarms change (a raise or a clear is a new entry). */
  async function loadHistory(): Promise<void> {
    try {
      const r = await api<{ items: HistoryEntry[] }>(`/alarms/history?limit=${HISTORY_ROWS}`);
      if (!alive) return;
      history = r.items;
      render();
    } catch {
      // The next change tries again; the alarm list above stays current.
    }
  }

  async function poll(): Promise<void> {
    try {
      const [n, a] = await Promise.all([
        api<{ items: NodeView[]; at: number }>('/nodes'),
        api<{ items: Alarm[] }>('/alarms'),
      ]);
      if (!alive) return;
      nodes = n.items;
      const changed = JSON.stringify(alarms) !== JSON.stringify(a.items);
      alarms = a.items;
      updatedAt = n.at ?? Date.now();
      render();
      if (changed) void loadHistory();
    } catch (err) {
      mount(updated, h('span', { class: 'live-dot off' }), `update failed: ${(err as Error).message}`);
    }
  }

  /** Polls until the stream delivers; a stream that ends or fails falls back to polling. */
  async function pollLoop(): Promise<void> {
    await poll();
    if (alive && !streaming) timer = setTimeout(() => void pollLoop(), POLL_MS);
  }

  let streaming = false;
  streamEvents(
    '/nodes/stream',
    {},
    ['nodes', 'alarms'],
    (data, event) => {
      if (!alive) return;
      streaming = true;
      clearTimeout(timer);
      const body = JSON.parse(data);
      if (event === 'nodes') {
        nodes = body.items;
        updatedAt = body.at ?? Date.now();
      } else if (event === 'alarms') {
        alarms = body.items;
        void loadHistory();
      }
      render();
    },
    stream.signal,
  ).then(
    () => fallBack(),
    () => fallBack(),
  );
  function fallBack(): void {
    if (!alive) return;
    streaming = false;
    clearTimeout(timer);
    void pollLoop();
  }

  mount(
    root,
    h('h1', null, 'System monitor'),
    cards,
    h(
      'div',
      { class: 'panel' },
      h('div', { class: 'toolbar' }, h('h2', null, 'Nodes'), h('span', { class: 'spacer' }), updated),
      nodeBox,
    ),
    h('div', { class: 'panel' }, h('h2', null, 'Last hour'), hourBox),
    h('div', { class: 'panel' }, h('h2', null, 'Alarms'), alarmBox),
    h('div', { class: 'panel' }, h('h2', null, 'Alarm history'), historyBox),
  );
  render();
  void loadHistory();
  void loadHour();
  void pollLoop();
  return () => {
    alive = false;
    clearTimeout(timer);
    clearTimeout(hourTimer);
    stream.abort();
  };
};

/** A transport's devices and accounts ("12 devices · 10 mail · 9 chat"); a dash for other nodes. */
function servedText(n: NodeView): string {
  const s = n.served;
  if (!s) return '–';
  return `${s.devices} devices · ${s.mailAccounts} mail · ${s.imAccounts} chat`;
}

/** HH:MM (or HH:MM:SS) of an epoch ms, local time: the time of day of formatTime's YYYY-MM-DD HH:MM:SS. */
function clock(at: number, seconds: boolean): string {
  return formatTime(at).slice(11, seconds ? 19 : 16);
}
