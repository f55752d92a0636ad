// Buying with the admission ticket. A busy store (503, or no network) is retried on its
// Retry-After; the other refusals end in a clear state or a message.

import { S, set, say, cancel, timers } from './state.js';
import { api, salePath } from './api.js';
import { purchased, soldOut, expire } from './outcome.js';
import { hasSizes, updateSizes, sizeGone } from './sizes.js';

let inFlight = false;   // a checkout request is on the wire
let lastChance = false; // one final checkout retry was made after the timer hit 0

export const checkoutInFlight = () => inFlight;
export function newTicket() { lastChance = false; }

// Called when the ticket's timer hits 0: a checkout that was waiting to retry runs once more
// now instead of being dropped. Returns whether it did.
export function lastTry() {
  if (!timers.checkout || lastChance) return false;
  lastChance = true;
  buy();
  return true;
}

export async function buy() {
  cancel('checkout');
  if (!S.ticket || inFlight) return;
  const quantity = S.quantity;
  const body = hasSizes(S) ? { quantity, variant: S.variant } : { quantity };
  if (hasSizes(S) && !S.variant) return set(say('Please pick a size first.'));
  inFlight = true;
  set({ busy: true, ...say('') });
  try {
    const order = await api(salePath(S.saleId, '/checkout'), { method: 'POST', bearer: S.ticket, body });
    inFlight = false;
    purchased(order);
  } catch (err) {
    inFlight = false;
    S.busy = false;
    if (err.code === 'sold_out') return soldOut();
    if (err.code === 'ticket_expired') return expire();
    // That size went just before: the ticket is still good for another one.
    if (err.code === 'variant_sold_out') { updateSizes(err.data); return sizeGone(body.variant); }
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
