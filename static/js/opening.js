// The countdown to a scheduled opening, on the server's clock rather than the phone's: each
// API answer's Date header says the server's second began between our send and our receipt,
// which bounds the offset between the two clocks; the bounds narrow as answers come in.

import { text, show } from './dom.js';
import { later, cancel, redraw } from './state.js';

let lo = -Infinity;
let hi = Infinity;

export function noteServerDate(res, sent, got) {
  const date = Date.parse(res.headers.get('Date') || '');
  if (!Number.isFinite(date)) return;
  const [l, h] = [date - got, date + 1000 - sent];
  // Bounds that no longer overlap mean a clock was set: start again from this answer.
  if (l > hi || h < lo) [lo, hi] = [l, h];
  else [lo, hi] = [Math.max(lo, l), Math.min(hi, h)];
}

const serverNow = () => Date.now() + (Number.isFinite(lo + hi) ? (lo + hi) / 2 : 0);

const two = (n) => String(n).padStart(2, '0');
function span(ms) {
  const t = Math.ceil(ms / 1000);
  const [h, m, s] = [Math.floor(t / 3600), Math.floor(t / 60) % 60, t % 60];
  if (h >= 48) return `${Math.round(h / 24)} days`;
  return h ? `${h}:${two(m)}:${two(s)}` : `${m}:${two(s)}`;
}

// While the sale is closed and its opening is ahead: "Opens in 4:05", redrawn each second.
export function renderOpening(s) {
  const at = Date.parse(s.sale?.opens_at ?? '');
  const counting = !s.open && Number.isFinite(at);
  show('#opens-in', counting);
  if (!counting) return cancel('opening');
  const left = at - serverNow();
  text('#opens-in', left > 0 ? `Opens in ${span(left)}` : 'Opening now…');
  if (left > 0) later('opening', redraw, (left % 1000) + 20);
}
