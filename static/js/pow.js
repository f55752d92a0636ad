// The proof-of-work a sale may ask before a new place: fetch a challenge, solve it in a Web
// Worker (pow-worker.js), reporting hashes tried so the page can show it is working.

import { api, salePath } from './api.js';

// Resolves to the `{ challenge, nonce }` a join sends, or `{}` when the sale asks no work.
export async function prove(saleId, onProgress) {
  const c = await api(salePath(saleId, '/challenge'));
  if (!(c.difficulty > 0)) return {};
  const worker = new Worker(new URL('./pow-worker.js', import.meta.url));
  try {
    const nonce = await new Promise((resolve, reject) => {
      worker.onmessage = (e) => {
        onProgress(e.data.hashes);
        if (e.data.nonce != null) resolve(e.data.nonce);
      };
      worker.onerror = () => reject(Object.assign(new Error('Your browser could not complete the check.'), { code: 'pow_failed', status: 0 }));
      worker.postMessage({ challenge: c.challenge, difficulty: c.difficulty });
    });
    return { challenge: c.challenge, nonce };
  } finally {
    worker.terminate();
  }
}
