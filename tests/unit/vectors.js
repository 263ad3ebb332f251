// vectors.js — recomputes the signature test vectors in vectors.json with Node's
// own crypto and an independent canonical-JSON writer, so the C code is checked against a second implementation.
// Usage: node tests/unit/vectors.js [--print]   (no npm packages; Node >= 20)
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

// PKCS#8 wrapping of a raw Ed25519 seed (RFC 8410): Node has no "raw seed"
// import, but this fixed 16-byte prefix turns the seed into a PKCS#8 DER.
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
// SPKI prefix of an Ed25519 public key; the raw key is the 32 bytes after it.
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

function keyFromSeed(seedHex) {
  const seed = Buffer.from(seedHex, 'hex');
  if (seed.length !== 32) throw new Error('seed must be 32 bytes');
  const privateKey = crypto.createPrivateKey({
    key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]),
    format: 'der',
    type: 'pkcs8',
  });
  const spki = crypto.createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  if (!spki.subarray(0, SPKI_ED25519_PREFIX.length).equals(SPKI_ED25519_PREFIX)) {
    throw new Error('unexpected SPKI encoding');
  }
  return { privateKey, publicKey: spki.subarray(SPKI_ED25519_PREFIX.length) };
}

function keyId(rawPublicKey) {
  return crypto.createHash('sha256').update(rawPublicKey).digest('base64url').slice(0, 16);
}

// --- canonical JSON, written from the rules in docs/signatures.md ---------
// Deliberately not JSON.stringify: that writes \u001f in lower case, while
// the canonical form (jansson's) uses upper-case hex, and JS sorts strings by
// UTF-16 code units, while the canonical order is by UTF-8 bytes.

function escapeString(s) {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0);
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\b') out += '\\b';
    else if (ch === '\f') out += '\\f';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (cp < 0x20) out += '\\u' + cp.toString(16).toUpperCase().padStart(4, '0');
    else out += ch; // everything else, U+2028 and DEL included, stays raw UTF-8
  }
  return out + '"';
}

