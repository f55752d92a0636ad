// JSON over fetch. Every failure, no network included, is thrown as an Error carrying the API's
// stable `code`, the HTTP `status` (0 when offline), `retryAfter` and the answer (`data`): callers branch on codes,
// never on English text.

import { noteServerDate } from './opening.js';

export const salePath = (saleId, what = '') => `/api/sales/${encodeURIComponent(saleId)}${what}`;

export async function api(path, { method = 'GET', body, bearer } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  let res;
  const sent = Date.now();
  try {
    res = await fetch(path, { method, headers, cache: 'no-store', body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw apiError(0, 'network', 'We can’t reach the server right now.', null);
  }
  noteServerDate(res, sent, Date.now());
  const data = await res.json().catch(() => null);
  if (res.ok) return data;
  throw apiError(res.status, data?.code ?? `http_${res.status}`, data?.message ?? 'Something went wrong.', retryAfter(res), data);
}

// `data`: the whole answer, for the few errors that carry more than a code (not_payable's status).
function apiError(status, code, message, after, data = null) {
  return Object.assign(new Error(message), { status, code, retryAfter: after, data });
}

// Whole seconds to wait, from either form of the header (seconds or an HTTP date); at least 1
// so a retry never spins.
function retryAfter(res) {
  const h = (res.headers.get('Retry-After') || '').trim();
  if (!h) return null;
  const secs = /^\d+$/.test(h) ? Number(h) : (Date.parse(h) - Date.now()) / 1000;
  return Number.isFinite(secs) ? Math.max(1, Math.ceil(secs)) : null;
}
