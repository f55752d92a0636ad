// Waitroom shopper page. One state object `S`, one `render(S)`; everything
// else fetches data, updates S and calls `set()`.

const POLL_MS = 3000;
const SSE_RETRY_MS = 30000;
const MAX_SSE_ERRORS = 3;

const $ = (sel) => document.querySelector(sel);
const enc = encodeURIComponent;
const money = new Intl.NumberFormat(undefined, { style: 'currency', currency: 'USD' });
const num = new Intl.NumberFormat();
const cents = (c) => money.format((Number(c) || 0) / 100);

const S = {
  view: 'loading', saleId: null, sale: null, sales: null,
  token: null, ticket: null, expiresAt: null, order: null,
  anchorPos: 1, anchorAdmitted: 0, anchored: false, admittedTotal: 0, initialPos: 0,
  queueLen: null, remaining: null, rate: 0, open: false, wasOpen: false,
  quantity: 1, stockCap: Infinity, conn: '', message: '', busy: false, canRetry: false,
};

let es = null;          // current EventSource
let sseErrors = 0;      // errors since the last event
let polling = false;
let inFlight = false;   // a checkout request is on the wire
let lastChance = false; // one final checkout retry was made after the timer hit 0
let retryAction = null;
const timers = {};

function set(patch) { Object.assign(S, patch); render(S); }
function say(message, retry = null) { retryAction = retry; return { message, canRetry: !!retry }; }
function later(name, fn, ms) { clearTimeout(timers[name]); timers[name] = setTimeout(fn, ms); }
function cancel(...names) { for (const n of names) { clearTimeout(timers[n]); clearInterval(timers[n]); delete timers[n]; } }

// ---- storage (localStorage may be unavailable in private modes) ----
const key = (what) => `waitroom:${S.saleId}:${what}`;
const store = {
  get(what) { try { return localStorage.getItem(key(what)); } catch { return null; } },
  set(what, v) { try { localStorage.setItem(key(what), String(v)); } catch { /* ignore */ } },
  del(...whats) { for (const w of whats) { try { localStorage.removeItem(key(w)); } catch { /* ignore */ } } },
};

