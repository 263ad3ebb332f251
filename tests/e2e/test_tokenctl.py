"""test_tokenctl.py — end-to-end tests of tokenctl, the operator CLI.

Starts a real `tokend serve` on a free loopback port with its own store in a
temporary directory, then drives every scenario only through tokenctl: members
and API keys, public keys, token requests, consent, tokens, cancel, health,
and the exit codes (0 success, 1 HTTP error, 2 usage, 3 transport).

Binaries come from TOKENCTL_BIN and TOKEND_BIN (CTest sets both); without them
the tests use build/ in the source tree. Self-contained: no conftest needed.
"""
import base64
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOKENCTL = os.environ.get("TOKENCTL_BIN", str(REPO / "build" / "tokenctl"))
TOKEND = os.environ.get("TOKEND_BIN", str(REPO / "build" / "tokend"))

# The SubjectPublicKeyInfo DER prefix of an Ed25519 public key (RFC 8410).
ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")

pytestmark = pytest.mark.skipif(
    not (os.access(TOKENCTL, os.X_OK) and os.access(TOKEND, os.X_OK)),
    reason="tokenctl/tokend not built (set TOKENCTL_BIN and TOKEND_BIN)",
)


def clean_env(**extra):
    """The environment without TOKEND_* settings the developer may have set,
    so only what a test passes reaches tokenctl and tokend."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKEND_")}
    env.update(extra)
    return env


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port():
    """A loopback port nothing listens on (bound, never listened, then freed)."""
    return free_port()


class Server:
    """A running tokend and the secrets it handed out, so every tokenctl call
    can check that none of them leaks into its output."""

    def __init__(self, url, workdir, admin_key_file):
        self.url = url
        self.workdir = workdir
        self.admin_key_file = admin_key_file
        self.admin_key = admin_key_file.read_text().strip()
        self.api_keys = set()

    def run(self, *args, env=None, cwd=None, stdin=None, url=True, reveals_key=False):
        """Runs tokenctl [--url URL] ARGS in the server's work directory (so its
        default ./var/admin.key is the server's admin key)."""
        argv = [TOKENCTL] + (["--url", self.url] if url else []) + [str(a) for a in args]
        p = subprocess.run(argv, env=env or clean_env(), cwd=cwd or self.workdir, input=stdin,
                           capture_output=True, text=True, timeout=120)
        out = p.stdout + p.stderr
        assert self.admin_key not in out, f"admin key leaked by {args}"
        if not reveals_key:
            for k in self.api_keys:
                assert k not in out, f"an API key leaked by {args}"
        assert "Sanitizer" not in p.stderr and "runtime error" not in p.stderr, p.stderr
        return p

    def ok(self, *args, **kw):
        p = self.run(*args, **kw)
        assert p.returncode == 0, f"{args}: rc {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"
        assert p.stderr == "", p.stderr
        return p.stdout

    def ok_json(self, *args, **kw):
        return json.loads(self.ok(*args, **kw))

    def quiet(self, *args, **kw):
        """tokenctl -q ...: the single value it prints."""
        out = self.ok("-q", *args, **kw)
        assert out.endswith("\n") and out.count("\n") == 1, repr(out)
        return out.strip()

    def fails(self, rc, *args, **kw):
        p = self.run(*args, **kw)
        assert p.returncode == rc, f"{args}: rc {p.returncode}, wanted {rc}\nstdout: {p.stdout}\nstderr: {p.stderr}"
        assert p.stdout == "", p.stdout
        return p

    def error_json(self, *args, **kw):
        """The error JSON a refused call prints on stderr (exit 1)."""
        return json.loads(self.fails(1, *args, **kw).stderr)["error"]

    def new_api_key(self, member_id, level):
        key = self.quiet("member", "api-key", member_id, level, reveals_key=True)
        self.api_keys.add(key)
        return key


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("tokenctl")
    store = work / "var"  # the admin key lands in ./var/admin.key, tokenctl's default
    store.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = work / "tokend.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([TOKEND, "serve", "--listen", f"127.0.0.1:{port}", "--store", f"sqlite:{store}/tokend.db"],
                                stdout=log, stderr=subprocess.STDOUT, env=clean_env(), cwd=work)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"tokend exited early:\n{log_path.read_text()}"
            up = subprocess.run([TOKENCTL, "--url", url, "--timeout", "2", "health"], env=clean_env(),
                                capture_output=True, text=True)
            if up.returncode == 0:
                break
            assert time.monotonic() < deadline, f"tokend did not come up:\n{log_path.read_text()}"
            time.sleep(0.1)
        yield Server(url, work, store / "admin.key")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"tokend did not stop on SIGTERM:\n{log_path.read_text()}")
    assert rc == 0, f"tokend exited with {rc}:\n{log_path.read_text()}"


