import { seeded } from '@matryoshka-ts/test-utils';
import { describe, expect, it } from 'vitest';
import { PLOT_MARGIN, PLOT_PALETTE, type PlotSeries, lineChartSvg, logTicks, niceTicks } from './plot.js';

const options = {
  title: 'FID vs CLIP score',
  subtitle: 'PROXY features — not comparable with published FID',
  xLabel: 'CLIP score',
  yLabel: 'FID',
};

/** Checks that every element is closed in order and that `&` only starts an entity: enough of XML for SVG viewers. */
function expectWellFormed(svg: string) {
  const stack: string[] = [];
  for (const [, close, name, selfClose] of svg.matchAll(/<(\/?)([a-zA-Z]+)[^<>]*?(\/?)>/g)) {
    if (selfClose) continue;
    if (close) expect(stack.pop()).toBe(name);
    else stack.push(name);
  }
  expect(stack).toEqual([]);
  expect(svg.match(/<svg /g)).toHaveLength(1);
  expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
  expect(svg).not.toMatch(/&(?!(amp|lt|gt|quot|apos);)/);
  expect(svg).not.toMatch(/NaN|Infinity|undefined/);
}

/** The circle markers' centres, in drawing order (legend markers come last). */
function circles(svg: string): Array<[number, number]> {
  return [...svg.matchAll(/<circle cx="([^"]+)" cy="([^"]+)"/g)].map((m) => [Number(m[1]), Number(m[2])]);
}

const isNice = (step: number) =>
  [1, 2, 5, 10].some((m) => Math.abs(step / 10 ** Math.floor(Math.log10(step)) - m) < 1e-9);

describe('lineChartSvg', () => {
  it('renders a well-formed chart with title, subtitle, labels and every series in the legend', () => {
    const series: PlotSeries[] = [
      {
        name: 'guidance sweep',
        points: [1, 2, 3, 5].map((w, i) => ({ x: 0.25 + i * 0.01, y: 30 - i * 2, label: `w=${w}` })),
      },
      { name: 'run <a> & "b"', points: [{ x: 0.26, y: 25 }], colour: '#123456' },
    ];
    const svg = lineChartSvg(series, options);
    expectWellFormed(svg);
    for (const s of [
      'FID vs CLIP score',
      'PROXY features — not comparable with published FID',
      'CLIP score',
      'FID',
      'guidance sweep',
      'w=1',
      'w=5',
    ])
      expect(svg).toContain(`>${s}</text>`);
    expect(svg).toContain('>run &lt;a&gt; &amp; &quot;b&quot;</text>');
    expect(svg).toContain('fill="white"');
    expect(svg).toContain(`stroke="${PLOT_PALETTE[0]}"`);
    expect(svg).toContain('stroke="#123456"');
  });

  it('maps data to pixels inside the margins, the axes spanning the outer ticks', () => {
    // x 0..10 and y 0..100 are already tick-aligned, so they are the axis ends.
    const svg = lineChartSvg(
      [
        {
          name: 's',
          points: [
            { x: 0, y: 0 },
            { x: 5, y: 50 },
            { x: 10, y: 100 },
            { x: 2, y: 80 },
          ],
        },
      ],
      { ...options, width: 600, height: 400 },
    );
    const [left, right, top, bottom] = [
      PLOT_MARGIN.left,
      600 - PLOT_MARGIN.right,
      PLOT_MARGIN.top,
      400 - PLOT_MARGIN.bottom,
    ];
    // Pixels are written to two decimals.
    const round = (v: number) => Math.round(v * 100) / 100;
    expect(circles(svg).slice(0, 4)).toEqual([
      [left, bottom],
      [(left + right) / 2, (top + bottom) / 2],
      [right, top],
      [round(left + 0.2 * (right - left)), round(bottom - 0.8 * (bottom - top))],
    ]);
    expect(svg).toContain(
      `<polyline points="${left},${bottom} ${(left + right) / 2},${(top + bottom) / 2} ${right},${top}`,
    );
  });

  it('puts y on a log scale when asked, dropping y ≤ 0', () => {
    const svg = lineChartSvg(
      [
        {
          name: 's',
          points: [
            { x: 0, y: 10 },
            { x: 1, y: 0 },
            { x: 2, y: 100 },
          ],
        },
      ],
      { ...options, logY: true, width: 600, height: 400 },
    );
    const [top, bottom] = [PLOT_MARGIN.top, 400 - PLOT_MARGIN.bottom];
    // Domain [10, 100]: one decade, so 10 sits on the bottom edge and 100 on the top.
    expect(
      circles(svg)
        .slice(0, 2)
        .map(([, cy]) => cy),
    ).toEqual([bottom, top]);
    expect(svg).toContain('>20</text>');
    expectWellFormed(svg);
  });

  it('drops non-finite points and connects the rest in order', () => {
    const points = [
      { x: 0, y: 0 },
      { x: Number.NaN, y: 1 },
      { x: 1, y: Number.POSITIVE_INFINITY },
      { x: 2, y: 2 },
      { x: 3, y: Number.NaN, label: 'gone' },
    ];
    const svg = lineChartSvg([{ name: 's', points }], { ...options, markers: false });
    expectWellFormed(svg);
    expect(svg.match(/<polyline points="([^"]*)"/)![1].split(' ')).toHaveLength(2);
    expect(circles(svg)).toEqual([]);
    expect(svg).not.toContain('gone');
  });

  it('renders a single point, a constant series and an empty one without NaN', () => {
    const single = lineChartSvg([{ name: 'one', points: [{ x: 3, y: 12.5 }] }], { ...options, markers: false });
    expectWellFormed(single);
    expect(circles(single)).toHaveLength(1); // a lone point always gets a marker
    const flat = lineChartSvg([{ name: 'flat', points: [0, 1, 2].map((x) => ({ x, y: 7 })) }], options);
    expectWellFormed(flat);
    const [left, right] = [PLOT_MARGIN.left, 720 - PLOT_MARGIN.right];
    const [top, bottom] = [PLOT_MARGIN.top, 480 - PLOT_MARGIN.bottom];
    for (const [cx, cy] of circles(flat)) {
      expect(cx).toBeGreaterThanOrEqual(left);
      expect(cx).toBeLessThanOrEqual(right + 30); // the legend marker sits right of the plot
      expect(cy).toBeGreaterThan(top);
      expect(cy).toBeLessThan(bottom);
    }
    expectWellFormed(lineChartSvg([{ name: 'empty', points: [{ x: Number.NaN, y: 1 }] }], { ...options, logY: true }));
    expectWellFormed(lineChartSvg([], options));
  });
});

