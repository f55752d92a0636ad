// Values the page derives from state, and their wording. Pure: no DOM, no state changes.

const money = new Intl.NumberFormat(undefined, { style: 'currency', currency: 'USD' });
export const num = new Intl.NumberFormat();
export const cents = (c) => money.format((Number(c) || 0) / 100);

// Epoch seconds or ms (tickets, JWT `exp`), or an RFC 3339 string (an order's hold_expires_at).
export const toMs = (t) => {
  const n = typeof t === 'string' && !/^\d+$/.test(t.trim()) ? Date.parse(t) : Number(t);
  return n > 0 ? (n < 1e12 ? n * 1000 : n) : null;
};

// The server sends a place only now and then; between, the place moves down by however many
// were admitted since (counted from the stream's admitted_total).
export function place(s) {
  const moved = s.anchored ? s.admittedTotal - s.anchorAdmitted : 0;
  return Math.max(1, s.anchorPos - moved);
}

export function etaSecs(s) { return s.open && s.rate > 0 ? place(s) / s.rate : null; }

export function humanEta(secs) {
  if (secs < 60) return 'less than a minute';
  const mins = Math.round(secs / 60);
  if (mins < 60) return `about ${mins} min`;
  return `about ${Math.floor(mins / 60)} h${mins % 60 ? ` ${mins % 60} min` : ''}`;
}

export const secondsLeft = (s) => (s.expiresAt ? Math.max(0, Math.ceil((s.expiresAt - Date.now()) / 1000)) : null);
export const clockTime = (ms) => new Date(ms).toLocaleTimeString([], { hour: 'numeric', minute: '2-digit' });