@pytest.fixture(scope="module")
def parties(server):
    """A granting member (bank) and a requesting member (tpp), with API keys."""
    bank = server.quiet("member", "create", "Fixture Bank")
    tpp = server.quiet("member", "create", "Fixture TPP")
    return {
        "bank": bank,
        "tpp": tpp,
        "bank_key": server.new_api_key(bank, "STANDARD"),
        "tpp_key": server.new_api_key(tpp, "STANDARD"),
        "tpp_low_key": server.new_api_key(tpp, "LOW"),
    }


def access_request(server, p, ref, *extra):
    return server.quiet("--api-key", p["tpp_key"], "request", "create", "--from", p["bank"], "--to", p["tpp"],
                        "--redirect-url", "https://tpp.example/cb", "--ref-id", ref, *extra)


def approved_token(server, p, request_id, *accounts):
    link = server.quiet("--api-key", p["tpp_key"], "request", "authorize", request_id)
    args = ["--accounts", ",".join(accounts)] if accounts else []
    return server.quiet("consent", "approve", link, *args)


# ---- the whole scenario, as an operator would run it ----


def test_access_token_lifecycle(server):
    # Two members: one with the default ./var/admin.key, one with --admin-key-file.
    bank = server.quiet("member", "create", "Bank")
    created = server.ok_json("--admin-key-file", server.admin_key_file, "member", "create", "Third Party")
    tpp = created["memberId"]
    assert bank.startswith("m:") and tpp.startswith("m:") and bank != tpp

    bank_key = server.new_api_key(bank, "STANDARD")
    answer = server.ok_json("member", "api-key", tpp, "LOW", reveals_key=True)
    tpp_key = answer["apiKey"]
    server.api_keys.add(tpp_key)
    assert bank_key != tpp_key

    # Public keys tokend holds for the bank, readable by the other party.
    keys = server.ok_json("--api-key", tpp_key, "keys", "list", bank)
    assert keys[0]["key"] and all(k["keyAlgorithm"] == "ED25519" for k in keys[0]["key"])

    # The third party asks the bank for access.
    rid = server.quiet("--api-key", tpp_key, "request", "create", "--from", bank, "--to", tpp,
                       "--redirect-url", "https://tpp.example/callback", "--ref-id", "ref-life-1",
                       "--access", "ACCOUNTS,BALANCES", "--description", "budgeting app")
    assert rid.startswith("rq:")
    stored = server.ok_json("--api-key", tpp_key, "request", "get", rid)["tokenRequest"]
    assert stored["id"] == rid
    assert stored["requestPayload"]["accessBody"]["resourceTypeList"]["resources"] == ["ACCOUNTS", "BALANCES"]
    assert stored["requestPayload"]["description"] == "budgeting app"
    assert server.quiet("--api-key", tpp_key, "request", "result", rid) == "PENDING"

    # Authorize: the consent link; the user approves it.
    link = server.ok_json("--api-key", tpp_key, "request", "authorize", rid)["redirectUrl"]
    assert link.startswith(server.url + "/consent/")
    decided = server.ok_json("consent", "approve", link, "--accounts", "a:1,a:2")
    token_id = decided["tokenId"]
    assert token_id.startswith("ta:")
    assert decided["location"].startswith("https://tpp.example/callback?tokenId=")

    # The result names the token; either party can read it.
    result = server.ok_json("--api-key", tpp_key, "request", "result", rid)
    assert result["status"] == "PROCESSED" and result["tokenId"] == token_id
    assert result["signature"]["memberId"] == bank
    assert server.quiet("--api-key", tpp_key, "request", "result", rid) == token_id
    token = server.ok_json("--api-key", tpp_key, "token", "get", token_id)["token"]
    assert token["id"] == token_id and token["payload"]["from"]["id"] == bank
    accounts = {next(iter(r.values()))["accountId"] for r in token["payload"]["access"]["resources"]}
    assert accounts == {"a:1", "a:2"}
    assert server.quiet("--api-key", bank_key, "--member", bank, "token", "get", token_id) == token_id

    listed = server.ok("-q", "--api-key", tpp_key, "tokens", "list").split()
    assert listed == [token_id]
    page = server.ok_json("--api-key", tpp_key, "tokens", "list", "--type", "ACCESS", "--role", "TO", "--limit", "5")
    assert [t["id"] for t in page["tokens"]] == [token_id] and page["offset"] == ""

    # Cancel, then cancel again: both SUCCESS; the token carries the cancellation.
    cancelled = server.ok_json("--api-key", tpp_key, "token", "cancel", token_id)["result"]
    assert cancelled["status"] == "SUCCESS"
    assert [s["action"] for s in cancelled["token"]["payloadSignatures"]] == ["ENDORSED", "CANCELED"]
    assert server.quiet("--api-key", tpp_key, "token", "cancel", token_id) == "SUCCESS"

    # The consent link worked once.
    err = server.error_json("consent", "approve", link, "--accounts", "a:1")
    assert err["httpStatus"] == 410 and "already used" in err["message"]

    # An unknown token: exit 1, the server's error JSON on stderr, nothing on stdout.
    err = server.error_json("--api-key", tpp_key, "token", "get", "ta:unknown")
    assert err["errorCode"] == "NOT_FOUND" and err["paymentId"] == "ta:unknown" and err["tokenTraceId"]


