// The audit trail (GET …/events?after=&limit=) and the fairness report (GET …/report).
// Read on demand (selection, refresh, after a control), never polled.

import { api, explain, salePath } from './api.js';
import { $, el, num, when } from './format.js';

const PAGE = 50;
let audit = { sale: null, after: 0, rows: [] };

function row(e) {
  const li = el('li', { 'data-kind': e.kind });
  li.append(el('time', { datetime: e.at }, when(e.at)),
    el('strong', {}, e.kind),
    el('span', { class: 'badge' }, e.source),
    el('code', {}, e.detail && Object.keys(e.detail).length ? JSON.stringify(e.detail) : ''));
  return li;
}

// Loads the next page of the sale's trail (from the start when the sale changed); newest
// first on screen.
export async function loadAudit(sale, { more = false } = {}) {
  if (audit.sale !== sale || !more) audit = { sale, after: 0, rows: [] };
  const msg = $('#audit-msg');
  try {
    let page;
    do {
      page = await api(`${salePath(sale, '/events')}?after=${audit.after}&limit=${PAGE}`);
      if (audit.sale !== sale) return;
      audit.rows.push(...page.events);
      if (page.next_after != null) audit.after = page.next_after;
    } while (!more && page.events.length === PAGE && audit.rows.length < 5 * PAGE);
    $('#audit').replaceChildren(...audit.rows.slice().reverse().map(row));
    $('#audit-more').hidden = page.events.length < PAGE;
    msg.textContent = audit.rows.length ? '' : 'No events yet.';
  } catch (err) {
    $('#audit').replaceChildren();
    msg.textContent = explain(err, 'Audit trail');
  }
}

const REPORT = [
  ['joined', 'Joined'], ['admitted', 'Admitted'], ['bought', 'Bought'], ['lapsed', 'Lapsed'],
  ['wait_p50_ms', 'Wait p50', (v) => num(v, { unit: ' ms' })],
  ['wait_p95_ms', 'Wait p95', (v) => num(v, { unit: ' ms' })],
  ['fifo_inversions', 'FIFO inversions'],
  ['admission_rate', 'Admitted/s achieved', (v) => num(v, { decimals: true })],
  ['configured_rate', 'Admitted/s configured', (v) => num(v, { decimals: true })],
  ['refunds_due', 'Refunds due'],
  ['refund_due_cents', 'Refund amount', (v) => (v == null ? '–' : (v / 100).toFixed(2))],
];

export async function loadReport(sale) {
  const msg = $('#report-msg');
  try {
    const r = await api(salePath(sale, '/report'));
    $('#report').replaceChildren(...REPORT.map(([k, label, f = num]) => {
      const d = el('div');
      d.append(el('dt', {}, label), el('dd', { 'data-k': k }, f(r[k])));
      return d;
    }));
    msg.textContent = '';
  } catch (err) {
    $('#report').replaceChildren();
    msg.textContent = explain(err, 'Report');
  }
}
