// The admin SSE stream: `history` once per connection, then a `sample` every second. Series
// are kept per sale, at most 15 minutes, one point per second (a sample seen twice around a
// reconnect is kept once).

export const WINDOW_MS = 15 * 60 * 1000;
export const FIELDS = ['queue_len', 'admissions_per_sec', 'orders_per_sec', 'remaining',
  'admitted_active', 'pending_sync', 'checkout_p99_ms'];

export const data = { series: new Map(), latest: null };

function blank() {
  const s = { t: [] };
  for (const f of FIELDS) s[f] = [];
  return s;
}

function trim(s, now) {
  let drop = 0;
  while (drop < s.t.length && s.t[drop] <= now - WINDOW_MS) drop++;
  if (drop) for (const k of Object.keys(s)) s[k].splice(0, drop);
}

function load(history) {
  data.series.clear();
  for (const [id, s] of Object.entries(history.series || {})) {
    const copy = blank();
    copy.t = s.t;
    for (const f of FIELDS) copy[f] = s[f] || [];
    data.series.set(id, copy);
  }
  if (history.latest) add(history.latest);
}

function add(sample) {
  for (const sale of sample.sales) {
    let s = data.series.get(sale.id);
    if (!s) data.series.set(sale.id, (s = blank()));
    if (s.t.length && s.t[s.t.length - 1] >= sample.t) continue;
    s.t.push(sample.t);
    for (const f of FIELDS) s[f].push(sale[f] ?? null);
    trim(s, sample.t);
  }
  data.latest = sample;
}

// Opens the stream; `onChange` runs after each history or sample, `onState` with
// 'live' | 'connecting' | 'down' (the caller checks whether the session ended).
export function connect({ onChange, onState }) {
  const es = new EventSource('/api/admin/events');
  onState('connecting');
  es.addEventListener('history', (e) => { load(JSON.parse(e.data)); onState('live'); onChange(); });
  es.addEventListener('sample', (e) => { add(JSON.parse(e.data)); onChange(); });
  es.onerror = () => onState(es.readyState === EventSource.CLOSED ? 'down' : 'connecting');
  return es;
}