# ---- usage, help and exit codes ----


def test_help(server):
    out = server.ok("--help")
    for cmd in ("member create", "member api-key", "issuer create", "issuer api-key", "keys list", "keys add",
                "request create", "request authorize", "consent approve", "consent reject", "tokens list",
                "token cancel", "health"):
        assert cmd in out, cmd
    assert "usage: tokenctl token cancel TOKEN_ID" in server.ok("token", "cancel", "--help")
    assert "tokenctl member api-key" in server.ok("member", "--help")
    assert "usage: tokenctl health" in server.ok("health", "-h")


@pytest.mark.parametrize("args", [
    [],
    ["frobnicate"],
    ["member"],
    ["member", "frobnicate"],
    ["member", "create"],
    ["member", "create", "a", "b"],
    ["--bogus", "health"],
    ["health", "--bogus"],
    ["health", "extra"],
    ["--url", "ftp://127.0.0.1", "health"],
    ["--timeout", "0", "health"],
    ["keys", "add", "m:x", "key", "--level"],
    ["request", "create", "--from", "m:a", "--to", "m:b", "--redirect-url", "https://x", "--ref-id", "r"],
    ["request", "create", "--from", "m:a", "--to", "m:b", "--redirect-url", "https://x", "--ref-id", "r",
     "--access", "ACCOUNTS", "--transfer", "1", "EUR"],
    ["request", "create", "--from", "m:a", "--to", "m:b", "--redirect-url", "https://x", "--ref-id", "r",
     "--transfer", "1", "EUR", "--expires", "1999999999"],
    ["request", "create", "--from", "m:a", "--to", "m:b", "--redirect-url", "https://x", "--ref-id", "r",
     "--access", "ACCOUNTS", "--expires", "soon"],
    ["request", "create", "--from", "m:a", "--to", "m:b", "--redirect-url", "https://x", "--ref-id", "r",
     "--access", ","],
    ["request", "create", "--transfer", "1"],
    # A payment without its payee, and a payee on an access request.
    ["request", "create", "--from", "m:a", "--to", "m:b", "--redirect-url", "https://x", "--ref-id", "r",
     "--transfer", "1", "EUR"],
    ["request", "create", "--from", "m:a", "--to", "m:b", "--redirect-url", "https://x", "--ref-id", "r",
     "--standing-order", "1", "EUR", "MNTH"],
    ["request", "create", "--from", "m:a", "--to", "m:b", "--redirect-url", "https://x", "--ref-id", "r",
     "--access", "ACCOUNTS", "--payee-iban", "DE89370400440532013000"],
    ["request", "create", "--json", "/nonexistent/request.json"],
    ["request", "create", "--json", "-", "--from", "m:a"],
    ["tokens", "list", "--limit", "ten"],
    ["token", "cancel", "t:x", "--customer-initiated", "maybe"],
    ["token", "cancel", "t:x", "--device-id", "a\r\nX-Injected: 1"],
    ["token", "get"],
    ["consent", "approve"],
])
def test_usage_errors_exit_2(server, args):
    p = server.fails(2, *args, env=clean_env(TOKEND_API_KEY="tk_placeholder"))
    assert p.stderr.startswith("tokenctl: "), p.stderr


