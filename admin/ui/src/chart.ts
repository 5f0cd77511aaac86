/**
 * Charts drawn as SVG: a grouped bar chart (one group per bucket, one bar per
 * series) and a line chart (time series, one line per series) over one axis.
 * Colours are presentation attributes (not style=…) so the strict CSP holds.
 */
import { s } from './dom.ts';

export const SERIES_COLOURS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd'];

export interface ChartSeries {
  name: string;
  values: number[];
}

export interface ChartOptions {
  labels: string[];
  series: ChartSeries[];
  format?: (n: number) => string;
  /**
   * Bytes: ticks fall on round values of the unit the formatter shows
   * (1, 2 or 5 × 10^n KiB, MiB …, 1024-based), never on 4.9 KiB.
   */
  bytes?: boolean;
  /** Values may be fractional (rates): ticks below 1 are allowed. Default false: counts. */
  fractional?: boolean;
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

/**
 * The tick values of an axis from 0 to at least `max`: about four steps of
 * 1, 2 or 5 × 10^n, whole numbers unless `fractional`. For bytes the steps
 * are 1, 2 or 5 × 10^n of a 1024-based unit (the largest value's, or the one
 * below when that would step by less than one): 5 KiB, 500 KiB, 1 MiB.
 */
export function axisTicks(max: number, o: { bytes?: boolean; fractional?: boolean } = {}): number[] {
  let step: number;
  if (o.bytes) {
    let unit = 1;
    while (max / unit >= 1024) unit *= 1024;
    if (unit > 1 && niceStep(max / unit, 4) < 1) unit /= 1024;
    step = Math.max(1, niceStep(max / unit, 4)) * unit;
  } else {
    step = niceStep(max, 4);
    // Counters are whole numbers: no 0.5 logins on the axis.
    if (!o.fractional) step = Math.max(1, step);
  }
  const n = Math.max(1, Math.ceil(max / step - 1e-9));
  // Multiplied, not summed, and rounded: 3 × 0.1 shows as 0.3, not 0.30000000000000004.
  return Array.from({ length: n + 1 }, (_, i) => Number((i * step).toPrecision(12)));
}

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** A byte tick in the unit of the axis's step, so that every label is as round as the step: 1500 KiB, not 1.5 MiB. */
export function byteTickLabel(v: number, step: number): string {
  const k = Math.min(BYTE_UNITS.length - 1, Math.max(0, Math.floor(Math.log(step) / Math.log(1024) + 1e-9)));
  return `${Number((v / 1024 ** k).toPrecision(12))} ${BYTE_UNITS[k]}`;
}

interface Frame {
  width: number;
  height: number;
  pad: { top: number; right: number; bottom: number; left: number };
  plotW: number;
  plotH: number;
  top: number;
  y: (v: number) => number;
  format: (n: number) => string;
  children: SVGElement[];
}

/** The plot area, the grid and the y labels shared by both charts. */
function frame(o: ChartOptions): Frame {
  const width = o.width ?? 960;
  const height = o.height ?? 280;
  const format = o.format ?? ((n: number) => String(n));
  const pad = { top: 12, right: 12, bottom: 42, left: 64 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const max = Math.max(0, ...o.series.flatMap((x) => x.values));
  const ticks = axisTicks(max, o);
  const top = ticks[ticks.length - 1] ?? 1;
  const y = (v: number) => pad.top + plotH - (v / top) * plotH;
  const children: SVGElement[] = [];
  const step = ticks[1] ?? 1;
  const tickLabel = o.bytes ? (v: number) => byteTickLabel(v, step) : format;
  for (const v of ticks) {
    children.push(
      s('line', { class: 'grid', x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v) }),
      s('text', { class: 'tick', x: pad.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, tickLabel(v)),
    );
  }
  return { width, height, pad, plotW, plotH, top, y, format, children };
}

/** At most one x label per 70 units of width (12 in all), evenly spaced, so they never overlap. */
function xLabel(f: Frame, label: string, i: number, count: number, x: number): SVGElement | undefined {
  const most = Math.max(2, Math.min(12, Math.floor(f.plotW / 70)));
  const every = Math.max(1, Math.ceil(count / most));
  if (i % every !== 0) return undefined;
  return s('text', { x, y: f.height - f.pad.bottom + 16, 'text-anchor': 'middle' }, label);
}

function finish(f: Frame, kind: string, o: ChartOptions): SVGElement {
  const { pad, width, y } = f;
  f.children.push(
    s('line', { class: 'axis', x1: pad.left, x2: width - pad.right, y1: y(0), y2: y(0) }),
    s('line', { class: 'axis', x1: pad.left, x2: pad.left, y1: pad.top, y2: y(0) }),
  );
  return s(
    'svg',
    {
      class: 'chart',
      viewBox: `0 0 ${width} ${f.height}`,
      role: 'img',
      'aria-label': `${kind} chart of ${o.series.map((x) => x.name).join(' and ')}`,
    },
    f.children,
  );
}

export function barChart(o: ChartOptions): SVGElement {
  const f = frame(o);
  const { pad, plotH, top, format } = f;
  const n = Math.max(1, o.labels.length);
  const groupW = f.plotW / n;
  const gap = Math.min(6, groupW * 0.2);
  const barW = Math.max(1, (groupW - gap) / Math.max(1, o.series.length));
  o.labels.forEach((label, i) => {
    const x0 = pad.left + i * groupW + gap / 2;
    o.series.forEach((series, k) => {
      const v = series.values[i] ?? 0;
      const barH = (v / top) * plotH;
      f.children.push(
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
    const text = xLabel(f, label, i, n, x0 + (groupW - gap) / 2);
    if (text) f.children.push(text);
  });
  return finish(f, 'Bar', o);
}

/** One line per series over evenly spaced points (a time series sampled at a fixed interval). */
export function lineChart(o: ChartOptions): SVGElement {
  const f = frame(o);
  const n = o.labels.length;
  const x = (i: number) => f.pad.left + (n <= 1 ? f.plotW / 2 : (i / (n - 1)) * f.plotW);
  o.series.forEach((series, k) => {
    const points = series.values.map((v, i) => `${x(i).toFixed(1)},${f.y(v).toFixed(1)}`).join(' ');
    const last = series.values[series.values.length - 1];
    f.children.push(
      s(
        'polyline',
        {
          class: 'line',
          'data-series': series.name,
          'data-points': series.values.length,
          points,
          fill: 'none',
          stroke: SERIES_COLOURS[k % SERIES_COLOURS.length],
          'stroke-width': 2,
          'stroke-linejoin': 'round',
        },
        s('title', null, `${series.name}: ${last === undefined ? '–' : f.format(last)} now`),
      ),
    );
  });
  o.labels.forEach((label, i) => {
    const text = xLabel(f, label, i, n, x(i));
    if (text) f.children.push(text);
  });
  return finish(f, 'Line', o);
}
