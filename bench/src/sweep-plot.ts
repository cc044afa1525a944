// The sweep's chart: ratio tfjs / PyTorch (linear y) against batch size and against parameter count
// (log x), one panel each, train and sample as two series, dashed lines at 1.0 (parity) and 1.2
// (the goal's ceiling). Hand-written SVG like packages/pipelines/src/plot.ts, whose lineChartSvg
// does not fit here (log y, linear x, no reference lines, one panel).

/** One point of a panel: x (batch or parameters), both ratios (null where PyTorch did not run), a tick label. */
export interface RatioPoint {
  x: number;
  train: number | null;
  sample: number | null;
  label: string;
  /** A second tick line (the model's name in the model panel). */
  sublabel?: string;
}

export interface Panel {
  title: string;
  xLabel: string;
  points: RatioPoint[];
}

const SERIES = [
  { key: 'train', name: 'training step', colour: '#1f77b4' },
  { key: 'sample', name: 'sampling step', colour: '#d62728' },
] as const;
const LINES = [
  { y: 1.2, name: '1.2: the goal’s ceiling', colour: '#e08000' },
  { y: 1.0, name: '1.0: parity', colour: '#777' },
];

const W = 460;
const H = 360;
const M = { left: 56, right: 16, top: 36, bottom: 64 };

/** Both panels side by side under a title and a legend; `note` (e.g. "PyTorch not installed") under the legend. */
export function sweepSvg(panels: Panel[], title: string, note = ''): string {
  const ratios = panels.flatMap((p) => p.points.flatMap((q) => [q.train, q.sample])).filter((r) => r !== null);
  // At least up to 1.5 so that both reference lines show; steps of 0.25.
  const yMax = Math.max(1.5, Math.ceil((Math.max(0, ...ratios) * 1.1) / 0.25) * 0.25);
  const top = 56;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W * panels.length}" height="${H + top}" ` +
      `viewBox="0 0 ${W * panels.length} ${H + top}" font-family="sans-serif" font-size="12">`,
    '<rect width="100%" height="100%" fill="white"/>',
    `<text x="${(W * panels.length) / 2}" y="20" text-anchor="middle" font-size="15">${esc(title)}</text>`,
    legend(top - 18, note),
  ];
  panels.forEach((p, i) => parts.push(`<g transform="translate(${i * W} ${top})">`, panel(p, yMax), '</g>'));
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

function legend(y: number, note: string): string {
  const items = [
    ...SERIES.map((s) => ({ name: s.name, colour: s.colour, dash: '' })),
    ...LINES.map((l) => ({ name: l.name, colour: l.colour, dash: ' stroke-dasharray="6 4"' })),
  ];
  const out = items.map(
    (it, i) =>
      `<line x1="${M.left + i * 180}" x2="${M.left + i * 180 + 24}" y1="${y - 4}" y2="${y - 4}" ` +
      `stroke="${it.colour}" stroke-width="2"${it.dash}/>` +
      `<text x="${M.left + i * 180 + 30}" y="${y}">${esc(it.name)}</text>`,
  );
  if (note) out.push(`<text x="${M.left}" y="${y + 16}" fill="#a00">${esc(note)}</text>`);
  return out.join('\n');
}

function panel(p: Panel, yMax: number): string {
  const xs = p.points.map((q) => Math.log10(q.x));
  // A margin of 0.2 decades on each side (so that one point alone still gets an axis).
  const [x0, x1] = xs.length ? [Math.min(...xs) - 0.2, Math.max(...xs) + 0.2] : [0, 1];
  const px = (x: number) => M.left + ((Math.log10(x) - x0) / (x1 - x0)) * (W - M.left - M.right);
  const py = (y: number) => H - M.bottom - (y / yMax) * (H - M.top - M.bottom);
  const out = [`<text x="${W / 2}" y="${M.top - 12}" text-anchor="middle" font-size="13">${esc(p.title)}</text>`];
  for (let y = 0; y <= yMax + 1e-9; y += 0.25) {
    out.push(
      `<line x1="${M.left}" x2="${W - M.right}" y1="${py(y)}" y2="${py(y)}" stroke="#eee"/>`,
      `<text x="${M.left - 6}" y="${py(y) + 4}" text-anchor="end">${y.toFixed(2)}</text>`,
    );
  }
  for (const l of LINES) {
    out.push(
      `<line x1="${M.left}" x2="${W - M.right}" y1="${py(l.y)}" y2="${py(l.y)}" ` +
        `stroke="${l.colour}" stroke-width="1.5" stroke-dasharray="6 4"/>`,
    );
  }
  for (const q of p.points) {
    const x = px(q.x);
    out.push(`<text x="${x}" y="${H - M.bottom + 16}" text-anchor="middle">${esc(q.label)}</text>`);
    if (q.sublabel)
      out.push(`<text x="${x}" y="${H - M.bottom + 30}" text-anchor="middle" font-size="10">${esc(q.sublabel)}</text>`);
  }
  out.push(
    `<rect x="${M.left}" y="${M.top}" width="${W - M.left - M.right}" height="${H - M.top - M.bottom}" ` +
      'fill="none" stroke="#444"/>',
    `<text x="${(M.left + W - M.right) / 2}" y="${H - 14}" text-anchor="middle">${esc(p.xLabel)}</text>`,
    `<text x="14" y="${H / 2}" text-anchor="middle" transform="rotate(-90 14 ${H / 2})">` +
      'tfjs time / PyTorch time</text>',
  );
  for (const s of SERIES) {
    const pts = p.points.filter((q) => q[s.key] !== null).map((q) => [px(q.x), py(q[s.key]!)] as const);
    if (pts.length > 1)
      out.push(
        `<polyline fill="none" stroke="${s.colour}" stroke-width="2" ` +
          `points="${pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' ')}"/>`,
      );
    for (const [x, y] of pts)
      out.push(`<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="3.5" fill="${s.colour}"/>`);
  }
  return out.join('\n');
}

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
