// Renders the list of sales and the selected sale's numbers from the latest sample.

import { $, $$, el, num, when } from './format.js';

const FORMAT = {
  admissions_per_sec: (v) => num(v, { decimals: true }),
  orders_per_sec: (v) => num(v, { decimals: true }),
  checkout_p99_ms: (v) => num(v, { unit: ' ms' }),
  max_active: (v) => (v > 0 ? num(v) : 'no cap'),
  opens_at: when,
  closes_at: when,
};

function badge(s) {
  if (s.remaining <= 0) return ['Sold out', 'soldout'];
  return s.open ? ['Open', 'open'] : ['Closed', 'closed'];
}

export function renderList(sales, selected, onSelect) {
  const list = $('#sales');
  $('#no-sales').hidden = sales.length > 0;
  const items = sales.map((s) => {
    const [label, kind] = badge(s);
    const b = el('button', { type: 'button', class: 'sale-pick', 'data-sale': s.id, 'aria-pressed': String(s.id === selected) });
    b.append(el('span', { class: 'sale-pick-name' }, s.name),
      el('span', { class: `badge ${kind}` }, label),
      el('span', { class: 'muted' }, `${num(s.queue_len)} in line · ${num(s.remaining)} left`));
    b.addEventListener('click', () => onSelect(s.id));
    const li = el('li');
    li.append(b);
    return li;
  });
  list.replaceChildren(...items);
}

export function renderSale(s) {
  $('#sale-name').textContent = s.name;
  $('#sale-id').textContent = s.id;
  const [label, kind] = badge(s);
  const b = $('#sale-badge');
  b.textContent = label;
  b.className = `badge ${kind}`;
  for (const dd of $$('#numbers [data-k]')) {
    const k = dd.dataset.k;
    dd.textContent = (FORMAT[k] || num)(s[k]);
  }
}
