// Live updates: Server-Sent Events while they work; after repeated errors (a proxy that
// buffers or cuts streams), polling the status every 3 s, with a fresh try at the stream
// every 30 s. The stream's token rides the wr_queue cookie the join set (HttpOnly, this sale's
// API path only): a token never goes in a URL, where proxies and browsers log it.

import { S, set, redraw, cancel, timers } from './state.js';
import { salePath } from './api.js';
import { rememberStart } from './token.js';
import { admit } from './ticket.js';
import { checkoutInFlight } from './checkout.js';
import { soldOut, tokenInvalid } from './outcome.js';
import { applyStatus, updateStats, fetchStatus } from './sale.js';
import { sizeGone } from './sizes.js';

const POLL_MS = 3000;
const SSE_RETRY_MS = 30000;
const MAX_SSE_ERRORS = 3;

let es = null;          // current EventSource
let sseErrors = 0;      // errors since the last event
let polling = false;

export function connect() {
  es?.close();
  const src = new EventSource(salePath(S.saleId, '/events'));
  es = src;
  src.onopen = () => { if (src === es) { stopPolling(); set({ conn: 'live' }); } };
  src.onerror = () => onSseError(src);
  // Events from a stream already replaced are dropped, so an old one can never undo a newer.
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
  on('waitlisted', onProgress);
  on('restocked', onProgress);
  // One size went (the others have units): grey it out; a shopper who picked it hears so.
  on('variant_sold_out', (d) => { updateStats(d); sizeGone(d.variant); redraw(); });
  on('opened', () => { S.open = S.wasOpen = true; set(S.view === 'closed' ? { view: 'waiting' } : {}); });
  on('closed', () => set({ open: false }));
  // Too many tabs on one place: this one's stream gave way to a newer one, so it polls.
  on('replaced', startPolling);
}

export function stopLive() {
  es?.close();
  es = null;
  stopPolling();
  S.conn = '';
}

function onState(d) {
  updateStats(d);
  if (d.position > 0) {
    Object.assign(S, { anchorPos: d.position, anchorAdmitted: d.admitted_total ?? S.admittedTotal, anchored: true });
    rememberStart(d.position);
  }
  applyStatus(d);
}

function onProgress(d) {
  updateStats(d);
  // No units left but some held for payment: a waitlist, still in line.
  if (d.sold_out && !(d.held > 0) && d.remaining === 0) return onSoldOut();
  if (S.view === 'sold_out') return pollOnce(); // units came back: where do I stand now?
  redraw();
}

// A checkout on the wire decides for itself: its answer may be this shopper's own purchase.
function onSoldOut() {
  if (S.view === 'purchased' || checkoutInFlight()) return;
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
    const d = await fetchStatus();
    updateStats(d); // open, remaining, line length: polling is the only source of them here
    if (d.position > 0) Object.assign(S, { anchorPos: d.position, anchorAdmitted: S.admittedTotal, anchored: true });
    applyStatus(d);
  } catch (err) {
    if (err.status === 401 || err.code === 'token_not_bound') tokenInvalid();
  }
}
