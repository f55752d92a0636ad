// The webhooks card: every endpoint with how its deliveries go (pending, failing, given up,
// last answer), from GET /api/admin/webhooks; a disabled one (after a 410) can be enabled.
// Polled every 10 s while signed in: deliveries are not on the admin stream.

import { api, explain } from './api.js';
import { $, el, num, when } from './format.js';

const EVERY_MS = 10_000;
let timer = null;

function state(e) {
  if (!e.enabled) return ['disabled', e.disabled_reason || 'disabled'];
  if (e.failing > 0) return ['failing', 'retrying'];
  return ['ok', 'ok'];
}

function row(e, reload) {
  const [kind, label] = state(e);
  const tr = el('tr', { 'data-state': kind });
  const name = el('td');
  name.append(el('code', {}, e.url));
  if (e.description) name.append(el('div', { class: 'fine' }, e.description));
  const status = el('td');
  status.append(el('span', { class: 'badge' }, label));
  if (!e.enabled) {
    const b = el('button', { class: 'btn btn-quiet', type: 'button' }, 'Enable');
    b.addEventListener('click', async () => {
      try {
        await api(`/api/admin/webhooks/${encodeURIComponent(e.id)}/enable`, { method: 'POST' });
        reload();
      } catch (err) {
        $('#webhooks-msg').textContent = explain(err, 'Enable');
      }
    });
    status.append(b);
  }
  const last = e.last_status ?? (e.last_error ? 'no answer' : '–');
  tr.append(name, status,
    el('td', {}, num(e.pending)), el('td', {}, num(e.failing)), el('td', {}, num(e.failed)),
    el('td', { title: e.last_error ?? '' }, String(last)), el('td', {}, when(e.last_attempt_at)));
  return tr;
}

export async function loadWebhooks() {
  const msg = $('#webhooks-msg');
  try {
    const list = await api('/api/admin/webhooks');
    $('#webhooks tbody').replaceChildren(...list.map((e) => row(e, loadWebhooks)));
    $('#webhooks').hidden = list.length === 0;
    msg.textContent = list.length ? '' : 'No endpoints: add one with POST /api/admin/webhooks.';
  } catch (err) {
    $('#webhooks tbody').replaceChildren();
    msg.textContent = explain(err, 'Webhooks');
  }
}

export function startWebhooks() {
  stopWebhooks();
  loadWebhooks();
  timer = setInterval(loadWebhooks, EVERY_MS);
}

export function stopWebhooks() {
  clearInterval(timer);
  timer = null;
}