describe('niceTicks', () => {
  it('gives 1/2/5 × 10^k steps covering random ranges', () => {
    const random = seeded(11);
    for (let trial = 0; trial < 200; trial++) {
      const scale = 10 ** Math.floor(random() * 12 - 6);
      const a = (random() - 0.5) * 100 * scale;
      const b = a + random() * 100 * scale;
      const ticks = niceTicks(a, b);
      const step = ticks[1] - ticks[0];
      expect(isNice(step)).toBe(true);
      for (const t of ticks) expect(Math.abs(t / step - Math.round(t / step))).toBeLessThan(1e-6);
      expect(ticks[0]).toBeLessThanOrEqual(a);
      expect(ticks[ticks.length - 1]).toBeGreaterThanOrEqual(b);
      expect(ticks.length).toBeGreaterThanOrEqual(3);
      expect(ticks.length).toBeLessThanOrEqual(12);
    }
  });

  it('prints as written and pads a zero-width range', () => {
    expect(niceTicks(0, 10)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(niceTicks(0.1, 0.7)).toEqual([0, 0.2, 0.4, 0.6, 0.8]);
    expect(niceTicks(0.3, 0.7)).toEqual([0.3, 0.4, 0.5, 0.6, 0.7]); // 0.3 / 0.1 is 2.9999… in floats
    expect(niceTicks(0, 0)).toEqual([-1, -0.5, 0, 0.5, 1]);
    expect(niceTicks(20, 20)).toEqual([18, 19, 20, 21, 22]);
  });

  it('gives log ticks over whole decades', () => {
    expect(logTicks(12, 40)).toEqual([10, 20, 50, 100]);
    expect(logTicks(0.5, 3000)).toEqual([0.1, 1, 10, 100, 1000, 10000]);
    expect(logTicks(10, 10)).toEqual([1, 2, 5, 10, 20, 50, 100]);
  });
});
