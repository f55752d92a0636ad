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

// Updates the list in place, one button per sale kept across samples: rebuilding it every
// second would swallow a tap that lands while it is replaced (and a test's element handle).
export function renderList(sales, selected, onSelect) {
  const list = $('#sales');
  $('#no-sales').hidden = sales.length > 0;
  const kept = new Map($$('.sale-pick', list).map((b) => [b.dataset.sale, b.parentElement]));
  const items = sales.map((s) => {
    const li = kept.get(s.id) ?? pickItem(s.id, onSelect);
    const [label, kind] = badge(s);
    const [name, tag, line] = li.firstChild.children;
    li.firstChild.setAttribute('aria-pressed', String(s.id === selected));
    name.textContent = s.name;
    tag.textContent = label;
    tag.className = `badge ${kind}`;
    line.textContent = `${num(s.queue_len)} in line · ${num(s.remaining)} left`;
    return li;
  });
  const same = items.length === list.children.length && items.every((li, i) => list.children[i] === li);
  if (!same) list.replaceChildren(...items);
}

function pickItem(id, onSelect) {
  const b = el('button', { type: 'button', class: 'sale-pick', 'data-sale': id });
  b.append(el('span', { class: 'sale-pick-name' }), el('span'), el('span', { class: 'muted' }));
  b.addEventListener('click', () => onSelect(id));
  const li = el('li');
  li.append(b);
  return li;
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
  renderSizes(s.by_variant || []);
}

// A sale with variants: one row per size, a size with none left marked sold out.
function renderSizes(sizes) {
  $('#sizes').hidden = sizes.length === 0;
  $('#size-rows').replaceChildren(...sizes.map((v) => {
    const tr = el('tr', { 'data-variant': v.id, class: v.left > 0 ? '' : 'gone' });
    tr.append(el('td', {}, v.name), el('td', {}, v.left > 0 ? num(v.left) : 'sold out'), el('td', {}, num(v.units)));
    return tr;
  }));
}
