// The draw (docs/draw.md, algorithm draw-v1), on the page of a `prequeue: "draw"` sale: before
// the opening the shopper sees their entry id; after it, their rank and a "Check my place"
// that recomputes the whole draw from what the server published, with Web Crypto, so the
// shopper need not trust the server's word. Self-contained: it draws only into #draw-box.

import { S, set } from './state.js';
import { api, salePath } from './api.js';
import { $ } from './dom.js';
import { fetchStatus, applyStatus } from './sale.js';

const enc = new TextEncoder();
const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, '0')).join('');
const unhex = (h) => new Uint8Array((h.match(/../g) || []).map((b) => parseInt(b, 16)));
const sha256 = (bytes) => crypto.subtle.digest('SHA-256', bytes);
const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
};

// An entry's public id: the first 16 hex of SHA-256("wr-entry" ‖ queue id).
export const entryId = async (queueId) => hex(await sha256(enc.encode(`wr-entry${queueId}`))).slice(0, 16);

// The public ids in the order draw-v1 ranks them, and the entries' root.
export async function rank(seedHex, ids, beacon) {
  const root = hex(await sha256(enc.encode([...ids].sort().join('\n'))));
  const key = await sha256(concat(unhex(seedHex), unhex(root), enc.encode(beacon ?? '')));
  const k = await crypto.subtle.importKey('raw', key, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const tags = await Promise.all(ids.map(async (id) => [new Uint8Array(await crypto.subtle.sign('HMAC', k, enc.encode(id))), id]));
  tags.sort(([a, x], [b, y]) => {
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
    return x < y ? -1 : x > y ? 1 : 0;
  });
  return { root, order: tags.map(([, id]) => id) };
}

// Checks the published draw as a whole and this shopper's place in it.
export async function verify(draw, entries, mine) {
  if (draw.algorithm !== 'draw-v1' || !draw.seed) return { ok: false, why: 'the draw has not been published' };
  if (hex(await sha256(unhex(draw.seed))) !== draw.commitment) return { ok: false, why: 'the seed does not match the commitment made before the opening' };
  const { root, order } = await rank(draw.seed, entries, draw.beacon);
  if (root !== draw.entries_root) return { ok: false, why: 'the entries list does not match the published root' };
  if (order.some((id, i) => id !== entries[i])) return { ok: false, why: 'the published order differs from the recomputed one' };
  const at = order.indexOf(mine);
  if (at < 0) return { ok: false, why: 'your entry is not in the draw' };
  return { ok: true, rank: at + 1, of: order.length };
}

let watching = null;

function show(text, { entry = null, check = false } = {}) {
  $('#draw-box').hidden = false;
  $('#draw-text').textContent = text;
  $('#draw-entry').textContent = entry ?? '';
  $('#draw-entry-row').hidden = !entry;
  $('#draw-check').hidden = !check;
}

const fetchDraw = () => api(salePath(S.saleId, '/draw'));
const fetchEntries = () => api(salePath(S.saleId, '/draw/entries'));

// Called with the shopper's queue id once they hold a place in a draw sale: shows their entry
// and follows the draw until it has run.
export async function watchDraw(queueId) {
  if (S.sale?.prequeue !== 'draw' || watching === queueId) return;
  watching = queueId;
  const mine = await entryId(queueId);
  S.drawEntry = mine;
  for (;;) {
    let draw;
    try { draw = await fetchDraw(); } catch { draw = null; }
    if (draw?.seed) return drawn(mine);
    if (draw && !S.drawPending) set({ drawPending: true });
    if (draw) show('You are in the draw. When the sale opens, everyone who joined before then gets a random place, the same for all of them whoever was quickest.', { entry: mine });
    await new Promise((r) => setTimeout(r, 2000));
    if (watching !== queueId) return;
  }
}

async function drawn(mine) {
  S.drawPending = false;
  let entries;
  try { entries = await fetchEntries(); } catch { return; }
  const at = entries.indexOf(mine);
  if (at < 0) return show('You joined after the draw: you are in line in arrival order, behind the drawn entries.');
  S.drawRank = at + 1;
  show(`The draw has run: your rank is ${(at + 1).toLocaleString()} of ${entries.length.toLocaleString()}.`, { entry: mine, check: true });
  // The draw moved the line: read this shopper's exact place again.
  try {
    const d = await fetchStatus();
    if (d.position > 0) Object.assign(S, { anchorPos: d.position, anchorAdmitted: d.admitted_total ?? S.admittedTotal, anchored: false });
    applyStatus(d);
  } catch { /* the stream's next state corrects it */ }
}

export async function checkMyPlace() {
  const out = $('#draw-result');
  out.textContent = 'Checking…';
  try {
    const [draw, entries] = await Promise.all([fetchDraw(), fetchEntries()]);
    const v = await verify(draw, entries, S.drawEntry);
    out.textContent = v.ok && v.rank === S.drawRank
      ? `Verified: rank ${v.rank.toLocaleString()} of ${v.of.toLocaleString()} follows from the published seed, which matches the commitment made before the opening.`
      : `Not verified: ${v.ok ? 'your rank differs from the one shown' : v.why}.`;
    out.dataset.verified = v.ok && v.rank === S.drawRank ? 'yes' : 'no';
  } catch (err) {
    out.textContent = `Could not check: ${err.message}`;
    out.dataset.verified = 'no';
  }
}
