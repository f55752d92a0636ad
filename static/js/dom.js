// The few DOM helpers every view uses. `text` writes only on change, so a redraw every second
// does not make screen readers or the layout redo work.

export const $ = (sel) => document.querySelector(sel);
export function text(sel, v) { const el = $(sel); const t = String(v ?? ''); if (el.textContent !== t) el.textContent = t; }
export function show(sel, on) { $(sel).hidden = !on; }
