// The states a shopper's turn ends in. Each stops what no longer applies (the live stream,
// the ticket's countdown) and clears the busy flag and message; a purchase keeps listening.

import { S, set, say } from './state.js';
import { store, forgetToken } from './token.js';
import { forgetTicket } from './ticket.js';
import { stopLive } from './stream.js';

// A shopper with a place keeps listening when the sale sells out: an unpaid hold that expires
// puts units back (`restocked`) and the line moves on, so they may still be let in.
export function soldOut() { if (!S.token) stopLive(); forgetTicket(); set({ view: 'sold_out', busy: false, ...say('') }); }
// `view`: 'expired' (the turn ran out), 'failed' (bought, and the payment failed) or
// 'refund_due' (the payment arrived after the hold lapsed or failed: it will be refunded).
export function expire(view = 'expired') { stopLive(); forgetTicket(); set({ view, busy: false, ...say('') }); }

// `order` may be only an order id and status (from a status); the details saved at checkout
// fill it in, so a reload still shows quantity, total and payment deadline. The live stream
// stays open: the sale's numbers keep moving, and the order's news (paid, failed, refund due)
// arrives on it.
export function purchased(order) {
  forgetTicket();
  let saved = null;
  try { saved = JSON.parse(store.get('order') || 'null'); } catch { /* ignore */ }
  const known = saved && (!order.order_id || saved.order_id === order.order_id) ? saved : {};
  const merged = { ...known, ...S.order, ...Object.fromEntries(Object.entries(order).filter(([, v]) => v != null)) };
  if (merged.order_id) store.set('order', JSON.stringify(merged));
  set({ view: 'purchased', order: merged, busy: false, ...say('') });
}

// The server refused the queue token (401): its place is gone, so the shopper joins afresh.
export function tokenInvalid() {
  stopLive();
  forgetTicket();
  forgetToken();
  set({ view: 'join', busy: false, ...say('Your place in line couldn’t be found. Please join the line again.') });
}
