// Solves a proof-of-work challenge off the main thread, so the page stays responsive: finds a
// nonce such that SHA-256(challenge + ":" + nonce) starts with `difficulty` zero bits. Nonces
// are tried in batches (one digest promise each, awaited together) and progress is reported
// after each batch. A classic worker with no imports.

const BATCH = 512;
const enc = new TextEncoder();

function zeroBits(bytes) {
  let bits = 0;
  for (const b of bytes) {
    if (b !== 0) return bits + Math.clz32(b) - 24;
    bits += 8;
  }
  return bits;
}

self.onmessage = async (e) => {
  const { challenge, difficulty } = e.data;
  for (let n = 0; ; n += BATCH) {
    const nonces = Array.from({ length: BATCH }, (_, i) => String(n + i));
    const hashes = await Promise.all(nonces.map((nonce) => crypto.subtle.digest('SHA-256', enc.encode(`${challenge}:${nonce}`))));
    const found = hashes.findIndex((h) => zeroBits(new Uint8Array(h)) >= difficulty);
    if (found >= 0) return self.postMessage({ nonce: nonces[found], hashes: n + found + 1 });
    self.postMessage({ hashes: n + BATCH });
  }
};
