// Screen-reader announcements through the polite live region: every view change (a payment
// received included), the last
// 30 and 10 seconds of a turn, and place changes at most every 10 s so the line's movement
// is not read out non-stop.

import { $, text } from './dom.js';
import { place, secondsLeft } from './derive.js';

const spoken = { view: null, place: null, at: 0, secs: null };

export function announce(s) {
  let msg = '';
  const p = place(s);
  // A purchase that gets paid is news of its own.
  const key = s.view === 'purchased' && s.order?.status === 'paid' ? 'paid' : s.view;
  if (s.view === 'waiting' && (spoken.view !== 'waiting' || (p !== spoken.place && Date.now() - spoken.at > 10000))) {
    msg = `You are number ${p} in line. ${$('#ahead').textContent}. Estimated wait: ${$('#eta').textContent}.`;
  } else if (s.view === 'admitted') {
    const left = secondsLeft(s);
    if (spoken.view !== 'admitted') msg = `It’s your turn! You have ${left ?? 'a few'} seconds to buy.`;
    else if ((left === 30 || left === 10) && spoken.secs !== left) msg = `${left} seconds left to buy.`;
    spoken.secs = left;
  } else if (key !== spoken.view) {
    msg = { paid: 'Your payment was received. Your order is complete.', purchased: 'You got it! Your order is reserved.', sold_out: 'The sale is sold out.', expired: 'Your turn expired.', failed: 'Your payment didn’t go through.', refund_due: 'Your payment arrived too late and will be refunded.', closed: 'The sale is closed right now.' }[s.view] ?? '';
  }
  spoken.view = key;
  if (!msg) return;
  Object.assign(spoken, { place: p, at: Date.now() });
  text('#announce', msg);
}
