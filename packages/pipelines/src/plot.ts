/** One series of a line plot. */
export interface Series {
  name: string;
  points: Array<[number, number]>;
  colour: string;
}

/** Moving average over `window` points, for a readable loss curve. */
export function smooth(points: Array<[number, number]>, window: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let sum = 0;
  for (let i = 0; i < points.length; i++) {
    sum += points[i][1];
    if (i >= window) sum -= points[i - window][1];
    out.push([points[i][0], sum / Math.min(i + 1, window)]);
  }
  return out;
}

/** A self-contained SVG line plot with a log-scale y axis (losses span decades). */
export function lineChartSvg(
  series: Series[],
  options: { title: string; xLabel: string; yLabel: string; width?: number; height?: number },
): string {
  const width = options.width ?? 720;
  const height = options.height ?? 420;
  const m = { left: 70, right: 20, top: 40, bottom: 50 };
  const all = series.flatMap((s) => s.points).filter(([, y]) => y > 0 && Number.isFinite(y));
  const xs = all.map(([x]) => x);
  const ys = all.map(([, y]) => Math.log10(y));
  const [x0, x1] = xs.length ? [Math.min(...xs), Math.max(...xs)] : [0, 1];
  let [y0, y1] = ys.length ? [Math.floor(Math.min(...ys) * 4) / 4, Math.ceil(Math.max(...ys) * 4) / 4] : [-1, 0];
  if (y1 - y0 < 0.25) [y0, y1] = [y0 - 0.25, y1 + 0.25];
  const px = (x: number) => m.left + ((x - x0) / Math.max(x1 - x0, 1e-9)) * (width - m.left - m.right);
  const py = (y: number) => height - m.bottom - ((Math.log10(y) - y0) / (y1 - y0)) * (height - m.top - m.bottom);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
      `viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15">${escapeXml(options.title)}</text>`,
  ];
  for (let e = Math.ceil(y0); e <= Math.floor(y1); e++) {
    const y = py(10 ** e);
    parts.push(
      `<line x1="${m.left}" x2="${width - m.right}" y1="${y}" y2="${y}" stroke="#ddd"/>`,
      `<text x="${m.left - 6}" y="${y + 4}" text-anchor="end">1e${e}</text>`,
    );
  }
  for (let i = 0; i <= 5; i++) {
    const x = x0 + ((x1 - x0) * i) / 5;
    parts.push(`<text x="${px(x)}" y="${height - m.bottom + 18}" text-anchor="middle">${Math.round(x)}</text>`);
  }
  parts.push(
    `<rect x="${m.left}" y="${m.top}" width="${width - m.left - m.right}" ` +
      `height="${height - m.top - m.bottom}" fill="none" stroke="#444"/>`,
    `<text x="${width / 2}" y="${height - 12}" text-anchor="middle">${escapeXml(options.xLabel)}</text>`,
    `<text x="16" y="${height / 2}" text-anchor="middle" transform="rotate(-90 16 ${height / 2})">` +
      `${escapeXml(options.yLabel)}</text>`,
  );
  series.forEach((s, i) => {
    const pts = s.points.filter(([, y]) => y > 0 && Number.isFinite(y));
    if (pts.length)
      parts.push(
        `<polyline fill="none" stroke="${s.colour}" stroke-width="1.5" ` +
          `points="${pts.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ')}"/>`,
      );
    parts.push(
      `<text x="${width - m.right - 8}" y="${m.top + 16 + 16 * i}" text-anchor="end" fill="${s.colour}">` +
        `${escapeXml(s.name)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n');
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