def test_usage_errors_do_not_echo_secrets(server):
    secret = "tk_secretvalue0123456789"
    for args in (["--apikey=" + secret, "health"], ["health", "--api_key=" + secret],
                 ["token", "get", "ta:x", secret]):
        p = server.fails(2, *args)
        assert secret not in p.stderr, p.stderr


def test_missing_credentials_exit_2(server, tmp_path):
    p = server.fails(2, "token", "get", "ta:x")
    assert "--api-key" in p.stderr
    p = server.fails(2, "member", "create", "X", cwd=tmp_path)  # no ./var/admin.key here
    assert "./var/admin.key" in p.stderr
    p = server.fails(2, "--admin-key-file", tmp_path / "missing.key", "member", "create", "X")
    assert "missing.key" in p.stderr


def test_transport_error_exit_3(server):
    p = server.fails(3, "health", url=False, env=clean_env(TOKEND_URL=f"http://127.0.0.1:{closed_port()}"))
    assert p.stderr.startswith("tokenctl: GET http://127.0.0.1:")


def test_health(server):
    assert server.ok_json("health") == {"healthz": {"status": "ok"}, "readyz": {"status": "ready"}}
    assert server.quiet("health") == "ready"
    # TOKEND_URL is the default --url.
    assert server.quiet("health", url=False, env=clean_env(TOKEND_URL=server.url + "/")) == "ready"


# ---- credentials ----


def test_admin_key_sources(server, tmp_path):
    # TOKEND_ADMIN_KEY, from a directory without ./var/admin.key.
    env = clean_env(TOKEND_ADMIN_KEY=server.admin_key)
    assert server.quiet("member", "create", "Env Bank", env=env, cwd=tmp_path).startswith("m:")
    # --admin-key-file wins over TOKEND_ADMIN_KEY.
    env = clean_env(TOKEND_ADMIN_KEY="not-the-admin-key-at-all")
    assert server.quiet("--admin-key-file", server.admin_key_file, "member", "create", "File Bank", env=env)
    # A wrong key is the server's refusal: exit 1, and the key is not echoed.
    err = server.error_json("member", "create", "X", env=env, cwd=tmp_path)
    assert err["errorCode"] == "UNAUTHENTICATED"


def test_api_key_sources(server, parties):
    rid = access_request(server, parties, "ref-keys-1", "--access", "ACCOUNTS")
    env = clean_env(TOKEND_API_KEY=parties["tpp_key"])
    assert server.quiet("request", "get", rid, env=env) == rid
    # Basic memberId:apiKey; the member must own the key.
    assert server.quiet("--member", parties["tpp"], "request", "get", rid, env=env) == rid
    err = server.error_json("--member", parties["bank"], "request", "get", rid, env=env)
    assert err["errorCode"] == "UNAUTHENTICATED"
    wrong = "tk_" + "x" * 43
    p = server.fails(1, "--api-key", wrong, "request", "get", rid)
    assert wrong not in p.stderr and json.loads(p.stderr)["error"]["errorCode"] == "UNAUTHENTICATED"


# ---- the other commands ----


