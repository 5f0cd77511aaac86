/**
 * A grouped bar chart drawn as SVG: one group per bucket, one bar per series.
 * Colours are presentation attributes (not style=…) so the strict CSP holds.
 */
import { s } from './dom.ts';

export const SERIES_COLOURS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd'];

export interface ChartSeries {
  name: string;
  values: number[];
}

export interface BarChartOptions {
  labels: string[];
  series: ChartSeries[];
  format?: (n: number) => string;
  width?: number;
  height?: number;
}

/** Round axis steps: 1, 2 or 5 times a power of ten. */
export function niceStep(max: number, ticks: number): number {
  if (max <= 0) return 1;
  const raw = max / ticks;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const f = raw / pow;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * pow;
}

export function barChart(o: BarChartOptions): SVGElement {
  const width = o.width ?? 960;
  const height = o.height ?? 280;
  const format = o.format ?? ((n: number) => String(n));
  const pad = { top: 12, right: 12, bottom: 42, left: 64 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const max = Math.max(0, ...o.series.flatMap((x) => x.values));
  // Counters are whole numbers: no 0.5 logins on the axis.
  const step = Math.max(1, niceStep(max, 4));
  const top = Math.max(step, Math.ceil(max / step) * step);
  const y = (v: number) => pad.top + plotH - (v / top) * plotH;

  const children: SVGElement[] = [];
  for (let v = 0; v <= top + step / 2; v += step) {
    children.push(
      s('line', { class: 'grid', x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v) }),
      s('text', { x: pad.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, format(v)),
    );
  }
  const n = Math.max(1, o.labels.length);
  const groupW = plotW / n;
  const gap = Math.min(6, groupW * 0.2);
  const barW = Math.max(1, (groupW - gap) / Math.max(1, o.series.length));
  // At most ~12 x labels, evenly spaced, so they never overlap.
  const every = Math.max(1, Math.ceil(n / 12));
  o.labels.forEach((label, i) => {
    const x0 = pad.left + i * groupW + gap / 2;
    o.series.forEach((series, k) => {
      const v = series.values[i] ?? 0;
      const barH = (v / top) * plotH;
      children.push(
        s(
          'rect',
          {
            class: 'bar',
            'data-series': series.name,
            'data-value': v,
            x: x0 + k * barW,
            y: pad.top + plotH - barH,
            width: Math.max(0.5, barW - 1),
            height: barH,
            fill: SERIES_COLOURS[k % SERIES_COLOURS.length],
          },
          s('title', null, `${label} · ${series.name}: ${format(v)}`),
        ),
      );
    });
    if (i % every === 0) {
      children.push(
        s(
          'text',
          { x: x0 + (groupW - gap) / 2, y: height - pad.bottom + 16, 'text-anchor': 'middle' },
          label,
        ),
      );
    }
  });
  children.push(
    s('line', { class: 'axis', x1: pad.left, x2: width - pad.right, y1: y(0), y2: y(0) }),
    s('line', { class: 'axis', x1: pad.left, x2: pad.left, y1: pad.top, y2: y(0) }),
  );
  return s(
    'svg',
    {
      class: 'chart',
      viewBox: `0 0 ${width} ${height}`,
      role: 'img',
      'aria-label': `Bar chart of ${o.series.map((x) => x.name).join(' and ')}`,
    },
    children,
  );
}
