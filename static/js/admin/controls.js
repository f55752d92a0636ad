// Open, close, and the live changes (PATCH /api/admin/sales/{id}): rate and max active,
// schedule, restock. Each form sends only its own fields; the result or the error is said in
// #control-msg, and the numbers follow on the next sample.

import { api, explain, salePath } from './api.js';
import { $, fromLocalInput, toLocalInput } from './format.js';

let current = () => null;
let afterChange = () => {};

function say(text, kind = 'ok') {
  const m = $('#control-msg');
  m.textContent = text;
  m.dataset.kind = kind;
}

async function run(what, path, opts) {
  const id = current();
  if (!id) return;
  say(`${what}…`, 'busy');
  try {
    await api(salePath(id, path), opts);
    say(`${what}: done.`);
    afterChange();
  } catch (err) {
    say(explain(err, what), 'error');
  }
}

const patch = (what, body) => run(what, '', { method: 'PATCH', body });
const int = (sel) => Number.parseInt($(sel).value, 10);

// Fills the forms from a sale's numbers (only when the sale changes, not every second,
// so a value being typed is not overwritten).
export function fill(s) {
  $('#rate').value = s.rate_per_sec;
  $('#max-active').value = s.max_active;
  $('#units').value = s.units;
  $('#opens-at').value = toLocalInput(s.opens_at);
  $('#closes-at').value = toLocalInput(s.closes_at);
  say('');
}

export function bind(selected, changed) {
  current = selected;
  afterChange = changed;
  $('#open').addEventListener('click', () => run('Open', '/open', { method: 'POST' }));
  $('#close').addEventListener('click', () => run('Close', '/close', { method: 'POST' }));
  $('#rate-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const body = { rate_per_sec: int('#rate') };
    if ($('#max-active').value !== '') body.max_active = int('#max-active');
    patch('Rate change', body);
  });
  $('#schedule-form').addEventListener('submit', (e) => {
    e.preventDefault();
    patch('Schedule', { opens_at: fromLocalInput($('#opens-at').value), closes_at: fromLocalInput($('#closes-at').value) });
  });
  $('#restock-form').addEventListener('submit', (e) => {
    e.preventDefault();
    patch('Restock', { units: int('#units') });
  });
}
