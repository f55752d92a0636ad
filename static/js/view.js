// Draws the whole page from the state object. Each section in index.html lists the views it
// belongs to (`data-views`), so switching view is only hiding and showing; the functions below
// fill in the text of the visible ones.

import { $, text, show } from './dom.js';
import { cents, num, toMs, place, etaSecs, humanEta, secondsLeft, clockTime } from './derive.js';
import { announce } from './announce.js';
import { renderOpening } from './opening.js';
import { renderSizes, hasSizes, sizeLeft, sizeName } from './sizes.js';

export function render(s) {
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
  renderOpening(s);
  if (s.sale) renderSizes(s);
  if (s.view === 'waiting') renderWaiting(s);
  if (s.view === 'admitted') renderAdmitted(s);
  if (s.view === 'purchased') renderOrder(s.order || {}, s);
  renderJoin(s);
  announce(s);
}

function renderHome(s) {
  const items = (s.sales || []).map((sale) => {
    const li = document.createElement('li');
    const a = Object.assign(document.createElement('a'), { className: 'card sale-link', href: `/s/${encodeURIComponent(sale.id)}` });
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

// The product card, shown on every state of a sale page.
function renderSale(s) {
  const { sale } = s;
  text('#sale-name', sale.name);
  text('#sale-price', cents(sale.price_cents));
  const soldOut = s.view === 'sold_out' || s.remaining === 0;
  const [label, tone] = badge({ sold_out: soldOut, open: s.open });
  text('#sale-badge', s.wasOpen && !s.open && !soldOut ? 'Paused' : label);
  $('#sale-badge').className = `badge badge-${tone}`;
  const [all, have] = sale.units === 1 ? ['The only unit', 'has'] : [`All ${num.format(sale.units)} units`, 'have'];
  const held = s.remaining === 0 && s.held > 0 ? ` · ${num.format(s.held)} held for payment` : '';
  text('#units-left', soldOut && !held ? `${all} ${have} been sold` : `${num.format(s.remaining ?? sale.remaining)} of ${num.format(sale.units)} left${held}`);
  text('#soldout-text', `${all} ${have} been sold. Thanks for waiting.`);
  const inLine = s.queueLen ? `${num.format(s.queueLen)} ${s.queueLen === 1 ? 'person is' : 'people are'} in line.` : 'No one is in line yet.';
  text('#join-text', s.open ? `${inLine} Join now to get your place.` : `The sale hasn’t opened yet. ${inLine} Join now to save your place.`);
}

function renderWaiting(s) {
  const p = place(s);
  const waitlist = s.remaining === 0 && s.held > 0;
  text('#position', p);
  text('#ahead', p === 1 ? 'You’re next' : `${num.format(p - 1)} ahead of you`);
  // A draw sale before its opening: the number is arrival order, not the place it will be.
  if (s.drawPending) text('#ahead', 'Your place is drawn when the sale opens; this is your arrival order');
  const eta = etaSecs(s);
  text('#eta', waitlist ? 'If a unit comes back' : eta !== null ? humanEta(eta) : s.open ? 'Calculating…' : 'When it opens');
  text('#wait-title', waitlist ? 'You’re on the waitlist' : s.open || s.wasOpen ? 'You’re in line' : 'Waiting for the sale to open');
  text('#queue-len', s.queueLen == null ? '–' : num.format(s.queueLen));
  const start = Math.max(s.initialPos, p);
  const pct = Math.round(Math.min(1, Math.max(0, (start - p) / (start - 1 || 1))) * 100);
  $('#bar-fill').style.width = `${pct}%`;
  $('#bar').setAttribute('aria-valuenow', String(pct));
  let note = 'Keep this tab open — we’ll let you in automatically when it’s your turn.';
  if (!s.open) note = s.wasOpen ? 'The sale is paused for a moment. Keep this tab open; your place is saved.'
    : 'You’re in line. The sale hasn’t opened yet — keep this tab open; your place is saved.';
  if (waitlist) {
    const units = s.held === 1 ? '1 unit is' : `${num.format(s.held)} units are`;
    note = `Every unit is taken for now: ${units} held for payment. If a payment fails or a hold runs out, the first on the waitlist is let in.`;
  }
  // The size this shopper picked went while they waited: they hear it before their turn.
  if (hasSizes(s) && s.variant && sizeLeft(s, s.variant) <= 0) note = `${sizeName(s, s.variant)} has sold out. Pick another size above while you wait.`;
  text('#wait-note', note);
}

// Also clamps the chosen quantity to what may be bought now (per-order limit, stock left,
// and a cap learned from an insufficient_stock answer).
function renderAdmitted(s) {
  const left = secondsLeft(s);
  text('#countdown', left ?? '–');
  text('#countdown-unit', left === 1 ? 'second' : 'seconds');
  const sized = hasSizes(s);
  const stock = sized && s.variant ? sizeLeft(s, s.variant) : s.remaining;
  const max = Math.max(1, Math.min(Number(s.sale.max_per_order) || 1, s.stockCap, stock > 0 ? stock : Infinity));
  show('#qty-field', (Number(s.sale.max_per_order) || 1) > 1);
  const select = $('#quantity');
  if (select.options.length !== max) {
    select.replaceChildren(...Array.from({ length: max }, (_, i) => new Option(String(i + 1), String(i + 1))));
  }
  s.quantity = Math.min(Math.max(1, s.quantity), max);
  select.value = String(s.quantity);
  select.disabled = s.busy;
  const buy = $('#buy');
  const needSize = sized && !(s.variant && sizeLeft(s, s.variant) > 0);
  buy.disabled = s.busy || !s.ticket || needSize;
  let label = `Buy now · ${cents(s.sale.price_cents * s.quantity)}`;
  if (sized && !needSize) label = `Buy ${sizeName(s, s.variant)} · ${cents(s.sale.price_cents * s.quantity)}`;
  if (needSize) label = 'Pick a size';
  if (!s.ticket) label = 'Getting your ticket…';
  else if (s.busy) label = 'Buying…';
  else if (s.canRetry) label = 'Try again';
  text('#buy', label);
}

// The order, and what happens next: pay at the shop (with a checkout_url), or wait for the
// shop to complete the payment; once paid, nothing more.
function renderOrder(o, s) {
  text('#order-id', o.order_id);
  show('#order-size-row', o.variant != null);
  text('#order-size', o.variant != null ? sizeName(s, o.variant) : '');
  show('#order-qty-row', o.quantity != null);
  text('#order-qty', o.quantity);
  show('#order-amount-row', o.amount_cents != null);
  text('#order-amount', o.amount_cents != null ? cents(o.amount_cents) : '');
  const paid = o.status === 'paid';
  text('#order-status', paid ? 'Paid' : 'Awaiting payment');
  text('#order-pill', paid ? 'Paid' : 'Order reserved');
  text('#order-title', paid ? 'Payment received' : 'You got it!');
  const hold = toMs(o.hold_expires_at);
  const until = hold ? ` until ${clockTime(hold)}` : '';
  const shop = s.sale?.checkout_url;
  let note = `Your items are held for you${until}. The shop completes the payment with you; there is nothing more to do here.`;
  if (paid) note = 'Your payment was received. Your order is complete.';
  else if (shop) note = `Your items are held for you${until}. Continue to the shop’s payment page to pay.`;
  text('#order-hold', note);
  const form = $('#pay-form');
  form.hidden = paid || !shop;
  if (shop && form.getAttribute('action') !== shop) form.setAttribute('action', shop);
  const pay = $('#pay');
  pay.disabled = s.busy;
  text('#pay', s.busy ? 'Opening the payment page…' : 'Continue to payment');
}

// One #join button, moved into whichever visible card has a `.join-slot` (join, expired), with
// the proof-of-work progress under it.
function renderJoin(s) {
  const btn = $('#join');
  const slot = document.querySelector(`[data-views~="${s.view}"] .join-slot`);
  btn.hidden = !slot;
  if (!slot) return;
  if (btn.parentNode !== slot) slot.append(btn, $('#pow-status'));
  btn.disabled = s.busy;
  text('#join', s.busy ? 'Joining…' : s.view === 'expired' ? 'Join the line again' : 'Join the line');
  const checking = s.powHashes != null;
  show('#pow-status', checking);
  if (checking) text('#pow-status', `Checking your browser… ${num.format(s.powHashes)} hashes`);
}