def test_public_keys(server, parties, tmp_path):
    tpp, key = parties["tpp"], parties["tpp_key"]
    # A word beginning "--" is an option (docs/tokenctl.md: `--` ends the
    # options for such a key); this test's keys begin otherwise.
    b64url = "--"
    while b64url.startswith("--"):
        b64url = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    kid = server.quiet("--api-key", key, "keys", "add", tpp, b64url, "--level", "LOW")
    got = server.ok_json("--api-key", key, "keys", "get", tpp, kid)["key"][0]
    assert got["publicKey"] == b64url and got["level"] == "LOW"
    assert kid in server.ok("-q", "--api-key", key, "keys", "list", tpp).split()
    assert server.ok_json("--api-key", key, "keys", "delete", tpp, kid) == {}
    assert server.error_json("--api-key", key, "keys", "delete", tpp, kid)["errorCode"] == "NOT_FOUND"
    # Key ids and keys are base64url: one may begin with '-' and is still an argument, not an option.
    assert server.error_json("--api-key", key, "keys", "get", tpp, "-ETP340ZJ9MVpOWG")["errorCode"] == "NOT_FOUND"
    dashed = "-x" + b64url[2:]  # one dash, then no second one
    assert server.ok_json("--api-key", key, "keys", "add", tpp, dashed, "--level", "LOW")["keyId"]

    # A PEM, read from a file with @FILE.
    pem = tmp_path / "key.pem"
    der = base64.b64encode(ED25519_SPKI_PREFIX + os.urandom(32)).decode()
    pem.write_text(f"-----BEGIN PUBLIC KEY-----\n{der}\n-----END PUBLIC KEY-----\n")
    added = server.ok_json("--api-key", key, "keys", "add", tpp, f"@{pem}")
    assert len(added["keyId"]) == 16

    # Only a member's own keys can be managed.
    err = server.error_json("--api-key", key, "keys", "add", parties["bank"], b64url)
    assert err["errorCode"] == "PermissionDenied"


def test_transfer_rejected(server, parties):
    rid = server.quiet("--api-key", parties["tpp_key"], "request", "create", "--from", parties["bank"],
                       "--to", parties["tpp"], "--redirect-url", "https://tpp.example/pay?order=7",
                       "--ref-id", "ref-xfer-1", "--transfer", "10.50", "EUR",
                       "--payee-iban", "DE89370400440532013000")
    body = server.ok_json("--api-key", parties["tpp_key"], "request", "get", rid)["tokenRequest"]["requestPayload"]
    assert body["transferBody"]["lifetimeAmount"] == "10.50" and body["transferBody"]["currency"] == "EUR"
    assert body["transferBody"]["instructions"] == {"transferDestinations": [{"sepa": {"iban": "DE89370400440532013000"}}]}
    link = server.quiet("--api-key", parties["tpp_key"], "request", "authorize", rid)
    # The code alone (<requestId>.<secret>) is taken relative to --url; "--"
    # ends the options, as anywhere.
    code = link.rsplit("/", 1)[1]
    decided = server.ok_json("consent", "reject", "--", code)
    assert decided == {"location": "https://tpp.example/pay?order=7&error=access_denied", "error": "access_denied"}
    assert server.quiet("--api-key", parties["tpp_key"], "request", "result", rid) == "REJECTED"
    err = server.error_json("--api-key", parties["tpp_key"], "request", "authorize", rid)
    assert err["errorCode"] == "INVALID_ARGUMENT" and "REJECTED" in err["message"]


def test_transfer_cancel_needs_standard_key(server, parties):
    rid = server.quiet("--api-key", parties["tpp_key"], "request", "create", "--from", parties["bank"],
                       "--to", parties["tpp"], "--redirect-url", "https://tpp.example/pay",
                       "--ref-id", "ref-xfer-2", "--transfer", "5", "GBP",
                       "--payee-iban", "GB29NWBK60161331926819")
    token_id = approved_token(server, parties, rid)
    assert token_id.startswith("tt:")
    low = parties["tpp_low_key"]
    assert server.quiet("--api-key", low, "token", "cancel", token_id) == "MORE_SIGNATURES_NEEDED"
    # Idempotency key and the reference's customer headers are passed through.
    args = ["token", "cancel", token_id, "--idempotency-key", "cancel-xfer-2", "--customer-ip", "192.0.2.7",
            "--customer-initiated", "true", "--device-id", "device-42"]
    first = server.ok_json("--api-key", parties["tpp_key"], *args)
    assert first["result"]["status"] == "SUCCESS"
    assert server.ok_json("--api-key", parties["tpp_key"], *args) == first
    err = server.error_json("--api-key", parties["tpp_key"], "token", "cancel", token_id, "--customer-ip", "nope")
    assert err["errorCode"] == "INVALID_ARGUMENT"


