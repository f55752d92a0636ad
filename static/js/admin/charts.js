// The selected sale's charts, drawn by uPlot (vendored in /static/vendor/uplot, loaded as a
// classic script: it defines the global `uPlot`). One small chart per measure, so each keeps
// its own scale; they share the time axis of the last 15 minutes.

import { el } from './format.js';

const CHARTS = [
  { key: 'queue_len', title: 'Line length', color: '#2563eb' },
  { key: 'admissions_per_sec', title: 'Admissions/s', color: '#059669' },
  { key: 'orders_per_sec', title: 'Orders/s', color: '#d97706' },
  { key: 'remaining', title: 'Units left', color: '#7c3aed' },
  { key: 'admitted_active', title: 'Active tickets', color: '#0891b2' },
  { key: 'pending_sync', title: 'Pending ledger sync', color: '#dc2626' },
  { key: 'checkout_p99_ms', title: 'Checkout p99 (ms)', color: '#4b5563' },
];

const HEIGHT = 150;
let drawn = [];
let host = null;

function width(box) {
  return Math.max(200, Math.floor(box.clientWidth));
}

function options(c, box) {
  return {
    width: width(box),
    height: HEIGHT,
    legend: { show: false },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
    axes: [{ stroke: 'currentColor', grid: { show: false } },
      { stroke: 'currentColor', size: 48, grid: { stroke: 'rgba(128,128,128,.2)' } }],
    series: [{}, { label: c.title, stroke: c.color, width: 2, fill: `${c.color}22`, spanGaps: false }],
  };
}

function columns(series, key) {
  if (!series) return [[], []];
  return [series.t.map((t) => t / 1000), series[key]];
}

// (Re)builds the charts in `container` for one sale's series.
export function show(container, series) {
  clear();
  host = container;
  for (const c of CHARTS) {
    const box = el('figure', { class: 'chart', 'data-chart': c.key });
    box.append(el('figcaption', {}, c.title));
    container.append(box);
    const u = new globalThis.uPlot(options(c, box), columns(series, c.key), box);
    drawn.push({ c, u, box });
  }
}

export function update(series) {
  for (const { c, u } of drawn) u.setData(columns(series, c.key));
}

export function clear() {
  for (const { u } of drawn) u.destroy();
  drawn = [];
  if (host) host.replaceChildren();
}

let pending = false;
addEventListener('resize', () => {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    for (const { u, box } of drawn) u.setSize({ width: width(box), height: HEIGHT });
  });
});
