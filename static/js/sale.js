// A sale's page: load the sale, restore what this device saved, join (or rejoin with the saved
// token), and turn every status the server reports into the view to show.

import { S, set, say, redraw, later, cancel } from './state.js';
import { api, salePath } from './api.js';
import { store, rememberStart, forgetToken } from './token.js';
import { admit, forgetTicket, jwtExpiry } from './ticket.js';
import { purchased, soldOut, expire } from './outcome.js';
import { connect } from './stream.js';
import { prove } from './pow.js';
import { updateSizes, restoreSize } from './sizes.js';
import { watchDraw } from './draw.js';

export async function loadSale() {
  set({ view: 'loading', ...say('') });
  let sale;
  try { sale = await api(salePath(S.saleId)); }
  catch (err) { return set(err.status === 404 ? { view: 'not_found' } : { view: 'error', ...say(err.message, loadSale) }); }
  document.title = `${sale.name} · Waitroom`;
  Object.assign(S, { sale, token: store.get('token'), initialPos: Number(store.get('start')) || 0 });
  updateStats(sale);
  restoreSize();
  const ticket = store.get('ticket');
  const expiresAt = Number(store.get('ticket_expires_at')) || (ticket && jwtExpiry(ticket));
  if (ticket && S.token && (!expiresAt || expiresAt > Date.now())) admit(ticket, expiresAt);
  else forgetTicket();
  if (S.token) return join();
  set({ view: sale.sold_out ? 'sold_out' : 'join' });
}

// The sale-wide figures any answer may carry (sale, join, state, progress, status).
export function updateStats(d) {
  if (d.queue_len != null) S.queueLen = d.queue_len;
  if (d.remaining != null) S.remaining = d.remaining;
  if (d.held != null) S.held = d.held;
  if (d.rate_per_sec != null) S.rate = Number(d.rate_per_sec) || 0;
  if (d.admitted_total != null) S.admittedTotal = d.admitted_total;
  if (d.open != null) { S.open = !!d.open; S.wasOpen ||= S.open; }
  updateSizes(d);
}

// Joining again with the saved token keeps the original place (the token carries its enqueue
// time), so a reload never moves a shopper back.
export async function join() {
  cancel('retry');
  const hadToken = !!S.token;
  set({ busy: true, ...say('') });
  try {
    // Only a new place costs work; a saved token keeps its place as it is.
    let body = { token: S.token };
    if (!hadToken) {
      body = S.sale?.pow_difficulty > 0 ? await prove(S.saleId, (n) => set({ powHashes: n })) : {};
    }
    const res = await api(salePath(S.saleId, '/queue'), { method: 'POST', body });
    S.powHashes = null;
    S.token = res.token;
    store.set('token', res.token);
    if (res.position > 0) {
      Object.assign(S, { anchorPos: res.position, anchorAdmitted: S.admittedTotal, anchored: false });
      rememberStart(res.position);
    }
    S.busy = false;
    applyStatus(res);
    if (!isFinal()) connect();
    watchDraw(res.queue_id);
  } catch (err) {
    Object.assign(S, { busy: false, powHashes: null });
    const view = S.view === 'loading' ? 'join' : S.view;
    // A challenge that went stale or was spent (a double click): solve a fresh one, once.
    if (['pow_expired', 'pow_reused'].includes(err.code) && !S.powRetried) {
      S.powRetried = true;
      return join();
    }
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
export function applyStatus(d) {
  // Money that came too late is news even on the purchased view: it will be refunded.
  if (d.status === 'refund_due') return expire('refund_due');
  // A buyer's order moves on: paid, payment failed, or the hold lapsed unpaid.
  if (S.view === 'purchased') {
    if (d.status === 'purchased') return purchased({ order_id: d.order_id, status: d.order_status });
    if (d.status === 'failed') return expire('failed');
    if (d.status === 'expired') return expire();
    return redraw();
  }
  switch (d.status) {
    case 'waiting': forgetTicket(); return set({ view: 'waiting' });
    // No units left, some held for payment: still in line, on the waitlist.
    case 'waitlisted': forgetTicket(); return set({ view: 'waiting', remaining: 0 });
    case 'admitted': return d.ticket ? admit(d.ticket, d.ticket_expires_at) : set({ view: 'admitted' });
    case 'purchased': return purchased({ order_id: d.order_id, status: d.order_status });
    case 'sold_out': return soldOut();
    // Still in line while the sale is not admitting (not open yet, or paused): the waiting
    // view shows the place and says why it is not moving.
    case 'closed':
      if (!(d.position > 0)) return set({ view: 'closed' });
      forgetTicket(); return set({ view: 'waiting', open: false });
    case 'expired': return expire();
    case 'failed': return expire('failed');
    default: return redraw();
  }
}

// A buyer keeps listening: the sale's numbers and the order's news.
const isFinal = () => ['sold_out', 'expired', 'failed', 'refund_due', 'not_found'].includes(S.view);

// This shopper's status, by their queue token.
export const fetchStatus = () => api(salePath(S.saleId, '/status'), { bearer: S.token });

// After a sold-out rejoin: maybe this shopper is the one who bought.
async function checkPurchased() {
  try {
    const d = await fetchStatus();
    if (d.status === 'purchased') purchased({ order_id: d.order_id, status: d.order_status });
  } catch { /* stay on sold out */ }
}
