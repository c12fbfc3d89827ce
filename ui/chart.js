// ui/chart.js — small line charts in SVG (no chart library): a time axis, a
// value axis from 0 to the highest value, one or more series.
import { s, h, fmtNum } from './lib.js';

const W = 420, H = 150, L = 46, R = 10, T = 10, B = 22;

// series: [{name, points: [[t_ms, value], …]}]
export function lineChart(title, series, { unit = '' } = {}) {
  const all = series.flatMap(x => x.points);
  const t0 = Math.min(...all.map(p => p[0])), t1 = Math.max(...all.map(p => p[0]));
  const vmax = Math.max(1, ...all.map(p => p[1]));
  const top = niceMax(vmax);
  const x = t => L + (t1 > t0 ? (t - t0) / (t1 - t0) : 1) * (W - L - R);
  const y = v => T + (1 - v / top) * (H - T - B);
  const last = series.map(x => (x.points.length ? x.points[x.points.length - 1][1] : null));
  const svg = s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': title },
    [0, 0.5, 1].map(f => [
      s('line', { x1: L, x2: W - R, y1: y(top * f), y2: y(top * f), class: 'grid' }),
      s('text', { x: L - 6, y: y(top * f) + 4, 'text-anchor': 'end', class: 'axis' }, fmtNum(top * f, Number.isInteger(top * f) ? 0 : 1)),
    ]),
    all.length ? [
      s('text', { x: L, y: H - 6, class: 'axis' }, clock(t0)),
      s('text', { x: W - R, y: H - 6, 'text-anchor': 'end', class: 'axis' }, clock(t1)),
    ] : s('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'axis' }, 'no samples yet'),
    series.map((sr, i) => s('polyline', { class: 'line l' + i, points: sr.points.map(p => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' ') })));
  return h('figure', { class: 'chart-box' },
    h('figcaption', {}, h('strong', {}, title), ' ',
      series.map((sr, i) => h('span', { class: 'legend l' + i }, `${sr.name} ${last[i] === null ? '–' : fmtNum(last[i], last[i] < 10 ? 2 : 0)}${unit}`))),
    svg);
}

function niceMax(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

const clock = t => new Date(t).toISOString().slice(11, 19);

// Rates per second between consecutive samples of a total.
export function rates(samples, get) {
  const out = [];
  for (let i = 1; i < samples.length; i++) {
    const dt = (samples[i].t - samples[i - 1].t) / 1000;
    if (dt > 0) out.push([samples[i].t, Math.max(0, (get(samples[i]) - get(samples[i - 1])) / dt)]);
  }
  return out;
}
