#!/usr/bin/env node
'use strict';
/*
 * tokend contract validator.
 *
 * Checks captured HTTP responses (JSON Lines) against the published Token.io
 * OpenAPI 3.0 description, using the npm package `openapi-response-validator`
 * (Ajv 8 underneath) and `js-yaml` to load the description.
 *
 * Usage:
 *   node tests/contract/validate.js [--spec PATH] [--verbose] <captures.jsonl>
 *   node tests/contract/validate.js --list-patches [--spec PATH]
 *   --no-patch: diagnostics only, validate against the spec exactly as written
 *               (without the interpretation patch below).
 *
 * Spec location, first match wins:
 *   --spec PATH (alias --openapi PATH), then $TD_OPENAPI, then
 *   spec/tokenio-openapi.yml beside this file (a byte-for-byte copy of the
 *   project's ../shared/ref/tokenio-openapi.yml, so a clean checkout on its own
 *   can run the tests; see README). The file is only read, never written.
 *
 * Each capture line is a JSON object:
 *   {"method":"get","path":"/tokens/{tokenId}","status":200,"body":{...}}
 * "path" must be the OpenAPI path template exactly as written in the spec.
 * Blank lines are ignored.
 *
 * For every capture the response object for that status is chosen (exact code,
 * then "NXX" range, then "default"); a method/path/status the spec does not
 * define is a failure. One line is printed per failing capture, then the summary
 * "N responses validated, M failures". Exit 0 only if M == 0 and N >= 1;
 * exit 1 on failures (or no captures), exit 2 on usage / spec-loading errors.
 *
 * IN-MEMORY INTERPRETATION PATCH (the only change made to the spec; see
 * README.md "The in-memory patch"):
 *   Several schemas express "exactly one of these properties" as
 *       oneOf: [ {properties: {a: ...}}, {properties: {b: ...}}, ... ]
 *   with no `required` in the branches (e.g. TokenPayload:
 *   transfer / standingOrder / access). Under JSON Schema a branch that only
 *   declares `properties` matches any object that lacks those properties, so
 *   every realistic payload matches all branches and `oneOf` fails. Ajv (as
 *   used by openapi-response-validator) does exactly that (verified: a normal
 *   access token fails with "must match exactly one schema in oneOf").
 *   We therefore, for every oneOf branch anywhere in the document that consists
 *   ONLY of `properties` (pure annotations such as the branches' `title` are
 *   disregarded) with exactly ONE property and has no `required`, add
 *   `required: [thatProperty]`. This expresses the documented intent and only
 *   ever adds constraints; nothing else is altered (branches with other
 *   keywords, several properties, or an existing `required` are left alone).
 *   `--list-patches` prints every branch touched.
 *
 * SECOND IN-MEMORY PATCH, for exactly one schema (README.md "The result patch"):
 *   GetTokenRequestResultWithStatusResponse (GET /token-requests/{id}/result 200)
 *   is oneOf three $ref'd objects that each require only `status`, declare the
 *   same tokenId/signature/status/statusReasonInformation/bankId and allow
 *   additional properties, so every sensible body matches all three and fails
 *   oneOf (spec defect 1). The branches differ only by the property each one
 *   alone declares: transferId (PIS payments), standingOrderSubmissionId
 *   (standing orders), none (AIS). We make them mutually exclusive by exactly
 *   those fields: each branch becomes allOf [its $ref, required: [its own
 *   field]], and the branch without one becomes allOf [its $ref, not: anyOf
 *   required: [each other branch's field]]. The referenced component schemas
 *   are not modified. The distinguishing fields are derived from the spec, and
 *   if the schema no longer has that shape validate.js stops (exit 2) rather
 *   than guess. Disabled by --no-patch like the first patch.
 */

const fs = require('fs');
const path = require('path');
const yaml = require('js-yaml');
const OpenAPIResponseValidator = require('openapi-response-validator').default;

const ANNOTATION_KEYS = new Set(['title', 'description', 'example', 'examples', 'externalDocs']);
const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

