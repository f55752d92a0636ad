// The admission ticket: kept in state and localStorage, handed to the shop's origin as a
// cookie, and counted down to its expiry.

import { S, timers, cancel, redraw } from './state.js';
import { store } from './token.js';
import { toMs } from './derive.js';
import { checkoutInFlight, lastTry, newTicket } from './checkout.js';
import { expire } from './outcome.js';

// The ticket's own `exp`, for a ticket that came without a separate expiry.
export function jwtExpiry(jwt) {
  try {
    const part = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return toMs(JSON.parse(atob(part)).exp);
  } catch { return null; }
}

export function admit(ticket, expiresAt) {
  if (S.view === 'purchased') return;
  const at = toMs(expiresAt) || jwtExpiry(ticket);
  if (ticket !== S.ticket) newTicket();
  Object.assign(S, { ticket, expiresAt: at, view: 'admitted' });
  store.set('ticket', ticket);
  if (at) store.set('ticket_expires_at', at);
  setTicketCookie(ticket, at);
  if (!timers.countdown) timers.countdown = setInterval(tick, 1000);
  redraw();
}

// The shop's own pages behind the same CDN can check the ticket at the gate
// (nginx auth_request to /api/gate reads this cookie), so admission carries over.
function setTicketCookie(ticket, at) {
  const maxAge = at ? Math.max(0, Math.floor((at - Date.now()) / 1000)) : 60;
  const secure = location.protocol === 'https:' ? '; Secure' : '';
  document.cookie = `wr_ticket=${ticket}; Path=/; Max-Age=${maxAge}; SameSite=Lax${secure}`;
}

// Once a second while admitted. At zero the turn ends, unless a checkout is on the wire
// (its answer decides) or one is waiting to retry (it gets one last go first).
function tick() {
  if (S.view !== 'admitted') return cancel('countdown');
  if (S.expiresAt && S.expiresAt <= Date.now()) {
    if (checkoutInFlight() || lastTry()) return;
    return expire();
  }
  redraw();
}

export function forgetTicket() {
  Object.assign(S, { ticket: null, expiresAt: null });
  store.del('ticket', 'ticket_expires_at');
  cancel('countdown', 'checkout');
}
