"""test_zz_contract.py — runs last (file order): every Token API response the
other tests received (tdlib.record_capture) is validated against the published
Token.io description with tests/contract/validate.js.

Set aside, and listed, rather than validated:
- responses to operations the description does not have (e.g. DELETE
  /tokens/{tokenId} -> 405): there is no contract to check them against;
- statuses the description does not declare for an operation, when they are the
  ones docs/api.md documents as required by HTTP and the product (405, 409, 410,
  413, 414, 415, 431; "Status codes the reference does not list"), and 501 on the
  17 operations tokend does not implement whose description lists no 501 (their
  shape is checked by test_errors.py's walk of the description);
- captures a test marked `exclude` because of a documented spec defect
  (tests/contract/README.md; e.g. a transfer without destinations, defect 2).
Any other failure is a tokend bug."""

import json
import os
import subprocess

import pytest

import tdlib
from tdlib import CONTRACT_DIR, REPO, consent_flow, new_member

VALIDATE = os.path.join(CONTRACT_DIR, "validate.js")
DOCUMENTED_EXTRA_STATUSES = {405, 409, 410, 413, 414, 415, 431, 501}


def spec_path():
    return os.environ.get("TD_OPENAPI") or os.path.join(REPO, "tests", "contract", "spec", "tokenio-openapi.yml")


def spec_operations():
    """{path template: {method: [declared status keys]}} read with the contract tests' js-yaml."""
    code = ("const fs=require('fs');const y=require(process.argv[1]+'/node_modules/js-yaml');"
            "const d=y.load(fs.readFileSync(process.argv[2],'utf8'),{schema:y.CORE_SCHEMA});const o={};"
            "for(const [p,item] of Object.entries(d.paths)){o[p]={};for(const [m,op] of Object.entries(item)){"
            "if(op&&typeof op==='object'&&op.responses)o[p][m]=Object.keys(op.responses);}}"
            "process.stdout.write(JSON.stringify(o));")
    p = subprocess.run(["node", "-e", code, CONTRACT_DIR, spec_path()], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def declared(statuses, status):
    s = str(status)
    return s in statuses or f"{s[0]}XX" in {k.upper() for k in statuses} or "default" in statuses


def read_captures(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def test_token_api_responses_match_the_published_contract(tokend_factory, tmp_path):
    if not os.path.isfile(os.path.join(CONTRACT_DIR, "node_modules", "openapi-response-validator", "package.json")):
        pytest.fail("tests/contract/node_modules is missing: run scripts/deps.sh --test (npm ci in tests/contract)")
    captures = read_captures(tdlib.CAPTURE_PATH)
    if len(captures) < 5:
        # Run on its own: make some traffic of our own.
        srv = tokend_factory.start()
        bank, tpp = new_member(srv, "bank"), new_member(srv, "tpp")
        flow = consent_flow(tpp.client(), tpp, bank)
        tpp.client().get(f"/tokens/{flow.token_id}")
        tpp.client().put(f"/tokens/{flow.token_id}/cancel")
        captures = read_captures(tdlib.CAPTURE_PATH)

    ops = spec_operations()
    to_validate, set_aside = [], {}
    for c in captures:
        statuses = ops.get(c["path"], {}).get(c["method"])
        if c.get("exclude"):
            reason = c["exclude"]
        elif statuses is None:
            reason = f"no operation {c['method'].upper()} {c['path']} in the reference"
        elif not declared(statuses, c["status"]) and c["status"] in DOCUMENTED_EXTRA_STATUSES:
            reason = f"status {c['status']} not declared by the reference (docs/api.md lists it)"
        else:
            to_validate.append({k: c[k] for k in ("method", "path", "status", "body")})
            continue
        key = (reason, c["method"].upper(), c["path"], c["status"])
        set_aside[key] = set_aside.get(key, 0) + 1

    out = tmp_path / "captures.jsonl"
    with open(out, "w", encoding="utf-8") as f:
        for c in to_validate:
            f.write(json.dumps(c, ensure_ascii=False) + "\n")
    p = subprocess.run(["node", VALIDATE, str(out)], capture_output=True, text=True, timeout=600)

    covered = sorted({(c["method"].upper(), c["path"], c["status"]) for c in to_validate})
    print(f"\n{len(captures)} captures; validated {len(to_validate)} over {len(covered)} operation/status pairs:")
    for m, path, status in covered:
        print(f"  {m} {path} {status}")
    print("set aside:")
    for (reason, m, path, status), n in sorted(set_aside.items()):
        print(f"  {n:4d} x {m} {path} {status}: {reason}")
    assert p.returncode == 0, (f"validate.js ({p.returncode}) on {out}:\n"
                               + "\n".join(l[:1500] for l in p.stdout.splitlines()[:60]) + p.stderr)
