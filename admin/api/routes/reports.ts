/** Usage reports: counters per hour or day, as JSON, CSV or XML. */
import { csvLine } from '../../../server/index.ts';
import { DAY_MS, HOUR_MS } from '../../records-store.ts';
import type { WakeupFigures } from '../../wakeup-counters.ts';
import { ALL, iso, route } from '../context.ts';
import { badInput, parseTime, sendJson, sendText } from '../http-util.ts';
import * as S from '../schemas-ops.ts';

function xmlEscape(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const COUNTERS = ['logins', 'logouts', 'messagesIn', 'messagesOut', 'bytesIn', 'bytesOut'] as const;

/** `<wakeups>` with one `<channel>` per kind; latency attributes only where some were sent. */
function wakeupsXml(wakeups: WakeupFigures[]): string {
  const lines = wakeups.map((w) => {
    const l = w.latency;
    const latency = l
      ? ` meanSeconds="${l.meanSeconds}" p50Seconds="${l.p50Seconds ?? '+Inf'}" p99Seconds="${l.p99Seconds ?? '+Inf'}"`
      : '';
    return `    <channel kind="${xmlEscape(w.channel)}" sent="${w.sent}" failed="${w.failed}" pruned="${w.pruned}"${latency}/>\n`;
  });
  return `  <wakeups>\n${lines.join('')}  </wakeups>\n`;
}

export const reportRoutes = [
  route({
    method: 'GET',
    path: '/reports/usage',
    roles: ALL,
    summary:
      'Usage counters (logins, logouts, messages and bytes in/out) per hour or day (UTC), and the wake-ups per channel kind over the range (sent, failed, pruned, latency). format=csv answers text/csv (the usage rows only), format=xml application/xml (with a wakeups element), each as a download',
    query: S.UsageQuery,
    responses: {
      '200': { description: 'The report', json: S.UsageReport, text: ['text/csv', 'application/xml'] },
    },
    handle({ res, query: q, services: { records, now } }) {
      const step = q.granularity === 'hour' ? HOUR_MS : DAY_MS;
      const toRaw = parseTime(q.to, 'to') ?? now();
      const fromRaw = parseTime(q.from, 'from') ?? toRaw - (q.granularity === 'hour' ? DAY_MS : 30 * DAY_MS);
      const from = Math.floor(fromRaw / step) * step;
      const to = Math.max(Math.ceil(toRaw / step) * step, from + step);
      if (fromRaw >= toRaw) throw badInput('from: must be before to', 'from');
      const buckets = (to - from) / step;
      const max = q.granularity === 'hour' ? 24 * 93 : 800;
      if (buckets > max) throw badInput(`to: at most ${max} ${q.granularity}s per report`, 'to');
      const { rows, totals } = records.usageReport({
        from,
        to,
        granularity: q.granularity,
        groupBy: q.groupBy,
        ...(q.service ? { service: q.service } : {}),
        ...(q.operator ? { operator: q.operator } : {}),
      });
      const report = {
        from: iso(from),
        to: iso(to),
        granularity: q.granularity,
        groupBy: q.groupBy,
        filters: {
          ...(q.service ? { service: q.service } : {}),
          ...(q.operator ? { operator: q.operator } : {}),
        },
        rows: rows.map((r) => ({ ...r, bucket: iso(r.bucket) })),
        totals,
        wakeups: records.wakeupReport(from, to, q.operator),
      };
      const name = `usage-${iso(from).slice(0, 13)}-${iso(to).slice(0, 13)}`.replace(/:/g, '');
      const group = q.groupBy === 'none' ? [] : [q.groupBy];
      const groupValue = (r: object, g: string) => (r as Record<string, string | undefined>)[g] ?? '';
      if (q.format === 'csv') {
        const lines = [csvLine(['bucket', ...group, ...COUNTERS])];
        for (const r of report.rows)
          lines.push(
            csvLine([r.bucket, ...group.map((g) => groupValue(r, g)), ...COUNTERS.map((c) => r[c])]),
          );
        sendText(res, 200, 'text/csv; charset=utf-8', lines.join(''), `${name}.csv`);
      } else if (q.format === 'xml') {
        const attrs = `from="${report.from}" to="${report.to}" granularity="${q.granularity}" groupBy="${q.groupBy}"${q.service ? ` service="${xmlEscape(q.service)}"` : ''}${q.operator ? ` operator="${xmlEscape(q.operator)}"` : ''}`;
        const out = [`<?xml version="1.0" encoding="UTF-8"?>\n<usageReport ${attrs}>\n`];
        for (const r of report.rows) {
          const g = group.map((k) => ` ${k}="${xmlEscape(groupValue(r, k))}"`).join('');
          out.push(
            `  <row bucket="${r.bucket}"${g}>${COUNTERS.map((c) => `<${c}>${r[c]}</${c}>`).join('')}</row>\n`,
          );
        }
        out.push(`  <totals>${COUNTERS.map((c) => `<${c}>${totals[c]}</${c}>`).join('')}</totals>\n`);
        out.push(wakeupsXml(report.wakeups), '</usageReport>\n');
        sendText(res, 200, 'application/xml; charset=utf-8', out.join(''), `${name}.xml`);
      } else sendJson(res, 200, report);
    },
  }),
];