def test_standing_order_from_json_file(server, parties, tmp_path):
    body = {
        "requestOptions": {"from": {"id": parties["bank"]}},
        "requestPayload": {
            "refId": "ref-so-1", "to": {"id": parties["tpp"]}, "redirectUrl": "https://tpp.example/so",
            "callbackState": "st 1",
            "standingOrderBody": {"amount": "25.00", "currency": "EUR", "frequency": "MNTH",
                                  "instructions": {"transferDestinations": [{"sepa": {"iban": "DE89370400440532013000"}}]}},
        },
    }
    path = tmp_path / "request.json"
    path.write_text(json.dumps(body))
    rid = server.quiet("--api-key", parties["tpp_key"], "request", "create", "--json", path)
    link = server.quiet("--api-key", parties["tpp_key"], "request", "authorize", rid)
    decided = server.ok_json("consent", "approve", link)
    assert decided["tokenId"].startswith("so:")
    assert decided["location"].endswith("&state=st%201")
    # The same body again, from stdin.
    rid2 = server.quiet("--api-key", parties["tpp_key"], "request", "create", "--json", "-", stdin=json.dumps(body))
    assert rid2.startswith("rq:") and rid2 != rid
    # A body the server refuses: its error JSON, exit 1.
    body["requestPayload"]["refId"] = "not valid!"
    path.write_text(json.dumps(body))
    err = server.error_json("--api-key", parties["tpp_key"], "request", "create", "--json", path)
    assert err["errorCode"] == "INVALID_ARGUMENT" and "refId" in err["message"]


def test_standing_order_flags_and_pagination(server, parties):
    ids = []
    for i in range(3):
        rid = server.quiet("--api-key", parties["tpp_key"], "request", "create", "--from", parties["bank"],
                           "--to", parties["tpp"], "--redirect-url", "https://tpp.example/so", "--ref-id", f"ref-pg-{i}",
                           "--standing-order", "9.99", "EUR", "WEEK", "--description", f"order {i}",
                           "--payee-iban", "DE89370400440532013000")
        ids.append(approved_token(server, parties, rid))
    seen, offset = [], None
    while True:
        args = ["--api-key", parties["tpp_key"], "tokens", "list", "--type", "STANDING_ORDER", "--limit", "2"]
        page = server.ok_json(*args, *(["--offset", offset] if offset else []))
        seen += [t["id"] for t in page["tokens"]]
        offset = page["offset"]
        if not offset:
            break
    assert set(ids) <= set(seen) and len(seen) == len(set(seen))
    err = server.error_json("--api-key", parties["tpp_key"], "tokens", "list", "--limit", "500")
    assert err["errorCode"] == "INVALID_ARGUMENT"


def test_access_request_needs_accounts_and_expiry(server, parties):
    rid = access_request(server, parties, "ref-exp-1", "--access", "TRANSACTIONS", "--expires", "1999999999")
    link = server.quiet("--api-key", parties["tpp_key"], "request", "authorize", rid)
    err = server.error_json("consent", "approve", link)  # an HTML error page, reported as JSON
    assert err["httpStatus"] == 400 and "account" in err["message"]
    token_id = server.quiet("consent", "approve", link, "--accounts", "acc-1")
    token = server.ok_json("--api-key", parties["tpp_key"], "token", "get", token_id)["token"]
    assert token["payload"]["expiresAtMs"] == "1999999999000"


def test_issuers(server):
    issuer = server.ok_json("issuer", "create", "ISSUER0042", "Card Issuer")
    assert issuer == {"issuerId": "ISSUER0042", "displayName": "Card Issuer"}
    key = server.quiet("issuer", "api-key", "ISSUER0042", "network", reveals_key=True)
    assert key
    server.api_keys.add(key)
    assert server.error_json("issuer", "create", "SHORT", "X")["errorCode"] == "INVALID_ARGUMENT"
    assert server.error_json("issuer", "api-key", "NOSUCHISSU", "issuer")["errorCode"] == "NOT_FOUND"