// ---- api ----
async function api(path, { method = 'GET', body, bearer } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  let res;
  try {
    res = await fetch(path, { method, headers, cache: 'no-store', body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw apiError(0, 'network', 'We can’t reach the server right now.', null);
  }
  const data = await res.json().catch(() => null);
  if (res.ok) return data;
  throw apiError(res.status, data?.code ?? `http_${res.status}`, data?.message ?? 'Something went wrong.', retryAfter(res));
}

function apiError(status, code, message, after) {
  return Object.assign(new Error(message), { status, code, retryAfter: after });
}

function retryAfter(res) {
  const h = (res.headers.get('Retry-After') || '').trim();
  if (!h) return null;
  const secs = /^\d+$/.test(h) ? Number(h) : (Date.parse(h) - Date.now()) / 1000;
  return Number.isFinite(secs) ? Math.max(1, Math.ceil(secs)) : null;
}

// Epoch seconds or ms (tickets, JWT `exp`), or an RFC 3339 string (an order's hold_expires_at).
const toMs = (t) => {
  const n = typeof t === 'string' && !/^\d+$/.test(t.trim()) ? Date.parse(t) : Number(t);
  return n > 0 ? (n < 1e12 ? n * 1000 : n) : null;
};

function jwtExpiry(jwt) {
  try {
    const part = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return toMs(JSON.parse(atob(part)).exp);
  } catch { return null; }
}

// ---- home ----
async function loadHome() {
  set({ view: 'loading' });
  try { set({ view: 'home', sales: await api('/api/sales'), ...say('') }); }
  catch (err) { set({ view: 'error', ...say(err.message, loadHome) }); }
}

// ---- sale page ----
async function loadSale() {
  set({ view: 'loading', ...say('') });
  let sale;
  try { sale = await api(`/api/sales/${enc(S.saleId)}`); }
  catch (err) { return set(err.status === 404 ? { view: 'not_found' } : { view: 'error', ...say(err.message, loadSale) }); }
  document.title = `${sale.name} · Waitroom`;
  Object.assign(S, { sale, token: store.get('token'), initialPos: Number(store.get('start')) || 0 });
  updateStats(sale);
  const ticket = store.get('ticket');
  const expiresAt = Number(store.get('ticket_expires_at')) || (ticket && jwtExpiry(ticket));
  if (ticket && S.token && (!expiresAt || expiresAt > Date.now())) admit(ticket, expiresAt);
  else forgetTicket();
  if (S.token) return join();
  set({ view: sale.sold_out ? 'sold_out' : 'join' });
}

function updateStats(d) {
  if (d.queue_len != null) S.queueLen = d.queue_len;
  if (d.remaining != null) S.remaining = d.remaining;
  if (d.rate_per_sec != null) S.rate = Number(d.rate_per_sec) || 0;
  if (d.admitted_total != null) S.admittedTotal = d.admitted_total;
  if (d.open != null) { S.open = !!d.open; S.wasOpen ||= S.open; }
}

async function join() {
  cancel('retry');
  const hadToken = !!S.token;
  set({ busy: true, ...say('') });
  try {
    const res = await api(`/api/sales/${enc(S.saleId)}/queue`, { method: 'POST', body: hadToken ? { token: S.token } : {} });
    S.token = res.token;
    store.set('token', res.token);
    if (res.position > 0) {
      Object.assign(S, { anchorPos: res.position, anchorAdmitted: S.admittedTotal, anchored: false });
      S.initialPos = Math.max(S.initialPos, res.position);
      store.set('start', S.initialPos);
    }
    S.busy = false;
    applyStatus(res);
    if (!isFinal()) connect();
  } catch (err) {
    S.busy = false;
    const view = S.view === 'loading' ? 'join' : S.view;
    if (err.code === 'sold_out') { soldOut(); if (hadToken) { checkPurchased(); connect(); } return; }
    if (err.status === 429 || err.status === 503 || err.status === 0) {
      const secs = err.retryAfter ?? 3;
      later('retry', join, secs * 1000);
      return set({ view, ...say(`It’s busy right now — trying again in ${secs} s…`) });
    }
    if (err.status === 404 && !hadToken) return set({ view: 'not_found' });
    if (hadToken && err.status >= 400 && err.status < 500) {
      forgetToken();
      return set({ view: 'join', ...say('We couldn’t restore your earlier place. Please join the line again.') });
    }
    set({ view, ...say(err.message, join) });
  }
}

// Shared by the `state` event, the status poll and the join response.
function applyStatus(d) {
  if (S.view === 'purchased') return render(S);
  switch (d.status) {
    case 'waiting': forgetTicket(); return set({ view: 'waiting' });
    case 'admitted': return d.ticket ? admit(d.ticket, d.ticket_expires_at) : set({ view: 'admitted' });
    case 'purchased': return purchased({ order_id: d.order_id });
    case 'sold_out': return soldOut();
    // Still in line while the sale is not admitting (not open yet, or paused): the waiting
    // view shows the place and says why it is not moving.
    case 'closed':
      if (!(d.position > 0)) return set({ view: 'closed' });
      forgetTicket(); return set({ view: 'waiting', open: false });
    case 'expired': return expire();
    default: return render(S);
  }
}

const isFinal = () => ['purchased', 'sold_out', 'expired', 'not_found'].includes(S.view);

function admit(ticket, expiresAt) {
  if (S.view === 'purchased') return;
  const at = toMs(expiresAt) || jwtExpiry(ticket);
  if (ticket !== S.ticket) lastChance = false;
  Object.assign(S, { ticket, expiresAt: at, view: 'admitted' });
  store.set('ticket', ticket);
  if (at) store.set('ticket_expires_at', at);
  setTicketCookie(ticket, at);
  if (!timers.countdown) timers.countdown = setInterval(tick, 1000);
  render(S);
}

// The shop's own pages behind the same CDN can check the ticket at the gate
// (nginx auth_request to /api/gate reads this cookie), so admission carries over.
function setTicketCookie(ticket, at) {
  const maxAge = at ? Math.max(0, Math.floor((at - Date.now()) / 1000)) : 60;
  const secure = location.protocol === 'https:' ? '; Secure' : '';
  document.cookie = `wr_ticket=${ticket}; Path=/; Max-Age=${maxAge}; SameSite=Lax${secure}`;
}

function tick() {
  if (S.view !== 'admitted') return cancel('countdown');
  if (S.expiresAt && S.expiresAt <= Date.now()) {
    if (inFlight) return;
    if (timers.checkout && !lastChance) { lastChance = true; return buy(); }
    return expire();
  }
  render(S);
}

function forgetTicket() {
  Object.assign(S, { ticket: null, expiresAt: null });
  store.del('ticket', 'ticket_expires_at');
  cancel('countdown', 'checkout');
}

function forgetToken() {
  Object.assign(S, { token: null, initialPos: 0, anchorPos: 1, anchored: false });
  store.del('token', 'start');
}

function stopLive() {
  es?.close();
  es = null;
  stopPolling();
  S.conn = '';
}

// A shopper with a place keeps listening when the sale sells out: an unpaid hold that expires
// puts units back (`restocked`) and the line moves on, so they may still be let in.
function soldOut() { if (!S.token) stopLive(); forgetTicket(); set({ view: 'sold_out', busy: false, ...say('') }); }
function expire() { stopLive(); forgetTicket(); set({ view: 'expired', busy: false, ...say('') }); }

function purchased(order) {
  stopLive();
  forgetTicket();
  let saved = null;
  try { saved = JSON.parse(store.get('order') || 'null'); } catch { /* ignore */ }
  const known = saved && (!order.order_id || saved.order_id === order.order_id) ? saved : {};
  const merged = { ...known, ...S.order, ...Object.fromEntries(Object.entries(order).filter(([, v]) => v != null)) };
  if (merged.order_id) store.set('order', JSON.stringify(merged));
  set({ view: 'purchased', order: merged, busy: false, ...say('') });
}

// ---- live updates ----
function connect() {
  es?.close();
  const src = new EventSource(`/api/sales/${enc(S.saleId)}/events?token=${enc(S.token)}`);
  es = src;
  src.onopen = () => { if (src === es) { stopPolling(); set({ conn: 'live' }); } };
  src.onerror = () => onSseError(src);
  const on = (name, fn) => src.addEventListener(name, (e) => {
    if (src !== es) return;
    sseErrors = 0;
    if (polling) stopPolling();
    if (S.conn !== 'live') S.conn = 'live';
    let data;
    try { data = JSON.parse(e.data || '{}'); } catch { return; }
    fn(data);
  });
  on('state', onState);
  on('progress', onProgress);
  on('admitted', (d) => admit(d.ticket, d.ticket_expires_at));
  on('sold_out', onSoldOut);
  on('restocked', onProgress);
  on('opened', () => { S.open = S.wasOpen = true; set(S.view === 'closed' ? { view: 'waiting' } : {}); });
  on('closed', () => set({ open: false }));
}

function onState(d) {
  updateStats(d);
  if (d.position > 0) {
    Object.assign(S, { anchorPos: d.position, anchorAdmitted: d.admitted_total ?? S.admittedTotal, anchored: true });
    S.initialPos = Math.max(S.initialPos, d.position);
    store.set('start', S.initialPos);
  }
  applyStatus(d);
}

function onProgress(d) {
  updateStats(d);
  if (d.sold_out) return onSoldOut();
  if (S.view === 'sold_out') return pollOnce(); // units came back: where do I stand now?
  render(S);
}

function onSoldOut() {
  if (S.view === 'purchased' || inFlight) return;
  soldOut();
}

function onSseError(src) {
  if (src !== es) return;
  if (polling) { src.close(); es = null; return; } // a trial reconnect failed; keep polling
  sseErrors += 1;
  if (sseErrors >= MAX_SSE_ERRORS || src.readyState === EventSource.CLOSED) return startPolling();
  set({ conn: 'reconnecting' });
}

function startPolling() {
  es?.close();
  es = null;
  polling = true;
  sseErrors = 0;
  set({ conn: 'polling' });
  pollOnce();
  cancel('poll', 'sse');
  timers.poll = setInterval(pollOnce, POLL_MS);
  timers.sse = setInterval(connect, SSE_RETRY_MS);
}

function stopPolling() { polling = false; cancel('poll', 'sse'); }

async function pollOnce() {
  if (!S.token) return;
  try {
    const d = await api(`/api/sales/${enc(S.saleId)}/status`, { bearer: S.token });
    updateStats(d); // open, remaining, line length: polling is the only source of them here
    if (d.position > 0) Object.assign(S, { anchorPos: d.position, anchorAdmitted: S.admittedTotal, anchored: true });
    applyStatus(d);
  } catch (err) {
    if (err.status === 401) tokenInvalid();
  }
}

// After a sold-out rejoin: maybe this shopper is the one who bought.
async function checkPurchased() {
  try {
    const d = await api(`/api/sales/${enc(S.saleId)}/status`, { bearer: S.token });
    if (d.status === 'purchased') purchased({ order_id: d.order_id });
  } catch { /* stay on sold out */ }
}

function tokenInvalid() {
  stopLive();
  forgetTicket();
  forgetToken();
  set({ view: 'join', busy: false, ...say('Your place in line couldn’t be found. Please join the line again.') });
}

// ---- checkout ----
async function buy() {
  cancel('checkout');
  if (!S.ticket || inFlight) return;
  const quantity = S.quantity;
  inFlight = true;
  set({ busy: true, ...say('') });
  try {
    const order = await api(`/api/sales/${enc(S.saleId)}/checkout`, { method: 'POST', bearer: S.ticket, body: { quantity } });
    inFlight = false;
    purchased(order);
  } catch (err) {
    inFlight = false;
    S.busy = false;
    if (err.code === 'sold_out') return soldOut();
    if (err.code === 'ticket_expired') return expire();
    if (err.code === 'insufficient_stock') {
      S.stockCap = Math.max(1, Math.min(quantity - 1, S.remaining > 0 ? S.remaining : Infinity));
      S.quantity = Math.min(S.quantity, S.stockCap);
      return set(say(`${err.message} Please choose a smaller quantity.`));
    }
    if (err.code === 'unavailable' || err.status === 0) {
      const secs = err.retryAfter ?? 2;
      timers.checkout = setTimeout(buy, secs * 1000);
      return set({ busy: true, ...say(`The store is busy — retrying in ${secs} s…`) });
    }
    set(say(err.message, buy));
  }
}

// ---- derived values ----
function place(s) {
  const moved = s.anchored ? s.admittedTotal - s.anchorAdmitted : 0;
  return Math.max(1, s.anchorPos - moved);
}

function etaSecs(s) { return s.open && s.rate > 0 ? place(s) / s.rate : null; }

function humanEta(secs) {
  if (secs < 60) return 'less than a minute';
  const mins = Math.round(secs / 60);
  if (mins < 60) return `about ${mins} min`;
  return `about ${Math.floor(mins / 60)} h${mins % 60 ? ` ${mins % 60} min` : ''}`;
}

const secondsLeft = (s) => (s.expiresAt ? Math.max(0, Math.ceil((s.expiresAt - Date.now()) / 1000)) : null);
const clockTime = (ms) => new Date(ms).toLocaleTimeString([], { hour: 'numeric', minute: '2-digit' });

// ---- render ----
function text(sel, v) { const el = $(sel); const t = String(v ?? ''); if (el.textContent !== t) el.textContent = t; }
function show(sel, on) { $(sel).hidden = !on; }

function render(s) {
  const root = $('#state');
  root.dataset.state = s.view;
  root.setAttribute('aria-busy', String(s.view === 'loading'));
  for (const el of document.querySelectorAll('[data-views]')) el.hidden = !el.dataset.views.split(' ').includes(s.view);
  const conn = $('#conn');
  conn.hidden = !s.conn;
  conn.dataset.conn = s.conn;
  text('#conn', { live: 'live', reconnecting: 'reconnecting…', polling: 'polling' }[s.conn] ?? '');
  text('#message', s.message);
  show('#retry', s.canRetry && !s.busy && s.view !== 'admitted'); // #buy doubles as retry there
  if (s.view === 'home') renderHome(s);
  if (s.sale) renderSale(s);
  if (s.view === 'waiting') renderWaiting(s);
  if (s.view === 'admitted') renderAdmitted(s);
  if (s.view === 'purchased') renderOrder(s.order || {});
  renderJoin(s);
  announce(s);
}

function renderHome(s) {
  const items = (s.sales || []).map((sale) => {
    const li = document.createElement('li');
    const a = Object.assign(document.createElement('a'), { className: 'card sale-link', href: `/s/${enc(sale.id)}` });
    const name = Object.assign(document.createElement('span'), { className: 'sale-name', textContent: sale.name });
    const meta = Object.assign(document.createElement('span'), { className: 'muted', textContent: `${cents(sale.price_cents)} · ${num.format(sale.remaining)} of ${num.format(sale.units)} left` });
    const [label, tone] = badge(sale);
    const b = Object.assign(document.createElement('span'), { className: `badge badge-${tone}`, textContent: label });
    a.append(name, b, meta);
    li.append(a);
    return li;
  });
  $('#sales').replaceChildren(...items);
  show('#no-sales', items.length === 0);
}

function badge(sale) {
  if (sale.sold_out) return ['Sold out', 'end'];
  return sale.open ? ['Open now', 'open'] : ['Not open yet', 'wait'];
}

function renderSale(s) {
  const { sale } = s;
  text('#sale-name', sale.name);
  text('#sale-price', cents(sale.price_cents));
  const soldOut = s.view === 'sold_out' || s.remaining === 0;
  const [label, tone] = badge({ sold_out: soldOut, open: s.open });
  text('#sale-badge', s.wasOpen && !s.open && !soldOut ? 'Paused' : label);
  $('#sale-badge').className = `badge badge-${tone}`;
  const [all, have] = sale.units === 1 ? ['The only unit', 'has'] : [`All ${num.format(sale.units)} units`, 'have'];
  text('#units-left', soldOut ? `${all} ${have} been sold` : `${num.format(s.remaining ?? sale.remaining)} of ${num.format(sale.units)} left`);
  text('#soldout-text', `${all} ${have} been sold. Thanks for waiting.`);
  const inLine = s.queueLen ? `${num.format(s.queueLen)} ${s.queueLen === 1 ? 'person is' : 'people are'} in line.` : 'No one is in line yet.';
  text('#join-text', s.open ? `${inLine} Join now to get your place.` : `The sale hasn’t opened yet. ${inLine} Join now to save your place.`);
}

function renderWaiting(s) {
  const p = place(s);
  text('#position', p);
  text('#ahead', p === 1 ? 'You’re next' : `${num.format(p - 1)} ahead of you`);
  const eta = etaSecs(s);
  text('#eta', eta !== null ? humanEta(eta) : s.open ? 'Calculating…' : 'When it opens');
  text('#wait-title', s.open || s.wasOpen ? 'You’re in line' : 'Waiting for the sale to open');
  text('#queue-len', s.queueLen == null ? '–' : num.format(s.queueLen));
  const start = Math.max(s.initialPos, p);
  const pct = Math.round(Math.min(1, Math.max(0, (start - p) / (start - 1 || 1))) * 100);
  $('#bar-fill').style.width = `${pct}%`;
  $('#bar').setAttribute('aria-valuenow', String(pct));
  let note = 'Keep this tab open — we’ll let you in automatically when it’s your turn.';
  if (!s.open) note = s.wasOpen ? 'The sale is paused for a moment. Keep this tab open; your place is saved.'
    : 'You’re in line. The sale hasn’t opened yet — keep this tab open; your place is saved.';
  text('#wait-note', note);
}

function renderAdmitted(s) {
  const left = secondsLeft(s);
  text('#countdown', left ?? '–');
  text('#countdown-unit', left === 1 ? 'second' : 'seconds');
  const max = Math.min(Number(s.sale.max_per_order) || 1, s.stockCap, s.remaining > 0 ? s.remaining : Infinity);
  show('#qty-field', (Number(s.sale.max_per_order) || 1) > 1);
  const select = $('#quantity');
  if (select.options.length !== max) {
    select.replaceChildren(...Array.from({ length: max }, (_, i) => new Option(String(i + 1), String(i + 1))));
  }
  S.quantity = Math.min(Math.max(1, s.quantity), max);
  select.value = String(S.quantity);
  select.disabled = s.busy;
  const buy = $('#buy');
  buy.disabled = s.busy || !s.ticket;
  let label = `Buy now · ${cents(s.sale.price_cents * S.quantity)}`;
  if (!s.ticket) label = 'Getting your ticket…';
  else if (s.busy) label = 'Buying…';
  else if (s.canRetry) label = 'Try again';
  text('#buy', label);
}

function renderOrder(o) {
  text('#order-id', o.order_id);
  show('#order-qty-row', o.quantity != null);
  text('#order-qty', o.quantity);
  show('#order-amount-row', o.amount_cents != null);
  text('#order-amount', o.amount_cents != null ? cents(o.amount_cents) : '');
  const hold = toMs(o.hold_expires_at);
  text('#order-hold', hold && (!o.status || o.status === 'pending_payment')
    ? `Your items are reserved. Please complete payment before ${clockTime(hold)}.`
    : 'Your items are reserved.');
}

function renderJoin(s) {
  const btn = $('#join');
  const slot = document.querySelector(`[data-views~="${s.view}"] .join-slot`);
  btn.hidden = !slot;
  if (!slot) return;
  if (btn.parentNode !== slot) slot.append(btn);
  btn.disabled = s.busy;
  text('#join', s.busy ? 'Joining…' : s.view === 'expired' ? 'Join the line again' : 'Join the line');
}

// Screen-reader announcements: every view change, and place changes at most every 10 s.
let spoken = { view: null, place: null, at: 0, secs: null };
function announce(s) {
  let msg = '';
  const p = place(s);
  if (s.view === 'waiting' && (spoken.view !== 'waiting' || (p !== spoken.place && Date.now() - spoken.at > 10000))) {
    msg = `You are number ${p} in line. ${$('#ahead').textContent}. Estimated wait: ${$('#eta').textContent}.`;
  } else if (s.view === 'admitted') {
    const left = secondsLeft(s);
    if (spoken.view !== 'admitted') msg = `It’s your turn! You have ${left ?? 'a few'} seconds to buy.`;
    else if ((left === 30 || left === 10) && spoken.secs !== left) msg = `${left} seconds left to buy.`;
    spoken.secs = left;
  } else if (s.view !== spoken.view) {
    msg = { purchased: 'You got it! Your order is reserved.', sold_out: 'The sale is sold out.', expired: 'Your turn expired.', closed: 'The sale is closed right now.' }[s.view] ?? '';
  }
  spoken.view = s.view;
  if (!msg) return;
  Object.assign(spoken, { place: p, at: Date.now() });
  text('#announce', msg);
}

// ---- wiring ----
function bindUi() {
  $('#join').addEventListener('click', () => {
    if (S.view === 'expired') forgetToken();
    join();
  });
  $('#buy').addEventListener('click', buy);
  $('#retry').addEventListener('click', () => retryAction?.());
  $('#quantity').addEventListener('change', (e) => set({ quantity: Number(e.target.value) || 1 }));
  $('#go').addEventListener('submit', (e) => {
    e.preventDefault();
    const id = $('#go-id').value.trim();
    if (id) location.assign(`/s/${enc(id)}`);
  });
}

function boot() {
  bindUi();
  const m = location.pathname.match(/^\/s\/([^/]+)\/?$/);
  if (m) {
    S.saleId = decodeURIComponent(m[1]);
    loadSale();
  } else {
    loadHome();
  }
}

boot();