function compareUtf8(a, b) {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function canonical(v) {
  if (v === null) return 'null';
  if (v === true) return 'true';
  if (v === false) return 'false';
  if (typeof v === 'number') {
    // JSON.parse has already lost anything beyond 2^53, so such vectors are refused
    if (!Number.isSafeInteger(v)) throw new Error(`non-integer or unsafe number ${v}`);
    return String(v);
  }
  if (typeof v === 'string') return escapeString(v);
  if (Array.isArray(v)) return '[' + v.map(canonical).join(',') + ']';
  if (typeof v === 'object') {
    const keys = Object.keys(v).filter((k) => v[k] !== null).sort(compareUtf8);
    return '{' + keys.map((k) => escapeString(k) + ':' + canonical(v[k])).join(',') + '}';
  }
  throw new Error(`unsupported value ${typeof v}`);
}

// --- keyed BLAKE2b (RFC 7693), for the API key hash vector -----------------
// Node exposes only unkeyed BLAKE2b-512, so the keyed 256-bit variant that
// libsodium's crypto_generichash computes is written out here with BigInt.

const M64 = (1n << 64n) - 1n;
const B2B_IV = [
  0x6a09e667f3bcc908n, 0xbb67ae8584caa73bn, 0x3c6ef372fe94f82bn, 0xa54ff53a5f1d36f1n,
  0x510e527fade682d1n, 0x9b05688c2b3e6c1fn, 0x1f83d9abfb41bd6bn, 0x5be0cd19137e2179n,
];
const B2B_SIGMA = [
  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
  [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
  [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
  [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
  [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
  [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
  [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
  [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
  [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
  [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
];

const rotr64 = (x, n) => ((x >> n) | (x << (64n - n))) & M64;

function b2bCompress(h, block, t, last) {
  const m = [];
  for (let i = 0; i < 16; i++) m.push(block.readBigUInt64LE(i * 8));
  const v = [...h, ...B2B_IV];
  v[12] ^= t & M64;
  v[13] ^= (t >> 64n) & M64;
  if (last) v[14] ^= M64;
  const g = (a, b, c, d, x, y) => {
    v[a] = (v[a] + v[b] + x) & M64;
    v[d] = rotr64(v[d] ^ v[a], 32n);
    v[c] = (v[c] + v[d]) & M64;
    v[b] = rotr64(v[b] ^ v[c], 24n);
    v[a] = (v[a] + v[b] + y) & M64;
    v[d] = rotr64(v[d] ^ v[a], 16n);
    v[c] = (v[c] + v[d]) & M64;
    v[b] = rotr64(v[b] ^ v[c], 63n);
  };
  for (let r = 0; r < 12; r++) {
    const s = B2B_SIGMA[r % 10];
    g(0, 4, 8, 12, m[s[0]], m[s[1]]);
    g(1, 5, 9, 13, m[s[2]], m[s[3]]);
    g(2, 6, 10, 14, m[s[4]], m[s[5]]);
    g(3, 7, 11, 15, m[s[6]], m[s[7]]);
    g(0, 5, 10, 15, m[s[8]], m[s[9]]);
    g(1, 6, 11, 12, m[s[10]], m[s[11]]);
    g(2, 7, 8, 13, m[s[12]], m[s[13]]);
    g(3, 4, 9, 14, m[s[14]], m[s[15]]);
  }
  for (let i = 0; i < 8; i++) h[i] ^= v[i] ^ v[i + 8];
}

function blake2b(data, outLen, key = Buffer.alloc(0)) {
  if (outLen < 1 || outLen > 64 || key.length > 64) throw new Error('bad BLAKE2b parameters');
  const h = [...B2B_IV];
  h[0] ^= 0x01010000n ^ (BigInt(key.length) << 8n) ^ BigInt(outLen);
  // a key is processed as a full zero-padded first block
  const input = key.length ? Buffer.concat([key, Buffer.alloc(128 - key.length), data]) : data;
  let t = 0n;
  let off = 0;
  while (input.length - off > 128) {
    t += 128n;
    b2bCompress(h, input.subarray(off, off + 128), t, false);
    off += 128;
  }
  const last = Buffer.alloc(128);
  input.copy(last, 0, off);
  t += BigInt(input.length - off);
  b2bCompress(h, last, t, true);
  const out = Buffer.alloc(64);
  h.forEach((w, i) => out.writeBigUInt64LE(w, i * 8));
  return out.subarray(0, outLen);
}

// --- checks ---------------------------------------------------------------

function main() {
  const file = path.join(__dirname, 'vectors.json');
  const vec = JSON.parse(fs.readFileSync(file, 'utf8'));
  const printOnly = process.argv.includes('--print');
  let failures = 0;
  let checks = 0;
  const check = (name, actual, expected) => {
    checks++;
    if (actual !== expected) {
      failures++;
      console.error(`FAIL ${name}\n  expected: ${JSON.stringify(expected)}\n  actual:   ${JSON.stringify(actual)}`);
    } else if (printOnly) {
      console.log(`ok   ${name}: ${JSON.stringify(actual)}`);
    }
  };

  // Self-test of the BLAKE2b code against Node's built-in unkeyed BLAKE2b-512.
  for (const msg of ['', 'abc', 'x'.repeat(128), 'y'.repeat(129), 'z'.repeat(300)]) {
    const ours = blake2b(Buffer.from(msg), 64).toString('hex');
    const node = crypto.createHash('blake2b512').update(msg).digest('hex');
    check(`blake2b512 self-test (len ${msg.length})`, ours, node);
  }

  // Keys.
  const k = vec.ed25519;
  const { privateKey, publicKey } = keyFromSeed(k.seedHex);
  check('ed25519.publicKeyHex', publicKey.toString('hex'), k.publicKeyHex);
  check('ed25519.publicKeyB64url', publicKey.toString('base64url'), k.publicKeyB64url);
  check('ed25519.keyId', keyId(publicKey), k.keyId);
  check('ed25519.emptyMessageSignatureHex',
    crypto.sign(null, Buffer.alloc(0), privateKey).toString('hex'), k.emptyMessageSignatureHex);

  // Canonical JSON.
  for (const c of vec.canonical) check(`canonical.${c.name}`, canonical(c.input), c.canonical);

  // Token signatures.
  const s = vec.signatures;
  const canon = canonical(s.payload);
  check('signatures.canonical', canon, s.canonical);
  for (const suffix of ['endorsed', 'cancelled']) {
    const msg = Buffer.from(`${s.canonical}.${suffix}`, 'utf8');
    const sig = crypto.sign(null, msg, privateKey);
    check(`signatures.${suffix}`, sig.toString('base64url'), s[suffix]);
    // and the expected value must verify under the public key alone
    const pub = crypto.createPublicKey({
      key: Buffer.concat([SPKI_ED25519_PREFIX, publicKey]), format: 'der', type: 'spki',
    });
    check(`signatures.${suffix} verifies`,
      crypto.verify(null, msg, pub, Buffer.from(s[suffix], 'base64url')), true);
  }

  // API key hashes.
  const domainKey = Buffer.from(vec.apiKeyHash.domainKey, 'utf8');
  check('apiKeyHash.domainKey length', domainKey.length, 32);
  for (const a of vec.apiKeyHash.cases) {
    check(`apiKeyHash(${JSON.stringify(a.apiKey)})`,
      blake2b(Buffer.from(a.apiKey, 'utf8'), 32, domainKey).toString('hex'), a.hash);
  }

  if (failures) {
    console.error(`${failures} of ${checks} checks failed`);
    process.exit(1);
  }
  console.log(`all ${checks} vector checks passed`);
}

main();
