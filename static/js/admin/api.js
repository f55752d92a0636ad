// The admin API over fetch, with the session cookie. Every state-changing request carries
// X-Waitroom-Admin: 1, which the server requires with the cookie (a CSRF defence). Failures
// are thrown as Errors with the API's stable `code` and the HTTP `status` (0 when offline).

export const salePath = (id, what = '') => `/api/admin/sales/${encodeURIComponent(id)}${what}`;

export async function api(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') headers['X-Waitroom-Admin'] = '1';
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method, headers, cache: 'no-store', credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw apiError(0, 'network', 'The server cannot be reached.');
  }
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (res.ok) return data;
  throw apiError(res.status, data?.code ?? `http_${res.status}`, data?.message ?? res.statusText);
}

function apiError(status, code, message) {
  return Object.assign(new Error(message), { status, code });
}

// What the operator reads when a control fails.
export function explain(err, what) {
  if (err.status === 404 && err.code !== 'unknown_sale') {
    return `${what}: this server does not offer it yet (404).`;
  }
  if (err.status === 401) return `${what}: the session ended; sign in again.`;
  return `${what} failed: ${err.message} (${err.code}${err.status ? `, ${err.status}` : ''}).`;
}
