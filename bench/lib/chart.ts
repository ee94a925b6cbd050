/**
 * A small SVG bar chart of the goal ratios: one bar per goal (the ratio of
 * medians), a whisker for the per-round range, a tick at the goal, green when
 * the goal is met and red when it is not. Written at run time, never committed.
 */
import { goalMet, type Goal } from './report.js';

/** The axis ends here; ratios beyond are drawn to the edge and labelled with their value. */
const AXIS_CAP = 5;

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** The chart as SVG text. Goals without a value are drawn as 'n/a'. */
export function goalChart(goals: Goal[], title: string): string {
  const labelW = 470;
  const plotW = 360;
  const rowH = 34;
  const top = 48;
  const height = top + goals.length * rowH + 40;
  const width = labelW + plotW + 150;
  const finite = goals.flatMap((g) => [g.value, g.range[1], g.target]).filter((v) => Number.isFinite(v));
  // Capped so that one far-off ratio does not flatten the others; longer bars are cut at the edge.
  const maxX = Math.min(AXIS_CAP, Math.max(1.2, ...finite) * 1.08);
  const x = (v: number): number => labelW + (Math.min(Math.max(0, v), maxX) / maxX) * plotW;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="13">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="12" y="24" font-size="15" font-weight="bold">${esc(title)}</text>`,
    `<text x="12" y="40" font-size="11" fill="#555">ratio of medians; whisker: per-round range; black tick: goal (green met, red missed)</text>`,
  ];
  for (let v = 0; v <= maxX; v += maxX > 4 ? 1 : 0.5) {
    parts.push(`<line x1="${x(v)}" x2="${x(v)}" y1="${top - 4}" y2="${top + goals.length * rowH}" stroke="#ddd"/>`);
    parts.push(`<text x="${x(v)}" y="${top + goals.length * rowH + 16}" text-anchor="middle" font-size="11" fill="#555">${v.toFixed(1)}</text>`);
  }
  goals.forEach((g, i) => {
    const y = top + i * rowH;
    const met = goalMet(g);
    const color = met === undefined ? '#999' : met ? '#2e8b57' : '#c0392b';
    parts.push(`<text x="${labelW - 8}" y="${y + 20}" text-anchor="end">${esc(g.label)}</text>`);
    if (Number.isFinite(g.value)) {
      parts.push(`<rect x="${labelW}" y="${y + 7}" width="${Math.max(1, x(g.value) - labelW)}" height="18" fill="${color}"/>`);
      if (Number.isFinite(g.range[0]) && g.range[0] !== g.range[1]) {
        parts.push(`<line x1="${x(g.range[0])}" x2="${x(g.range[1])}" y1="${y + 16}" y2="${y + 16}" stroke="#222" stroke-width="1.5"/>`);
      }
      const cut = g.value > maxX ? ' ▶' : '';
      // The label starts past the bar, its whisker and the goal tick.
      const textX = Math.max(x(g.value), Number.isFinite(g.range[1]) ? x(g.range[1]) : 0, x(g.target)) + 6;
      parts.push(`<text x="${textX}" y="${y + 20}" font-size="12">${esc(`${g.value.toFixed(2)}${cut} (goal ${g.op} ${g.target})`)}</text>`);
    } else {
      parts.push(`<text x="${labelW + 6}" y="${y + 20}" fill="#999">n/a</text>`);
    }
    parts.push(`<line x1="${x(g.target)}" x2="${x(g.target)}" y1="${y + 3}" y2="${y + 29}" stroke="#000" stroke-width="2"/>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
