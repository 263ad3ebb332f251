#!/usr/bin/env node
'use strict';
// sigcheck.js — an independent verifier for tokend's token signatures, using
// only Node's built-in crypto. Reads JSON on stdin:
//   {"keys": ["<base64url raw Ed25519 public key>", ...],
//    "checks": [{"payload": {...}, "suffix": "endorsed"|"cancelled",
//                "signature": "<base64url>", "publicKey": "<base64url>"}, ...]}
// and prints {"keyIds": [...], "results": [{"canonical": "...", "valid": bool}, ...]}.
// Canonical JSON per docs/signatures.md, written here from scratch: object keys
// sorted by their UTF-8 bytes, no whitespace, null members left out (nulls in
// arrays kept), strings escaped minimally with upper-case \u00XX for other
// control characters, integers only.
const crypto = require('crypto');

function canonString(s) {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0);
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (c === 0x08) out += '\\b';
    else if (c === 0x0c) out += '\\f';
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0d) out += '\\r';
    else if (c === 0x09) out += '\\t';
    else if (c < 0x20) out += '\\u' + c.toString(16).toUpperCase().padStart(4, '0');
    else out += ch;
  }
  return out + '"';
}

function canon(v) {
  if (v === null) return 'null';
  if (v === true) return 'true';
  if (v === false) return 'false';
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new Error('real number in a payload');
    return String(v);
  }
  if (typeof v === 'string') return canonString(v);
  if (Array.isArray(v)) return '[' + v.map(canon).join(',') + ']';
  const keys = Object.keys(v).filter((k) => v[k] !== null);
  keys.sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
  return '{' + keys.map((k) => canonString(k) + ':' + canon(v[k])).join(',') + '}';
}

const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex');
function publicKey(b64url) {
  const raw = Buffer.from(b64url, 'base64url');
  if (raw.length !== 32 || raw.toString('base64url') !== b64url) throw new Error('bad public key ' + b64url);
  return crypto.createPublicKey({ key: Buffer.concat([SPKI_ED25519, raw]), format: 'der', type: 'spki' });
}

function keyId(b64url) {
  const raw = Buffer.from(b64url, 'base64url');
  return crypto.createHash('sha256').update(raw).digest('base64url').slice(0, 16);
}

function verify(c) {
  const canonical = canon(c.payload);
  const sig = Buffer.from(c.signature, 'base64url');
  const strict = sig.length === 64 && sig.toString('base64url') === c.signature;
  const msg = Buffer.from(canonical + '.' + c.suffix, 'utf8');
  const valid = strict && crypto.verify(null, msg, publicKey(c.publicKey), sig);
  return { canonical, valid };
}

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', () => {
  const req = JSON.parse(input);
  const out = {
    keyIds: (req.keys || []).map(keyId),
    results: (req.checks || []).map(verify),
  };
  process.stdout.write(JSON.stringify(out));
});
