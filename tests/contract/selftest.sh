#!/usr/bin/env bash
# Self-test of the tokend contract validator (tests/contract/validate.js).
# Usage: bash tests/contract/selftest.sh   (from anywhere; exits non-zero on any failure)
# Honours TD_OPENAPI / the default spec location exactly like validate.js does.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
V="$HERE/validate.js"
FIX="$HERE/fixtures"
SPEC="${TD_OPENAPI:-$HERE/spec/tokenio-openapi.yml}"

# node_modules is git-ignored: install the pinned, locked dependencies when missing.
if [ ! -f "$HERE/node_modules/openapi-response-validator/package.json" ] || [ ! -f "$HERE/node_modules/js-yaml/package.json" ]; then
  echo "selftest: installing locked dependencies (npm ci)"
  (cd "$HERE" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

passed=0
failed=0
ok()   { passed=$((passed + 1)); echo "ok   - $*"; }
notok() { failed=$((failed + 1)); echo "FAIL - $*"; }

# run CMD...: sets $rc and $out (stdout+stderr) without tripping set -e
run() {
  if out="$("$@" 2>&1)"; then rc=0; else rc=$?; fi
}

nonblank_lines() { grep -c -v '^[[:space:]]*$' "$1" || true; }

spec_sum_before="$(sha256sum "$SPEC" | cut -d' ' -f1)"

# 1. good captures: every line must pass, exit 0
n_good="$(nonblank_lines "$FIX/good.jsonl")"
run node "$V" "$FIX/good.jsonl"
if [ "$rc" -eq 0 ] && grep -qx "$n_good responses validated, 0 failures" <<<"$out"; then
  ok "good.jsonl: $n_good responses validated, 0 failures"
else
  notok "good.jsonl (rc=$rc)"; echo "$out" | sed 's/^/    /'
fi

# 2./3. bad captures: whole file fails with one failure per line, and every line fails on its own
expect_each_line_fails() {
  local file="$1" what="$2" n i
  n="$(nonblank_lines "$file")"
  run node "$V" "$file"
  if [ "$rc" -eq 1 ] && grep -qx "$n responses validated, $n failures" <<<"$out"; then
    ok "$what: whole file -> $n responses validated, $n failures"
  else
    notok "$what: whole file (rc=$rc)"; echo "$out" | sed 's/^/    /'
  fi
  i=0
  while IFS= read -r line || [ -n "$line" ]; do
    i=$((i + 1))
    [ -z "${line//[[:space:]]/}" ] && continue
    printf '%s\n' "$line" >"$TMP/one.jsonl"
    run node "$V" "$TMP/one.jsonl"
    if [ "$rc" -eq 1 ] && grep -q '^FAIL line 1: ' <<<"$out" && grep -qx '1 responses validated, 1 failures' <<<"$out"; then
      ok "$what line $i fails: $(grep -m1 '^FAIL' <<<"$out" | cut -c1-150)"
    else
      notok "$what line $i was expected to fail (rc=$rc)"; echo "$out" | sed 's/^/    /'
    fi
  done <"$file"
}
expect_each_line_fails "$FIX/bad.jsonl" "bad.jsonl"

# 4. documented spec defects: realistic responses that the spec, read strictly, rejects
expect_each_line_fails "$FIX/spec-defects.jsonl" "spec-defects.jsonl"

# 5. documented gaps: responses a server should not send but that the spec/validator accept
n_gaps="$(nonblank_lines "$FIX/known-gaps.jsonl")"
run node "$V" "$FIX/known-gaps.jsonl"
if [ "$rc" -eq 0 ] && grep -qx "$n_gaps responses validated, 0 failures" <<<"$out"; then
  ok "known-gaps.jsonl: still accepted ($n_gaps lines; see README 'Known gaps')"
else
  notok "known-gaps.jsonl behaviour changed (rc=$rc): update README/fixtures"; echo "$out" | sed 's/^/    /'
fi

# 6. interface
: >"$TMP/empty.jsonl"
run node "$V" "$TMP/empty.jsonl"
if [ "$rc" -eq 1 ] && grep -qx '0 responses validated, 0 failures' <<<"$out"; then ok "empty captures -> exit 1"; else notok "empty captures (rc=$rc)"; fi

printf '{"method":"get","path":"/tokens/{tokenId}","status":200,"body":{"token":{}}\n' >"$TMP/trunc.jsonl"
run node "$V" "$TMP/trunc.jsonl"
if [ "$rc" -eq 1 ] && grep -q '^FAIL line 1: (unparsable capture)' <<<"$out"; then ok "malformed capture line is a failure"; else notok "malformed capture (rc=$rc)"; fi

run node "$V" --spec "$TMP/does-not-exist.yml" "$FIX/good.jsonl"
if [ "$rc" -eq 2 ]; then ok "--spec with a missing file -> exit 2"; else notok "--spec missing file (rc=$rc)"; fi

run env TD_OPENAPI="$TMP/does-not-exist.yml" node "$V" "$FIX/good.jsonl"
if [ "$rc" -eq 2 ] && grep -q 'does-not-exist.yml' <<<"$out"; then ok "TD_OPENAPI is honoured"; else notok "TD_OPENAPI (rc=$rc)"; fi

run env TD_OPENAPI="$TMP/does-not-exist.yml" node "$V" --spec "$SPEC" "$FIX/good.jsonl"
if [ "$rc" -eq 0 ]; then ok "--spec overrides TD_OPENAPI"; else notok "--spec precedence (rc=$rc)"; fi

run env -u TD_OPENAPI bash -c 'cd / && node "$1" "$2"' _ "$V" "$FIX/good.jsonl"
if [ "$rc" -eq 0 ]; then ok "default spec path (tests/contract/spec) works from any cwd"; else notok "default spec path (rc=$rc)"; fi
# The copy must be the published description the project was given, unchanged.
if [ -f "$REPO/../shared/ref/tokenio-openapi.yml" ]; then
  if cmp -s "$REPO/../shared/ref/tokenio-openapi.yml" "$HERE/spec/tokenio-openapi.yml"; then
    ok "spec/tokenio-openapi.yml is identical to ../shared/ref"
  else
    notok "spec/tokenio-openapi.yml differs from ../shared/ref/tokenio-openapi.yml"
  fi
fi

# 7. the interpretation patch: needed, and limited to the expected schemas
head -n1 "$FIX/good.jsonl" >"$TMP/token.jsonl"
run node "$V" --spec "$SPEC" --no-patch "$TMP/token.jsonl"
if [ "$rc" -eq 1 ] && grep -q 'body/token/payload: must match exactly one schema in oneOf' <<<"$out"; then
  ok "without the patch the realistic access token fails TokenPayload oneOf (patch is needed)"
else
  notok "--no-patch behaviour changed (rc=$rc)"; echo "$out" | sed 's/^/    /'
fi
run node "$V" --spec "$SPEC" --list-patches
first_patch="$(grep -v '^result patch ' <<<"$out" || true)"
if [ "$rc" -eq 0 ] && grep -qx '#/components/schemas/TokenPayload/oneOf/2: required: \[access\]' <<<"$first_patch" \
   && grep -qx '#/components/schemas/InitiateBankAuthorizationResponse/oneOf/1: required: \[redirectUrl\]' <<<"$first_patch" \
   && ! grep -q 'GetTokenRequestResultWithStatusResponse\|TokenRequestPayload/' <<<"$first_patch"; then
  ok "patch list: $(tail -n1 <<<"$out")"
else
  notok "--list-patches (rc=$rc)"; echo "$out" | sed 's/^/    /'
fi

# 7b. the result patch: exactly the three branches of GetTokenRequestResultWithStatusResponse,
# made exclusive by transferId / standingOrderSubmissionId (derived from the spec)
R='result patch #/components/schemas/GetTokenRequestResultWithStatusResponse/oneOf'
if [ "$(grep -c '^result patch ' <<<"$out")" -eq 3 ] \
   && grep -qxF "$R/0: allOf [#/components/schemas/TokenRequestPayloadResponse, required: [transferId]]" <<<"$out" \
   && grep -qxF "$R/1: allOf [#/components/schemas/StandingOrderBodyResponse, required: [standingOrderSubmissionId]]" <<<"$out" \
   && grep -qxF "$R/2: allOf [#/components/schemas/TokenRequestAccessBodyResponse, not: anyOf required: [transferId] | [standingOrderSubmissionId]]" <<<"$out"; then
  ok "result patch list: 3 branches of GetTokenRequestResultWithStatusResponse"
else
  notok "result patch list (rc=$rc)"; grep '^result patch ' <<<"$out" | sed 's/^/    /'
fi
# defect 1 is real: without the patches a sensible result (first result line of good.jsonl) fails oneOf
grep -m1 '"/token-requests/{tokenRequestId}/result"' "$FIX/good.jsonl" >"$TMP/result.jsonl"
run node "$V" --spec "$SPEC" --no-patch "$TMP/result.jsonl"
if [ "$rc" -eq 1 ] && grep -q 'body: must match exactly one schema in oneOf (passing branches: \[0,1\])' <<<"$out"; then
  ok "without the result patch a sensible GET .../result 200 fails oneOf (spec defect 1; patch is needed)"
else
  notok "--no-patch on a result capture (rc=$rc)"; echo "$out" | sed 's/^/    /'
fi
# the patch refuses to guess when the schema's shape changes (exit 2, spec untouched)
node -e '
  const fs = require("fs"), yaml = require(process.argv[1] + "/node_modules/js-yaml");
  const doc = yaml.load(fs.readFileSync(process.argv[2], "utf8"), { schema: yaml.CORE_SCHEMA });
  doc.components.schemas.StandingOrderBodyResponse.properties.transferId = { type: "string" };
  fs.writeFileSync(process.argv[3], JSON.stringify(doc));' "$HERE" "$SPEC" "$TMP/changed-spec.json"
run node "$V" --spec "$TMP/changed-spec.json" "$FIX/good.jsonl"
if [ "$rc" -eq 2 ] && grep -q 'result patch: .*review the result patch' <<<"$out"; then
  ok "result patch stops (exit 2) when the branches no longer differ by one field each"
else
  notok "result patch on a changed spec (rc=$rc)"; echo "$out" | sed 's/^/    /'
fi

# 8. format handling of the validator (openapi-response-validator 12.1.3 / Ajv 8 without ajv-formats)
run node - "$HERE" <<'EOF'
const path = require('path');
const V = require(path.join(process.argv[2], 'node_modules', 'openapi-response-validator')).default;
const schemas = { F: { type: 'object', properties: {
  s: { type: 'string', format: 'string' }, b: { type: 'boolean', format: 'boolean' },
  ip: { type: 'string', format: 'ipv4' }, dt: { type: 'string', format: 'date-time' },
  i: { type: 'integer', format: 'int32' } } } };
const v = new V({ responses: { 200: { content: { 'application/json': { schema: { $ref: '#/components/schemas/F' } } } } },
  components: { schemas } });
const fails = [];
if (v.validateResponse(200, { s: 'x', b: true, ip: '10.0.0.1', dt: '2024-01-01T00:00:00Z', i: 1 })) fails.push('valid values rejected');
if (v.validateResponse(200, { s: 'x', b: false, ip: 'not-an-ip', dt: 'yesterday', i: 1e12 })) fails.push('format values are enforced (expected: ignored)');
const r = v.validateResponse(200, { b: 'true', i: '1' });
if (!r || r.errors.length !== 2) fails.push('types not enforced');
if (fails.length) { console.log(fails.join('; ')); process.exit(1); }
console.log('unknown formats (string, boolean) ignored; ipv4/date-time/int32 not enforced; types enforced');
EOF
if [ "$rc" -eq 0 ]; then ok "formats: $out"; else notok "format behaviour changed: $out"; fi

# 9. the spec file is only read
spec_sum_after="$(sha256sum "$SPEC" | cut -d' ' -f1)"
if [ "$spec_sum_before" = "$spec_sum_after" ]; then ok "spec file unchanged"; else notok "spec file was modified!"; fi

echo "selftest: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