function usage(msg) {
  if (msg) process.stderr.write(`validate.js: ${msg}\n`);
  process.stderr.write(
    'usage: node validate.js [--spec PATH] [--verbose] [--no-patch] <captures.jsonl>\n' +
    '       node validate.js --list-patches [--spec PATH]\n' +
    'spec: --spec/--openapi PATH, else $TD_OPENAPI, else tests/contract/spec/tokenio-openapi.yml\n');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { spec: null, verbose: false, listPatches: false, noPatch: false, captures: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--spec' || a === '--openapi') {
      if (i + 1 >= argv.length) usage(`${a} needs a path`);
      opts.spec = argv[++i];
    } else if (a.startsWith('--spec=') || a.startsWith('--openapi=')) {
      opts.spec = a.slice(a.indexOf('=') + 1);
    } else if (a === '--verbose' || a === '-v') {
      opts.verbose = true;
    } else if (a === '--no-patch') {
      opts.noPatch = true;
    } else if (a === '--list-patches') {
      opts.listPatches = true;
    } else if (a === '--help' || a === '-h') {
      usage();
    } else if (a.startsWith('-') && a !== '-') {
      usage(`unknown option ${a}`);
    } else if (opts.captures === null) {
      opts.captures = a;
    } else {
      usage(`unexpected argument ${a}`);
    }
  }
  if (!opts.listPatches && opts.captures === null) usage('missing <captures.jsonl>');
  return opts;
}

function resolveSpecPath(cliSpec) {
  if (cliSpec) return path.resolve(cliSpec);
  if (process.env.TD_OPENAPI) return path.resolve(process.env.TD_OPENAPI);
  return path.resolve(__dirname, 'spec', 'tokenio-openapi.yml');
}

function loadSpec(specPath) {
  let text;
  try {
    text = fs.readFileSync(specPath, 'utf8');
  } catch (e) {
    process.stderr.write(`validate.js: cannot read OpenAPI description ${specPath}: ${e.message}\n`);
    process.exit(2);
  }
  let doc;
  try {
    // CORE_SCHEMA: plain YAML 1.2 scalars only (no timestamp -> Date conversion),
    // so enum/default values stay exactly as written.
    doc = yaml.load(text, { schema: yaml.CORE_SCHEMA, filename: specPath });
  } catch (e) {
    process.stderr.write(`validate.js: cannot parse ${specPath}: ${e.message}\n`);
    process.exit(2);
  }
  if (!doc || typeof doc !== 'object' || typeof doc.openapi !== 'string' || !doc.openapi.startsWith('3.') ||
      !doc.paths || typeof doc.paths !== 'object') {
    process.stderr.write(`validate.js: ${specPath} is not an OpenAPI 3.x description\n`);
    process.exit(2);
  }
  return doc;
}

