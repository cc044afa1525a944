/**
 * Self-contained SVG line charts for evaluation reports (FID vs CLIP score over guidance weights,
 * metrics vs training step). No dependencies, so the files open in any browser or viewer as written.
 */

export interface PlotSeries {
  name: string;
  /** Connected in the given order; `label` is printed next to its point (e.g. "w=3"). */
  points: Array<{ x: number; y: number; label?: string }>;
  /** Any SVG colour; by default the next one of `PLOT_PALETTE`. */
  colour?: string;
}

export interface LineChartOptions {
  title: string;
  /** A second line under the title, for caveats such as proxy features. */
  subtitle?: string;
  xLabel: string;
  yLabel: string;
  width?: number;
  height?: number;
  /** Draw a circle at each point (default true). A series of one point always gets one. */
  markers?: boolean;
  /** Logarithmic y axis; points with y ≤ 0 are then dropped. */
  logY?: boolean;
}

/** Space around the plotting area, in pixels: title and subtitle above, legend on the right. */
export const PLOT_MARGIN = { top: 64, right: 180, bottom: 56, left: 72 } as const;

/** Matplotlib's tab10: distinct, and familiar to readers of ML papers. */
export const PLOT_PALETTE = [
  '#1f77b4',
  '#ff7f0e',
  '#2ca02c',
  '#d62728',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
  '#bcbd22',
  '#17becf',
];

/** An axis: its tick values (first and last are the ends) and the map from data to pixels. */
interface Axis {
  ticks: number[];
  toPixel: (value: number) => number;
}

/** An SVG line chart of `series`. Non-finite points are dropped; a lone point or a flat series gets a padded axis. */
export function lineChartSvg(series: PlotSeries[], options: LineChartOptions): string {
  const width = options.width ?? 720;
  const height = options.height ?? 480;
  const logY = options.logY ?? false;
  const drawn = series.map((s, i) => ({
    name: s.name,
    colour: s.colour ?? PLOT_PALETTE[i % PLOT_PALETTE.length],
    points: s.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y) && (!logY || p.y > 0)),
  }));
  const all = drawn.flatMap((s) => s.points);
  const box = {
    left: PLOT_MARGIN.left,
    right: width - PLOT_MARGIN.right,
    top: PLOT_MARGIN.top,
    bottom: height - PLOT_MARGIN.bottom,
  };
  const x = makeAxis(
    all.map((p) => p.x),
    false,
    box.left,
    box.right,
  );
  const y = makeAxis(
    all.map((p) => p.y),
    logY,
    box.bottom,
    box.top,
  );
  const markers = options.markers ?? true;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
      `viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    text(width / 2, 24, options.title, 'font-size="16" font-weight="bold" text-anchor="middle"'),
    ...(options.subtitle
      ? [text(width / 2, 44, options.subtitle, 'font-size="12" fill="#555" text-anchor="middle"')]
      : []),
    ...gridAndTicks(x, y, box),
    `<rect x="${num(box.left)}" y="${num(box.top)}" width="${num(box.right - box.left)}" ` +
      `height="${num(box.bottom - box.top)}" fill="none" stroke="#333"/>`,
    text((box.left + box.right) / 2, height - 14, options.xLabel, 'font-size="13" text-anchor="middle"'),
    text(
      18,
      (box.top + box.bottom) / 2,
      options.yLabel,
      `font-size="13" text-anchor="middle" transform="rotate(-90 18 ${num((box.top + box.bottom) / 2)})"`,
    ),
    ...drawn.flatMap((s) => seriesSvg(s, x, y, markers || s.points.length === 1)),
    ...drawn.flatMap((s, i) => legendEntry(s, i, box.right + 16, box.top + 8, markers)),
    '</svg>',
    '',
  ].join('\n');
}

/**
 * Several charts of one size (each a `lineChartSvg` of `width` × `height`) in one SVG, row by row,
 * `columns` to a row, under an optional title and subtitle spanning them all: each chart is nested
 * as it is, placed by its x and y.
 */
export function panelGridSvg(
  charts: string[],
  options: { width: number; height: number; columns: number; title?: string; subtitle?: string },
): string {
  const columns = Math.max(1, Math.min(options.columns, charts.length));
  const rows = Math.ceil(charts.length / columns);
  const header = options.title ? (options.subtitle ? 60 : 40) : 0;
  const [width, height] = [columns * options.width, header + rows * options.height];
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
      `viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    ...(options.title
      ? [text(width / 2, 26, options.title, 'font-size="18" font-weight="bold" text-anchor="middle"')]
      : []),
    ...(options.title && options.subtitle
      ? [text(width / 2, 48, options.subtitle, 'font-size="13" fill="#555" text-anchor="middle"')]
      : []),
    ...charts.map((chart, i) => {
      const at = `x="${(i % columns) * options.width}" y="${header + Math.floor(i / columns) * options.height}"`;
      return chart.trim().replace(/^<svg /, `<svg ${at} `);
    }),
    '</svg>',
    '',
  ].join('\n');
}

/**
 * Ticks at multiples of a 1/2/5 × 10^k step, about `target` intervals, covering [min, max]. A range of
 * (nearly) zero width is padded first, so a lone value still gets an axis around it.
 */
