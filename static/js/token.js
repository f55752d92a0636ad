// What survives a reload, per sale, in localStorage: the queue token (the place in line), the
// place it started at (for the progress bar), the admission ticket and the last order.
// Private modes may refuse storage: the page still works then, it just forgets on reload.

import { S } from './state.js';

const key = (what) => `waitroom:${S.saleId}:${what}`;

export const store = {
  get(what) { try { return localStorage.getItem(key(what)); } catch { return null; } },
  set(what, v) { try { localStorage.setItem(key(what), String(v)); } catch { /* ignore */ } },
  del(...whats) { for (const w of whats) { try { localStorage.removeItem(key(w)); } catch { /* ignore */ } } },
};

// The bar measures progress from the furthest-back place this device was given.
export function rememberStart(position) {
  S.initialPos = Math.max(S.initialPos, position);
  store.set('start', S.initialPos);
}

// Gives up the place in line: the next join starts a new one at the back.
export function forgetToken() {
  Object.assign(S, { token: null, initialPos: 0, anchorPos: 1, anchored: false });
  store.del('token', 'start');
}
