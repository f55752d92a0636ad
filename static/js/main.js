// Entry point of the shopper page: binds the controls, then shows the list of sales at `/`
// or one sale at `/s/{id}`.
//
// The flow modules call one another (a stream delivers statuses, a status can end the
// stream), so some imports are cyclic. That is safe here: no module uses an import while it
// loads, only inside functions, which first run from boot() below, after all have loaded.

import { S, set, say, retry } from './state.js';
import { api } from './api.js';
import { $ } from './dom.js';
import { forgetToken } from './token.js';
import { loadSale, join } from './sale.js';
import { buy } from './checkout.js';
import { continueToPayment } from './payment.js';
import { checkMyPlace } from './draw.js';

async function loadHome() {
  set({ view: 'loading' });
  try { set({ view: 'home', sales: await api('/api/sales'), ...say('') }); }
  catch (err) { set({ view: 'error', ...say(err.message, loadHome) }); }
}

function bindUi() {
  $('#join').addEventListener('click', () => {
    if (S.view === 'expired') forgetToken();
    join();
  });
  $('#buy').addEventListener('click', buy);
  $('#draw-check').addEventListener('click', checkMyPlace);
  $('#pay-form').addEventListener('submit', continueToPayment);
  $('#retry').addEventListener('click', retry);
  $('#quantity').addEventListener('change', (e) => set({ quantity: Number(e.target.value) || 1 }));
  $('#go').addEventListener('submit', (e) => {
    e.preventDefault();
    const id = $('#go-id').value.trim();
    if (id) location.assign(`/s/${encodeURIComponent(id)}`);
  });
}

function boot() {
  bindUi();
  const m = location.pathname.match(/^\/s\/([^/]+)\/?$/);
  if (m) {
    S.saleId = decodeURIComponent(m[1]);
    loadSale();
  } else {
    loadHome();
  }
}

boot();
