// The page's one state object. Flows change `S` and call `set()`; `render(S)` redraws the
// whole page from it, so the DOM never holds state of its own.

import { render } from './view.js';

export const S = {
  view: 'loading', saleId: null, sale: null, sales: null,
  token: null, ticket: null, expiresAt: null, order: null,
  anchorPos: 1, anchorAdmitted: 0, anchored: false, admittedTotal: 0, initialPos: 0,
  queueLen: null, remaining: null, held: 0, rate: 0, open: false, wasOpen: false,
  quantity: 1, stockCap: Infinity, conn: '', message: '', busy: false, canRetry: false,
  powHashes: null, powRetried: false, variant: null, variantsLeft: null, drawPending: false,
};

export function set(patch) { Object.assign(S, patch); render(S); }
export function redraw() { render(S); }

// The notice under the cards. With `retry`, the "Try again" button (or #buy, when admitted)
// reruns the step that failed; a new message always replaces the old retry.
let retryAction = null;
export function say(message, retry = null) { retryAction = retry; return { message, canRetry: !!retry }; }
export function retry() { retryAction?.(); }

// Named timers, so a flow restarts or stops its own (retry, poll, countdown…) by name.
export const timers = {};
export function later(name, fn, ms) { clearTimeout(timers[name]); timers[name] = setTimeout(fn, ms); }
export function cancel(...names) { for (const n of names) { clearTimeout(timers[n]); clearInterval(timers[n]); delete timers[n]; } }
