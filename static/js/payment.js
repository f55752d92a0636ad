// The hand-off to the shop's payment page. "Continue to payment" asks for a fresh hand-off
// token (POST /payment, with the queue token and this browser's session cookie) and posts it
// to the sale's checkout_url in a real form field, `waitroom_token`: never in a URL, where
// proxies, the shop's logs and browser history would keep it.

import { S, set, say } from './state.js';
import { api, salePath } from './api.js';
import { $ } from './dom.js';
import { purchased, expire } from './outcome.js';

let inFlight = false;

export const paying = () => inFlight;

export async function continueToPayment(e) {
  e.preventDefault();
  if (inFlight || !S.token) return;
  inFlight = true;
  set({ busy: true, ...say('') });
  try {
    const h = await api(salePath(S.saleId, '/payment'), { method: 'POST', bearer: S.token });
    const form = $('#pay-form');
    form.action = h.checkout_url;
    form.elements.waitroom_token.value = h.token;
    form.submit(); // the page navigates away, still busy
  } catch (err) {
    inFlight = false;
    S.busy = false;
    refused(err);
  }
}

// Why the order cannot be handed on, as the view it now belongs in.
function refused(err) {
  if (err.code === 'not_payable') {
    const status = err.data?.status;
    if (status === 'paid') return purchased({ status });
    if (status === 'failed' || status === 'refund_due') return expire(status);
    return expire();
  }
  if (err.code === 'no_checkout_url') {
    S.sale = { ...S.sale, checkout_url: null };
    return purchased({ hold_expires_at: err.data?.hold_expires_at });
  }
  set(say(err.message, () => $('#pay-form').requestSubmit()));
}

// Back from the shop (the page restored from the back-forward cache): usable again, and no
// token left in the form.
window.addEventListener('pageshow', () => {
  const field = $('#pay-form')?.elements.waitroom_token;
  if (field) field.value = '';
  if (inFlight) { inFlight = false; set({ busy: false }); }
});
