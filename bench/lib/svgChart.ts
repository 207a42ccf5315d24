/** A hand-drawn SVG line chart: lines over time, in seconds and MiB, with a legend. */

export interface Series {
  readonly name: string;
  readonly color: string;
  /** [seconds, MiB] pairs, in time order. */
  readonly points: readonly (readonly [number, number])[];
  readonly width?: number;
}

export interface Band {
  readonly label: string;
  readonly fromS: number;
  readonly toS: number;
}

const WIDTH = 900;
const HEIGHT = 440;
const MARGIN = { left: 64, right: 20, top: 56, bottom: 48 };

/** A round step that cuts `span` into about `parts` parts. */
function niceStep(span: number, parts: number): number {
  const raw = span / parts;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((candidate) => candidate >= raw);
  return step ?? 10 * magnitude;
}

const escape = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function lineChart(title: string, series: readonly Series[], band?: Band): string {
  const all = series.flatMap((line) => line.points);
  const maxX = Math.max(1, ...all.map(([x]) => x));
  const xStep = niceStep(maxX, 10);
  const yStep = niceStep(Math.max(1, ...all.map(([, y]) => y)), 6);
  const maxY = Math.ceil((Math.max(1, ...all.map(([, y]) => y)) * 1.05) / yStep) * yStep;
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const x = (seconds: number): number => MARGIN.left + (seconds / maxX) * plotW;
  const y = (mib: number): number => MARGIN.top + plotH - (mib / maxY) * plotH;
  const fixed = (n: number): string => n.toFixed(1);

  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#fff"/>`,
    `<text x="${MARGIN.left}" y="22" font-size="15" font-weight="bold">${escape(title)}</text>`,
  ];
  if (band) {
    parts.push(
      `<rect x="${fixed(x(band.fromS))}" y="${MARGIN.top}" width="${fixed(x(band.toS) - x(band.fromS))}" height="${plotH}" fill="#f2f2f2"/>`,
      `<text x="${fixed(x(band.fromS) + 4)}" y="${MARGIN.top + 14}" fill="#777">${escape(band.label)}</text>`,
    );
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
    `<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${MARGIN.top + plotH}" y2="${MARGIN.top + plotH}" stroke="#333"/>`,
    `<line x1="${MARGIN.left}" x2="${MARGIN.left}" y1="${MARGIN.top}" y2="${MARGIN.top + plotH}" stroke="#333"/>`,
    `<text x="${MARGIN.left + plotW / 2}" y="${HEIGHT - 10}" text-anchor="middle">seconds since the process started</text>`,
    `<text transform="translate(16 ${MARGIN.top + plotH / 2}) rotate(-90)" text-anchor="middle">MiB</text>`,
  );
  series.forEach((line, i) => {
    const points = line.points.map(([sx, sy]) => `${fixed(x(sx))},${fixed(y(sy))}`).join(' ');
    parts.push(`<polyline fill="none" stroke="${line.color}" stroke-width="${line.width ?? 2}" points="${points}"/>`);
    const legendX = MARGIN.left + i * 205;
    parts.push(
      `<line x1="${legendX}" x2="${legendX + 22}" y1="40" y2="40" stroke="${line.color}" stroke-width="3"/>`,
      `<text x="${legendX + 28}" y="44">${escape(line.name)}</text>`,
    );
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