export function niceTicks(min: number, max: number, target = 5): number[] {
  if (!(max - min > Math.abs(max) * 1e-9)) {
    const pad = min === 0 ? 1 : Math.abs(min) * 0.1;
    [min, max] = [min - pad, max + pad];
  }
  const step = niceStep((max - min) / target);
  // The small allowance keeps float noise (0.3 / 0.1 = 2.9999…) from adding a tick.
  const first = Math.floor(min / step + 1e-9);
  const last = Math.ceil(max / step - 1e-9);
  const ticks: number[] = [];
  for (let k = first; k <= last; k++) ticks.push(clean(k * step));
  return ticks;
}

/**
 * Log-axis ticks from the decade below `min` to the decade above `max` (both > 0): 1, 2, 5 per decade
 * over at most two decades, else powers of ten.
 */
export function logTicks(min: number, max: number): number[] {
  let lo = Math.floor(Math.log10(min));
  let hi = Math.ceil(Math.log10(max));
  if (lo === hi) [lo, hi] = [lo - 1, hi + 1]; // a lone power of ten: centre it
  const mantissas = hi - lo <= 2 ? [1, 2, 5] : [1];
  const ticks: number[] = [];
  for (let e = lo; e < hi; e++) for (const m of mantissas) ticks.push(clean(m * 10 ** e));
  ticks.push(clean(10 ** hi));
  return ticks;
}

function niceStep(raw: number): number {
  const power = 10 ** Math.floor(Math.log10(raw));
  const fraction = raw / power;
  return (fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10) * power;
}

/** Drops float noise such as 0.30000000000000004 so tick labels print as written. */
function clean(value: number): number {
  return Number(value.toPrecision(12));
}

function makeAxis(values: number[], log: boolean, from: number, to: number): Axis {
  const [min, max] = values.length ? [Math.min(...values), Math.max(...values)] : log ? [1, 10] : [0, 1];
  const ticks = log ? logTicks(min, max) : niceTicks(min, max);
  const t = log ? Math.log10 : (v: number) => v;
  const [lo, hi] = [t(ticks[0]), t(ticks[ticks.length - 1])];
  return { ticks, toPixel: (value) => from + ((t(value) - lo) / (hi - lo)) * (to - from) };
}

function gridAndTicks(x: Axis, y: Axis, box: { left: number; right: number; top: number; bottom: number }): string[] {
  const grid = 'stroke="#e5e5e5"';
  const label = 'font-size="11" fill="#333"';
  return [
    ...x.ticks.flatMap((v) => {
      const px = num(x.toPixel(v));
      return [
        `<line x1="${px}" y1="${num(box.top)}" x2="${px}" y2="${num(box.bottom)}" ${grid}/>`,
        `<line x1="${px}" y1="${num(box.bottom)}" x2="${px}" y2="${num(box.bottom + 5)}" stroke="#333"/>`,
        text(x.toPixel(v), box.bottom + 18, String(v), `${label} text-anchor="middle"`),
      ];
    }),
    ...y.ticks.flatMap((v) => {
      const py = num(y.toPixel(v));
      return [
        `<line x1="${num(box.left)}" y1="${py}" x2="${num(box.right)}" y2="${py}" ${grid}/>`,
        `<line x1="${num(box.left - 5)}" y1="${py}" x2="${num(box.left)}" y2="${py}" stroke="#333"/>`,
        text(box.left - 8, y.toPixel(v), String(v), `${label} text-anchor="end" dy="0.32em"`),
      ];
    }),
  ];
}

function seriesSvg(
  s: { name: string; colour: string; points: PlotSeries['points'] },
  x: Axis,
  y: Axis,
  markers: boolean,
): string[] {
  const colour = escapeXml(s.colour);
  const at = s.points.map((p) => ({ px: x.toPixel(p.x), py: y.toPixel(p.y), label: p.label }));
  if (at.length === 0) return []; // still listed in the legend
  return [
    `<polyline points="${at.map((p) => `${num(p.px)},${num(p.py)}`).join(' ')}" ` +
      `fill="none" stroke="${colour}" stroke-width="2"/>`,
    ...(markers ? at.map((p) => `<circle cx="${num(p.px)}" cy="${num(p.py)}" r="3.5" fill="${colour}"/>`) : []),
    ...at.flatMap((p) => (p.label ? [text(p.px + 6, p.py - 6, p.label, 'font-size="11" fill="#333"')] : [])),
  ];
}

function legendEntry(
  s: { name: string; colour: string },
  index: number,
  left: number,
  top: number,
  markers: boolean,
): string[] {
  const y = top + index * 20;
  const colour = escapeXml(s.colour);
  return [
    `<line x1="${num(left)}" y1="${num(y)}" x2="${num(left + 22)}" y2="${num(y)}" ` +
      `stroke="${colour}" stroke-width="2"/>`,
    ...(markers ? [`<circle cx="${num(left + 11)}" cy="${num(y)}" r="3.5" fill="${colour}"/>`] : []),
    text(left + 28, y, s.name, 'font-size="12" dy="0.32em"'),
  ];
}

function text(x: number, y: number, content: string, attributes: string): string {
  return `<text x="${num(x)}" y="${num(y)}" ${attributes}>${escapeXml(content)}</text>`;
}

/** Pixel coordinates to two decimals: exact enough on screen, and short. */
function num(value: number): string {
  return String(Math.round(value * 100) / 100);
}

function escapeXml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}