function escapePointer(s) {
  return String(s).replace(/~/g, '~0').replace(/\//g, '~1');
}

/*
 * The interpretation patch (see header comment). Walks the whole document
 * (components, inline path schemas, everything) without following $refs, so
 * every schema object is visited once. Mutates the in-memory document only.
 * Returns [{pointer, property}] for each branch that was given `required`.
 */
function applyOneOfRequiredPatch(doc) {
  const touched = [];
  const seen = new Set();
  (function walk(node, pointer) {
    if (node === null || typeof node !== 'object' || seen.has(node)) return;
    seen.add(node);
    if (Array.isArray(node)) {
      node.forEach((child, i) => walk(child, `${pointer}/${i}`));
      return;
    }
    if (Array.isArray(node.oneOf)) {
      node.oneOf.forEach((branch, i) => {
        if (branch === null || typeof branch !== 'object' || Array.isArray(branch)) return;
        // "only `properties`": besides it, allow nothing but pure annotations
        // (title/description/example/examples/externalDocs/x-*), which have no
        // validation effect; the spec's branches carry a `title`.
        const keys = Object.keys(branch).filter((k) => !ANNOTATION_KEYS.has(k) && !k.startsWith('x-'));
        if (keys.length !== 1 || keys[0] !== 'properties') return; // hence also no `required`
        const props = branch.properties;
        if (props === null || typeof props !== 'object' || Array.isArray(props)) return;
        const names = Object.keys(props);
        if (names.length !== 1) return;
        branch.required = [names[0]];
        touched.push({ pointer: `${pointer}/oneOf/${i}`, property: names[0] });
      });
    }
    for (const [k, v] of Object.entries(node)) walk(v, `${pointer}/${escapePointer(k)}`);
  })(doc, '#');
  return touched;
}

const RESULT_SCHEMA = 'GetTokenRequestResultWithStatusResponse';

/*
 * The result patch (see header comment). Returns [{pointer, description}] for
 * the three rewritten branches, or throws an Error when the schema does not
 * have the shape the patch was written for.
 */
function applyResultOneOfPatch(doc) {
  const base = `#/components/schemas/${RESULT_SCHEMA}`;
  const schema = doc.components && doc.components.schemas && doc.components.schemas[RESULT_SCHEMA];
  if (!schema || typeof schema !== 'object') throw new Error(`${base} not found`);
  if (!Array.isArray(schema.oneOf) || schema.oneOf.length < 2) throw new Error(`${base} is no longer a oneOf of several branches`);
  const branches = schema.oneOf.map((b, i) => {
    if (!b || typeof b.$ref !== 'string' || Object.keys(b).length !== 1) throw new Error(`${base}/oneOf/${i} is not a plain $ref`);
    const target = resolveLocalRef(doc, b.$ref);
    if (!target || typeof target !== 'object' || !target.properties) throw new Error(`${base}/oneOf/${i}: cannot resolve ${b.$ref}`);
    return { ref: b.$ref, props: new Set(Object.keys(target.properties)) };
  });
  // A branch's distinguishing fields: the properties no other branch declares.
  const own = branches.map((b, i) => [...b.props].filter((p) => branches.every((o, j) => j === i || !o.props.has(p))));
  const plain = own.filter((f) => f.length === 0).length;
  if (plain !== 1 || own.some((f) => f.length > 1)) {
    throw new Error(`${base}: expected one branch without a field of its own and one field per other branch, ` +
                    `found ${JSON.stringify(own)}; review the result patch`);
  }
  const others = own.filter((f) => f.length === 1).map((f) => f[0]);
  const touched = [];
  schema.oneOf = branches.map((b, i) => {
    const extra = own[i].length === 1
      ? { required: [own[i][0]] }
      : { not: { anyOf: others.map((f) => ({ required: [f] })) } };
    const description = own[i].length === 1
      ? `allOf [${b.ref}, required: [${own[i][0]}]]`
      : `allOf [${b.ref}, not: anyOf required: [${others.join('] | [')}]]`;
    touched.push({ pointer: `${base}/oneOf/${i}`, description });
    return { allOf: [{ $ref: b.ref }, extra] };
  });
  return touched;
}

function resolveLocalRef(doc, ref) {
  if (typeof ref !== 'string' || !ref.startsWith('#/')) return undefined;
  let cur = doc;
  for (const raw of ref.slice(2).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (cur === null || typeof cur !== 'object' || !(key in cur)) return undefined;
    cur = cur[key];
  }
  return cur;
}

/* Response objects may themselves be $refs (#/components/responses/X), which
 * openapi-response-validator does not follow; resolve them here. */
function resolveResponse(doc, response) {
  let r = response;
  for (let depth = 0; r && typeof r === 'object' && typeof r.$ref === 'string'; depth++) {
    if (depth > 20) return { error: `response $ref loop at ${response.$ref}` };
    const next = resolveLocalRef(doc, r.$ref);
    if (next === undefined) return { error: `unresolvable response $ref ${r.$ref}` };
    r = next;
  }
  if (!r || typeof r !== 'object') return { error: 'response object is not an object' };
  // The validator takes the FIRST media type; prefer JSON when several exist.
  if (r.content && typeof r.content === 'object') {
    const types = Object.keys(r.content);
    const json = types.find((t) => /^application\/([a-z0-9.+-]*\+)?json\b/i.test(t));
    if (json && types[0] !== json) r = { ...r, content: { [json]: r.content[json] } };
  }
  return { response: r };
}

function pickStatusKey(responses, status) {
  const code = String(status);
  if (Object.prototype.hasOwnProperty.call(responses, code)) return code;
  const range = Object.keys(responses).find((k) => k.toUpperCase() === `${code[0]}XX`);
  if (range) return range;
  if (Object.prototype.hasOwnProperty.call(responses, 'default')) return 'default';
  return null;
}

function formatError(e) {
  const where = e.path ? `body${e.path}` : 'body';
  let extra = '';
  const p = e.params || {};
  if (e.keyword === 'enum' && Array.isArray(p.allowedValues)) extra = ` ${JSON.stringify(p.allowedValues)}`;
  else if (e.keyword === 'oneOf' && p.passingSchemas !== undefined) extra = ` (passing branches: ${JSON.stringify(p.passingSchemas)})`;
  else if (e.keyword === 'additionalProperties' && p.additionalProperty !== undefined) extra = ` '${p.additionalProperty}'`;
  const kw = e.keyword ? ` [${e.keyword}${e.schemaPath ? ' ' + e.schemaPath : ''}]` : '';
  return `${where}: ${e.message}${extra}${kw}`;
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const specPath = resolveSpecPath(opts.spec);
  const doc = loadSpec(specPath);
  const patched = opts.noPatch ? [] : applyOneOfRequiredPatch(doc);
  let resultPatched = [];
  if (!opts.noPatch) {
    try {
      resultPatched = applyResultOneOfPatch(doc);
    } catch (e) {
      process.stderr.write(`validate.js: result patch: ${e.message}\n`);
      return 2;
    }
  }

  if (opts.listPatches) {
    for (const t of patched) process.stdout.write(`${t.pointer}: required: [${t.property}]\n`);
    for (const t of resultPatched) process.stdout.write(`result patch ${t.pointer}: ${t.description}\n`);
    process.stdout.write(`${patched.length} oneOf branches patched in ${specPath}\n`);
    return 0;
  }

  let text;
  try {
    text = opts.captures === '-' ? fs.readFileSync(0, 'utf8') : fs.readFileSync(opts.captures, 'utf8');
  } catch (e) {
    process.stderr.write(`validate.js: cannot read captures ${opts.captures}: ${e.message}\n`);
    return 2;
  }

  const components = doc.components || {};
  const cache = new Map();
  function validatorFor(method, tmpl, statusKey, response) {
    const key = `${method} ${tmpl} ${statusKey}`;
    if (!cache.has(key)) {
      cache.set(key, new OpenAPIResponseValidator({
        responses: { [statusKey]: response },
        components,
        loggingKey: key,
        // keep Ajv's keyword/params/schemaPath so failures are explained fully
        errorTransformer: (openapiError, ajvError) => ({
          path: ajvError.instancePath.replace(/^\/response/, ''),
          keyword: ajvError.keyword,
          params: ajvError.params,
          schemaPath: ajvError.schemaPath.replace(/^#\/properties\/response/, '#'),
          message: ajvError.message,
        }),
      }));
    }
    return cache.get(key);
  }

  let validated = 0;
  let failures = 0;
  const lines = text.split(/\r?\n/);
  lines.forEach((line, idx) => {
    const lineNo = idx + 1;
    if (line.trim() === '') return;
    validated++;
    const fail = (label, msgs) => {
      failures++;
      process.stdout.write(`FAIL line ${lineNo}: ${label}: ${msgs.join(' | ')}\n`);
    };

    let cap;
    try {
      cap = JSON.parse(line);
    } catch (e) {
      fail('(unparsable capture)', [`invalid JSON: ${e.message}`]);
      return;
    }
    if (!cap || typeof cap !== 'object' || Array.isArray(cap)) {
      fail('(bad capture)', ['capture must be a JSON object']);
      return;
    }
    const method = typeof cap.method === 'string' ? cap.method.toLowerCase() : null;
    const tmpl = cap.path;
    const status = cap.status;
    const label = `${method ? method.toUpperCase() : '?'} ${typeof tmpl === 'string' ? tmpl : '?'} ${status === undefined ? '?' : status}`;
    if (!method || !HTTP_METHODS.includes(method)) { fail(label, [`capture "method" must be an HTTP method, got ${JSON.stringify(cap.method)}`]); return; }
    if (typeof tmpl !== 'string') { fail(label, ['capture "path" must be a string (OpenAPI path template)']); return; }
    const statusNum = typeof status === 'string' && /^[1-5][0-9][0-9]$/.test(status) ? Number(status) : status;
    if (!Number.isInteger(statusNum) || statusNum < 100 || statusNum > 599) { fail(label, [`capture "status" must be an HTTP status code, got ${JSON.stringify(status)}`]); return; }

    const pathItem = doc.paths[tmpl];
    if (!pathItem || typeof pathItem !== 'object') { fail(label, [`path template ${tmpl} is not defined in the spec`]); return; }
    const op = pathItem[method];
    if (!op || typeof op !== 'object') { fail(label, [`operation ${method.toUpperCase()} ${tmpl} is not defined in the spec`]); return; }
    const responses = op.responses || {};
    const statusKey = pickStatusKey(responses, statusNum);
    if (statusKey === null) { fail(label, [`status ${statusNum} is not defined for ${method.toUpperCase()} ${tmpl} (spec defines: ${Object.keys(responses).join(', ')}; no default)`]); return; }
    const resolved = resolveResponse(doc, responses[statusKey]);
    if (resolved.error) { fail(label, [`spec problem: ${resolved.error}`]); return; }

    let validator;
    try {
      validator = validatorFor(method, tmpl, statusKey, resolved.response);
    } catch (e) {
      fail(label, [`cannot compile response schema: ${e.message}`]);
      return;
    }
    // The validator runs Ajv with useDefaults, which writes defaults into the
    // instance: validate a private copy so captures are never altered.
    const body = cap.body === undefined ? null : JSON.parse(JSON.stringify(cap.body));
    const result = validator.validateResponse(statusNum, body);
    if (result) {
      fail(label + (statusKey !== String(statusNum) ? ` (as '${statusKey}')` : ''), result.errors.map(formatError));
    } else if (opts.verbose) {
      process.stdout.write(`ok   line ${lineNo}: ${label}\n`);
    }
  });

  process.stdout.write(`${validated} responses validated, ${failures} failures\n`);
  return failures === 0 && validated > 0 ? 0 : 1;
}

process.exitCode = main();
