/** A hand-drawn SVG line chart: lines over time, in seconds and MiB, with a legend. */

export interface Series {
  readonly name: string;
  readonly color: string;
  /** [seconds, MiB] pairs, in time order. */
  readonly points: readonly (readonly [number, number])[];
  readonly width?: number;
}

/** A span of time shaded behind the lines. */
export interface Band {
  readonly fromS: number;
  readonly toS: number;
  readonly color: string;
}

export interface ChartOptions {
  /** What the seconds count from. */
  readonly xLabel: string;
  readonly bands?: readonly Band[];
}

const WIDTH = 900;
const HEIGHT = 440;
const MARGIN = { left: 64, right: 20, top: 56, bottom: 48 };
/** Legend rows are this far apart; each added row pushes the plot down by as much. */
const LEGEND_ROW = 18;
/** A rough width of one legend character at font size 12, enough to keep names apart. */
const CHAR_WIDTH = 6.5;

interface LegendEntry {
  readonly line: Series;
  readonly x: number;
  readonly row: number;
}

/** Lays the legend out left to right, starting a new row when the next name would run off the chart. */
function legendLayout(series: readonly Series[]): LegendEntry[] {
  const entries: LegendEntry[] = [];
  let x = MARGIN.left;
  let row = 0;
  for (const line of series) {
    const width = 28 + line.name.length * CHAR_WIDTH + 24;
    if (x + width > WIDTH - MARGIN.right && x > MARGIN.left) {
      x = MARGIN.left;
      row += 1;
    }
    entries.push({ line, x, row });
    x += width;
  }
  return entries;
}

/** A round step that cuts `span` into about `parts` parts. */
function niceStep(span: number, parts: number): number {
  const raw = span / parts;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((candidate) => candidate >= raw);
  return step ?? 10 * magnitude;
}

const escape = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function lineChart(title: string, series: readonly Series[], options: ChartOptions): string {
  const all = series.flatMap((line) => line.points);
  const maxX = Math.max(1, ...all.map(([x]) => x));
  const xStep = niceStep(maxX, 10);
  const yStep = niceStep(Math.max(1, ...all.map(([, y]) => y)), 6);
  const maxY = Math.ceil((Math.max(1, ...all.map(([, y]) => y)) * 1.05) / yStep) * yStep;
  const legend = legendLayout(series);
  const top = MARGIN.top + Math.max(0, ...legend.map((entry) => entry.row)) * LEGEND_ROW;
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - top - MARGIN.bottom;
  const x = (seconds: number): number => MARGIN.left + (seconds / maxX) * plotW;
  const y = (mib: number): number => top + plotH - (mib / maxY) * plotH;
  const fixed = (n: number): string => n.toFixed(1);

  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#fff"/>`,
    `<text x="${MARGIN.left}" y="22" font-size="15" font-weight="bold">${escape(title)}</text>`,
  ];
  for (const band of options.bands ?? []) {
    parts.push(`<rect x="${fixed(x(band.fromS))}" y="${top}" width="${fixed(x(band.toS) - x(band.fromS))}" height="${plotH}" fill="${band.color}" fill-opacity="0.12"/>`);
  }
  for (let value = 0; value <= maxY; value += yStep) {
    parts.push(
      `<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${fixed(y(value))}" y2="${fixed(y(value))}" stroke="#ddd"/>`,
      `<text x="${MARGIN.left - 6}" y="${fixed(y(value) + 4)}" text-anchor="end">${value}</text>`,
    );
  }
  for (let value = 0; value <= maxX; value += xStep) {
    parts.push(`<text x="${fixed(x(value))}" y="${HEIGHT - MARGIN.bottom + 18}" text-anchor="middle">${value}</text>`);
  }
  parts.push(
    `<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${top + plotH}" y2="${top + plotH}" stroke="#333"/>`,
    `<line x1="${MARGIN.left}" x2="${MARGIN.left}" y1="${top}" y2="${top + plotH}" stroke="#333"/>`,
    `<text x="${MARGIN.left + plotW / 2}" y="${HEIGHT - 10}" text-anchor="middle">${escape(options.xLabel)}</text>`,
    `<text transform="translate(16 ${top + plotH / 2}) rotate(-90)" text-anchor="middle">MiB</text>`,
  );
  for (const { line, x: legendX, row } of legend) {
    const points = line.points.map(([sx, sy]) => `${fixed(x(sx))},${fixed(y(sy))}`).join(' ');
    parts.push(`<polyline fill="none" stroke="${line.color}" stroke-width="${line.width ?? 2}" points="${points}"/>`);
    const legendY = 40 + row * LEGEND_ROW;
    parts.push(
      `<line x1="${legendX}" x2="${legendX + 22}" y1="${legendY}" y2="${legendY}" stroke="${line.color}" stroke-width="3"/>`,
      `<text x="${legendX + 28}" y="${legendY + 4}">${escape(line.name)}</text>`,
    );
  }
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
