// Sizes (a sale with variants): the picker on the product card, each size with what is left of
// it, greyed out the moment it sells out (progress and `variant_sold_out` carry every size's
// units left). The choice is kept on this device, so a reload keeps it.

import { $ } from './dom.js';
import { S, set, say } from './state.js';
import { store } from './token.js';

export const hasSizes = (s) => (s.sale?.variants?.length ?? 0) > 0;

// What is left of one size: the live count if the page has one, else its declared units.
export function sizeLeft(s, id) {
  const live = s.variantsLeft?.[id];
  return live ?? s.sale?.variants?.find((v) => v.id === id)?.units ?? 0;
}

export const sizeName = (s, id) => s.sale?.variants?.find((v) => v.id === id)?.name ?? id;

export function pickSize(id) {
  if (sizeLeft(S, id) <= 0) return;
  store.set('variant', id);
  set({ variant: id, ...say('') });
}

// Every answer that carries sizes (sale, progress, restocked, variant_sold_out, a 409).
export function updateSizes(d) {
  if (d?.variants_left) S.variantsLeft = { ...S.variantsLeft, ...d.variants_left };
}

// The chosen size sold out (here, or told by a checkout's 409): say so and let them pick again.
export function sizeGone(id) {
  if (S.variant !== id) return;
  store.set('variant', '');
  S.variant = null;
  set(say(`${sizeName(S, id)} just sold out. Please pick another size.`));
}

export function restoreSize() {
  const saved = store.get('variant');
  if (saved && S.sale?.variants?.some((v) => v.id === saved)) S.variant = saved;
}

// The picker: one button per size, rebuilt only when the sale changes, relabelled on redraw.
export function renderSizes(s) {
  const box = $('#sizes');
  const on = hasSizes(s) && ['join', 'waiting', 'admitted'].includes(s.view);
  box.hidden = !on;
  if (!on) return;
  const list = $('#size-list');
  if (list.dataset.sale !== s.sale.id) {
    list.dataset.sale = s.sale.id;
    list.replaceChildren(...s.sale.variants.map((v) => {
      const b = Object.assign(document.createElement('button'), { type: 'button', className: 'size' });
      b.dataset.variant = v.id;
      b.append(Object.assign(document.createElement('span'), { className: 'size-name', textContent: v.name }),
        Object.assign(document.createElement('span'), { className: 'size-left' }));
      b.addEventListener('click', () => pickSize(v.id));
      return b;
    }));
  }
  for (const b of list.children) {
    const left = sizeLeft(s, b.dataset.variant);
    b.disabled = left <= 0 || s.busy;
    b.classList.toggle('gone', left <= 0);
    b.setAttribute('aria-pressed', String(s.variant === b.dataset.variant));
    const label = left <= 0 ? 'Sold out' : `${left} left`;
    const span = b.querySelector('.size-left');
    if (span.textContent !== label) span.textContent = label;
  }
}
