"""tdlib.py — helpers for tokend's black-box tests: start and stop the real
binary, talk to it over HTTP (recording every Token API response for the
contract check), bootstrap members and keys through the admin API, run the
consent flow, and read the store (SQLite with the sqlite3 CLI, PostgreSQL with
psql).

The store under test: TD_E2E_STORE=sqlite (default: a file in the server's
directory) or pg (a database of its own per server directory, created in the
cluster at TD_TEST_PG_URL, which scripts/test.sh starts).

Nothing here knows tokend's internals beyond what a user sees: flags, HTTP,
the files it writes beside its database, and the documented schema."""

import base64
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.parse

import requests

E2E_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.environ.get("TD_SOURCE_DIR") or os.path.abspath(os.path.join(E2E_DIR, "..", ".."))
TOKEND_BIN = os.environ.get("TOKEND_BIN") or os.path.join(REPO, "build", "tokend")
CONTRACT_DIR = os.path.join(REPO, "tests", "contract")

# Generous on purpose: the suite also runs under AddressSanitizer. Timeouts
# only bound a hang; no test passes or fails on how fast tokend is.
HTTP_TIMEOUT = 60
START_TIMEOUT = 60
STOP_TIMEOUT = 20

E2E_STORE = os.environ.get("TD_E2E_STORE", "sqlite")
PG_URL = os.environ.get("TD_TEST_PG_URL", "")
if E2E_STORE not in ("sqlite", "pg") or (E2E_STORE == "pg" and not PG_URL):
    raise RuntimeError("TD_E2E_STORE must be sqlite or pg, and pg needs TD_TEST_PG_URL (scripts/test.sh sets it)")

DEFAULT_SETTINGS = {
    "fault-injection": "true",
    "rate-limit": "100000:100000",
    # Tests send many bad credentials and consent requests from one address,
    # and some open many connections; test_limits.py and test_slow_clients.py
    # test these limits with their own values.
    "admin-rate-limit": "100000:100000",
    "auth-failure-limit": "100000:1",
    "consent-rate-limit": "100000:100000",
    "max-connections-per-ip": "1000",
}

# ---------------------------------------------------------------------------
# Captures: every Token API response, for tests/contract/validate.js
# ---------------------------------------------------------------------------

# The Token API operations tokend routes, as OpenAPI path templates of
# tests/contract/spec/tokenio-openapi.yml (a copy of ../shared/ref). Captured: any response on these paths.
# Not captured: /admin, /consent, /healthz, /readyz, /metrics (not in the reference).
TOKEN_API_TEMPLATES = [
    "/tokens",
    "/tokens/{tokenId}",
    "/tokens/{tokenId}/cancel",
    "/token-requests",
    "/token-requests/{requestId}",
    "/token-requests/{tokenRequestId}/result",
    "/token-requests/{tokenRequestId}/authorization",
    "/member/{memberId}/keys",
    "/member/{memberId}/keys/{keyId}",
    # the reference's operations tokend answers with 501
    "/transfers",
    "/transfers/{transferId}",
    "/webhook/config",
    "/banks",
    "/accounts",
    "/refunds",
    "/v2/banks",
    "/member/sub-tpps",
    "/virtual-accounts",
]

SPEC_PATH = os.path.join(REPO, "tests", "contract", "spec", "tokenio-openapi.yml")
SPEC_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def spec_operations(path=SPEC_PATH):
    """Every (METHOD, path template) of the reference, in file order. Read from the
    YAML's layout (paths at two spaces, methods at four, as the published file
    has them) so that the walk needs no YAML library; test_errors.py checks the
    count against the file's own operationIds."""
    ops, tmpl, in_paths = [], None, False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.startswith(" "):
                in_paths = line.rstrip() == "paths:"
                continue
            if not in_paths:
                continue
            m = re.fullmatch(r"  (/\S*):\s*", line)
            if m:
                tmpl = m.group(1)
                continue
            m = re.fullmatch(r"    ([a-z]+):\s*", line)
            if m and tmpl and m.group(1) in SPEC_METHODS:
                ops.append((m.group(1).upper(), tmpl))
    return ops


# The rest of the reference's paths: tokend answers them 501, and those answers
# are checked against the reference too.
TOKEN_API_TEMPLATES += [t for t in dict.fromkeys(t for _, t in spec_operations()) if t not in TOKEN_API_TEMPLATES]

_capture_lock = threading.Lock()
CAPTURE_PATH = None  # set by conftest.py (pytest_configure)


def path_template(path):
    """The OpenAPI template matching a concrete request path, or None."""
    path = urllib.parse.urlsplit(path).path
    segs = path.split("/")
    for tmpl in TOKEN_API_TEMPLATES:
        tsegs = tmpl.split("/")
        if len(tsegs) != len(segs):
            continue
        if all(t == s or (t.startswith("{") and t.endswith("}") and s) for t, s in zip(tsegs, segs)):
            return tmpl
    return None


def record_capture(method, path, resp, exclude=None):
    """Appends one response to the capture file (JSON Lines). `exclude` names
    the documented spec defect that keeps this response from validating; the
    contract test lists such captures instead of validating them."""
    if CAPTURE_PATH is None:
        return
    tmpl = path_template(path)
    if tmpl is None:
        return
    body = None
    if resp.content:
        try:
            body = json.loads(resp.content.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            # Not JSON: record the text so that validation fails visibly.
            body = resp.content.decode("utf-8", "replace")
    rec = {"method": method.lower(), "path": tmpl, "status": resp.status_code, "body": body}
    if exclude:
        rec["exclude"] = exclude
    line = json.dumps(rec, ensure_ascii=False, separators=(",", ":"))
    with _capture_lock:
        with open(CAPTURE_PATH, "a", encoding="utf-8") as f:
            f.write(line + "\n")


# ---------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------

_servers = []  # every Server started in this session (for log tails on failure)


def free_port(host="127.0.0.1"):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    """One real tokend process on a free loopback port with its own store dir.

    settings: {"commit-timeout": "200", ...} passed as --flags (None drops a
    default); env: extra environment, e.g. {"TOKEND_RATE_LIMIT": "2:2"};
    host: the loopback address to listen on ("::1" for IPv6); tls_ca: for a
    server started with --tls-cert, the CA file its certificate is checked
    against (the URL is then https://)."""

    def __init__(self, workdir, name="tokend", settings=None, env=None, host="127.0.0.1", tls_ca=None):
        self.dir = workdir
        self.host = host
        self.tls_ca = tls_ca
        os.makedirs(self.dir, exist_ok=True)
        self.name = name
        self.settings = dict(DEFAULT_SETTINGS)
        if E2E_STORE == "pg":  # generated keys go where they go beside a SQLite file
            self.settings["master-key-file"] = os.path.join(self.dir, "master.key")
            self.settings["admin-key-file"] = os.path.join(self.dir, "admin.key")
        for k, v in (settings or {}).items():
            if v is None:
                self.settings.pop(k, None)
            else:
                self.settings[k] = str(v)
        self.extra_env = dict(env or {})
        # The store: a SQLite file, or a PostgreSQL URL (kept in the directory,
        # so that a server restarted on this directory finds the same database).
        self.db_path = os.path.join(self.dir, "tokend.db") if E2E_STORE == "sqlite" else pg_database(self.dir)
        self.store_url = f"sqlite:{self.db_path}" if E2E_STORE == "sqlite" else self.db_path
        self.log_path = os.path.join(self.dir, f"{name}.log")
        self.proc = None
        self.port = None
        self.returncode = None
        self.killed = False
        self.exit_checked = False  # a test checked this process's exit itself
        self.stopped_at = None
        self.starts = 0

    # -- lifecycle --

    def _env(self):
        # A developer's TOKEND_* settings must not leak into the tests.
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOKEND_")}
        env.update(self.extra_env)
        return env

    def start(self):
        last_err = ""
        for _ in range(5):
            self.port = free_port(self.host)
            args = [TOKEND_BIN, "serve", "--listen", self.listen, "--store", self.store_url]
            for k, v in self.settings.items():
                args += [f"--{k}", v]
            log = open(self.log_path, "ab")
            log.write(f"=== start {' '.join(args)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=self._env(), cwd=self.dir)
            log.close()
            self.returncode = None
            self.killed = False
            self.stopped_at = None
            self.starts += 1
            if self not in _servers:
                _servers.append(self)
            ok, last_err = self._wait_healthy()
            if ok:
                return self
            if self.proc.poll() is None:
                self.kill()
            if "cannot listen" not in last_err:
                break
        raise RuntimeError(f"tokend did not become healthy: {last_err}\n--- log tail ---\n{self.tail()}")

    def _wait_healthy(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                self.returncode = rc
                self.stopped_at = time.time()
                return False, f"exited with {rc}: {self.tail(5)}"
            try:
                r = requests.get(self.url + "/healthz", timeout=5, verify=self.tls_ca or True)
                if r.status_code == 200:
                    return True, ""
            except requests.RequestException:
                pass
            time.sleep(0.05)
        return False, "no 200 from /healthz in time"

    @property
    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM by pid, then wait; returns the exit code (None if it did not exit)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return None
        self.returncode = self.proc.returncode
        self.stopped_at = time.time()
        return self.returncode

    def kill(self):
        """SIGKILL by pid (a crash), then wait."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(STOP_TIMEOUT)
        self.killed = True
        self.returncode = self.proc.returncode if self.proc else None
        self.stopped_at = time.time()

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def wait(self, timeout):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self.returncode = self.proc.returncode
        self.stopped_at = time.time()
        return self.returncode

    # -- access --

    @property
    def listen(self):
        """The --listen value: 127.0.0.1:PORT, or [::1]:PORT for IPv6."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def url(self):
        return f"{'https' if self.tls_ca else 'http'}://{self.listen}"

    @property
    def admin_key(self):
        if "TOKEND_ADMIN_KEY" in self.extra_env:
            return self.extra_env["TOKEND_ADMIN_KEY"]
        with open(os.path.join(self.dir, "admin.key")) as f:
            return f.read().strip()

    def admin(self):
        return Client(self, headers={"Authorization": "Bearer " + self.admin_key}, capture=False)

    def anon(self, capture=True):
        return Client(self, capture=capture)

    def set_fault(self, fault):
        r = self.admin().post("/admin/v1/faults", json={"store": fault})
        assert r.status_code == 200, (r.status_code, r.text)

    # -- logs --

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_records(self):
        """The JSON log lines (non-JSON lines, e.g. sanitizer reports, are skipped)."""
        out = []
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def tail(self, n=60):
        return "\n".join(self.log_text().splitlines()[-n:])


def servers_for_report(since):
    """Servers worth showing after a failure: running, or stopped since `since`."""
    return [s for s in _servers if s.stopped_at is None or s.stopped_at >= since]


# ---------------------------------------------------------------------------
# HTTP clients
# ---------------------------------------------------------------------------


class Client:
    """A keep-alive HTTP client for one server and one credential. Every Token
    API response it receives is recorded for the contract check unless
    capture=False (admin bootstrap) or exclude names a documented spec defect."""

    def __init__(self, server, headers=None, capture=True, exclude=None):
        self.server = server
        self.session = requests.Session()
        self.headers = dict(headers or {})
        self.capture = capture
        self.exclude = exclude

    def excluding(self, reason):
        """The same credential, whose captures are marked excluded (a spec defect)."""
        return Client(self.server, self.headers, self.capture, reason)

    def request(self, method, path, *, json=None, data=None, headers=None, params=None, timeout=HTTP_TIMEOUT,
                allow_redirects=False):
        h = dict(self.headers)
        h.update(headers or {})
        url = path if path.startswith("http") else self.server.url + path
        # verify per request: a Session's own would lose to $REQUESTS_CA_BUNDLE.
        r = self.session.request(method, url, json=json, data=data, headers=h, params=params, timeout=timeout,
                                 allow_redirects=allow_redirects, verify=self.server.tls_ca or True)
        if self.capture:
            record_capture(method, urllib.parse.urlsplit(r.request.url).path, r, self.exclude)
        return r

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def close(self):
        self.session.close()


def basic_auth(member_id, api_key):
    return "Basic " + base64.b64encode(f"{member_id}:{api_key}".encode()).decode()


class Member:
    """A member with API keys by level ({"LOW": "tk_...", ...})."""

    def __init__(self, server, member_id, name):
        self.server = server
        self.id = member_id
        self.name = name
        self.keys = {}

    def add_key(self, level):
        r = self.server.admin().post(f"/admin/v1/members/{self.id}/api-keys", json={"level": level})
        assert r.status_code == 201, (r.status_code, r.text)
        key = r.json()["apiKey"]
        self.keys.setdefault(level, key)
        return key

    def client(self, level="STANDARD", basic=False, server=None):
        key = self.keys[level]
        auth = basic_auth(self.id, key) if basic else "Bearer " + key
        return Client(server or self.server, headers={"Authorization": auth})


def new_member(server, name="member", levels=("LOW", "STANDARD", "PRIVILEGED")):
    """POST /admin/v1/members {displayName} -> 201 {memberId}, then one API key per level."""
    r = server.admin().post("/admin/v1/members", json={"displayName": name})
    assert r.status_code == 201, (r.status_code, r.text)
    member_id = r.json()["memberId"]
    assert member_id.startswith("m:"), member_id
    m = Member(server, member_id, name)
    for level in levels:
        m.add_key(level)
    return m


# ---------------------------------------------------------------------------
# Token requests and the consent flow
# ---------------------------------------------------------------------------

DESTINATION_ALTERNATIVES = ["sepa", "sepaInstant", "fasterPayments", "plusgiro", "bankgiro", "elixir",
                            "euDomesticNonEuro", "euDomesticNonEuroInstant", "virtualAccount"]


def spec_valid_destination(account_id=None, member_id=None, iban="DE89370400440532013000"):
    """A TransferDestination the reference accepts (tests/contract/README.md,
    spec defect 2): it `required`s all ten alternatives while its oneOf wants
    exactly one, so nine are null and one is real — `token` {accountId} when
    account_id is given (it is a oneOf branch but not required), else `sepa`."""
    d = {k: None for k in DESTINATION_ALTERNATIVES}
    d["customerData"] = {"legalNames": ["Jane Doe"]}
    if account_id:
        d["token"] = {"accountId": account_id, "memberId": member_id or "m:payee:1"}
    else:
        d["sepa"] = {"iban": iban, "bic": "COBADEFFXXX"}
    return d


def access_body(resources=("ACCOUNTS", "BALANCES"), days=None):
    b = {"resourceTypeList": {"resources": list(resources)}}
    if days is not None:
        b["transactionHistoryDays"] = days
    return b


def transfer_body(destination_account=None, lifetime="100.00", amount="25.00", currency="EUR"):
    return {"currency": currency, "lifetimeAmount": lifetime, "amount": amount,
            "remittanceReference": "invoice 42",
            "instructions": {"transferDestinations": [spec_valid_destination(destination_account)]}}


def standing_order_body(destination_account=None, amount="10.00"):
    return {"amount": amount, "currency": "EUR", "frequency": "MNTH", "startDate": "2030-01-01",
            "endDate": "2030-12-31", "remittanceReference": "rent",
            "instructions": {"transferDestinations": [spec_valid_destination(destination_account)]}}


BODY_KEYS = {"access": "accessBody", "transfer": "transferBody", "standing_order": "standingOrderBody"}
TOKEN_BODY_KEYS = {"access": "access", "transfer": "transfer", "standing_order": "standingOrder"}
TOKEN_PREFIX = {"access": "ta:", "transfer": "tt:", "standing_order": "so:"}


def request_body(tpp_id, bank_id, kind="access", body=None, ref_id="ref-1", redirect="https://tpp.example/cb", **payload):
    """A POST /token-requests body; payload kwargs go into requestPayload."""
    if body is None:
        body = {"access": access_body, "transfer": transfer_body, "standing_order": standing_order_body}[kind]()
    rp = {"refId": ref_id, "to": {"id": tpp_id}, "redirectUrl": redirect, BODY_KEYS[kind]: body}
    rp.update(payload)
    return {"requestOptions": {"from": {"id": bank_id}}, "requestPayload": rp}


def store_request(client, body):
    r = client.post("/token-requests", json=body)
    assert r.status_code == 200, (r.status_code, r.text)
    rid = r.json()["tokenRequest"]["id"]
    assert rid.startswith("rq:"), rid
    return rid


def authorize(client, request_id):
    r = client.post(f"/token-requests/{request_id}/authorization")
    assert r.status_code == 200, (r.status_code, r.text)
    url = r.json()["redirectUrl"]
    assert "/consent/" in url, url
    return url


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def decide(consent_url, decision="approve", accounts=("a:1", "a:2"), session=None):
    form = f"decision={decision}"
    if accounts:
        form += "&accounts=" + urllib.parse.quote(",".join(accounts), safe=":,")
    s = session or requests
    return s.post(consent_url, data=form, headers=FORM, allow_redirects=False, timeout=HTTP_TIMEOUT)


def query_params(url):
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


class Flow:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def consent_flow(tpp_client, tpp, bank, kind="access", decision="approve", accounts=("a:1", "a:2"), body=None,
                 view_page=True, **payload):
    """The whole consent flow, asserting each step:
    TPP POST /token-requests -> POST .../authorization -> (user) GET the consent
    page -> POST decision -> 303 to redirectUrl?tokenId=... -> TPP GET .../result."""
    req = request_body(tpp.id, bank.id, kind=kind, body=body, **payload)
    rid = store_request(tpp_client, req)
    url = authorize(tpp_client, rid)
    if view_page:
        page = requests.get(url, timeout=HTTP_TIMEOUT)
        assert page.status_code == 200, (page.status_code, page.text)
        assert page.headers["Content-Type"].startswith("text/html"), page.headers
        assert 'name="decision"' in page.text and "approve" in page.text and "reject" in page.text
    if kind != "access":
        accounts = ()
    r = decide(url, decision, accounts)
    assert r.status_code == 303, (r.status_code, r.text)
    location = r.headers["Location"]
    redirect = req["requestPayload"]["redirectUrl"]
    assert location.startswith(redirect + "?"), (location, redirect)
    q = query_params(location)
    res = tpp_client.get(f"/token-requests/{rid}/result")
    assert res.status_code == 200, (res.status_code, res.text)
    result = res.json()
    token_id = None
    if decision == "approve":
        token_id = q.get("tokenId")
        assert token_id and token_id.startswith(TOKEN_PREFIX[kind]), location
        assert result["status"] == "PROCESSED", result
        assert result["tokenId"] == token_id, result
        assert set(result["signature"]) == {"keyId", "memberId", "signature"}, result
        assert result["signature"]["memberId"] == bank.id, result
    else:
        assert q.get("error") == "access_denied", location
        assert "tokenId" not in q, location
        assert result == {"status": "REJECTED"}, result
    if "callbackState" in payload:
        assert q.get("state") == payload["callbackState"], location
    return Flow(request_id=rid, token_id=token_id, location=location, result=result, consent_url=url, request=req)


def get_token(client, token_id):
    r = client.get(f"/tokens/{token_id}")
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()["token"]


def signatures(token, action):
    return [s["signature"] for s in token.get("payloadSignatures", []) if s["action"] == action]


def member_keys(client, member_id):
    """GET /member/{id}/keys -> {level: key object}; shape [{"key": [...]}]."""
    r = client.get(f"/member/{member_id}/keys")
    assert r.status_code == 200, (r.status_code, r.text)
    body = r.json()
    assert isinstance(body, list) and len(body) == 1 and set(body[0]) == {"key"}, body
    return body[0]["key"]


# ---------------------------------------------------------------------------
# Error shape
# ---------------------------------------------------------------------------

PAYMENT_ID_STATUSES = (404, 429, 501, 503, 504)


def assert_tokenio_error(r, status, error_code=None, payment_id=None):
    """The Token.io error shape: {"error":{errorCode, message, tokenTraceId
    [, paymentId]}}, the trace id also in the Token-Trace-Id header; paymentId
    present on 404/429/501/503/504 (and equal to payment_id when given)."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert isinstance(err.get("errorCode"), str) and err["errorCode"], body
    assert isinstance(err.get("message"), str) and err["message"], body
    trace = r.headers.get("Token-Trace-Id")
    assert trace and err.get("tokenTraceId") == trace, (trace, body)
    if error_code is not None:
        assert err["errorCode"] == error_code, body
    if status in PAYMENT_ID_STATUSES:
        assert isinstance(err.get("paymentId"), str), body
        if payment_id is not None:
            assert err["paymentId"] == payment_id, body
    allowed = {"errorCode", "message", "tokenTraceId", "paymentId"}
    assert set(err) <= allowed, body
    assert "token-external-error" not in {k.lower() for k in r.headers}, r.headers
    return err


# ---------------------------------------------------------------------------
# The store, read with the sqlite3 CLI
# ---------------------------------------------------------------------------


_pg_databases = [0]

# SQLite's hex(), which the snapshot queries use, for PostgreSQL's bytea.
PG_HEX = "CREATE FUNCTION hex(bytea) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT upper(encode($1, 'hex')) $$"


def write_sql(db_path, statement):
    """Changes a stopped server's store by hand (as an operator or an older
    tokend would): a SQLite file through the sqlite3 CLI, or a PostgreSQL URL."""
    if db_path.startswith("postgres"):
        psql(db_path, statement)
    else:
        subprocess.run(["sqlite3", db_path, statement], check=True, timeout=60)


def psql(url, command):
    p = subprocess.run(["psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", command],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout


def pg_database(workdir):
    """The PostgreSQL database of a server directory: created on first use."""
    marker = os.path.join(workdir, "pg_url")
    if os.path.exists(marker):
        return open(marker).read().strip()
    _pg_databases[0] += 1
    name = f"td_e2e_{os.getpid()}_{_pg_databases[0]}"
    psql(PG_URL, f"CREATE DATABASE {name}")
    url = PG_URL.rsplit("/", 1)[0] + "/" + name
    psql(url, PG_HEX)
    with open(marker, "w") as f:
        f.write(url)
    return url


def sql(db_path, query):
    """Rows of a read-only query, as dicts: db_path is a server's db_path, a
    SQLite file (sqlite3 -json) or a PostgreSQL URL (json_agg through psql)."""
    if db_path.startswith("postgres"):
        out = psql(db_path, f"SELECT coalesce(json_agg(q), '[]') FROM ({query}) AS q").strip()
        return json.loads(out)
    p = subprocess.run(["sqlite3", "-readonly", "-json", db_path, query], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out = p.stdout.strip()
    return json.loads(out) if out else []


SNAPSHOT_QUERIES = {
    "members": "SELECT * FROM members ORDER BY id",
    "member_keys": "SELECT member_id, key_id, level, algorithm, hex(public_key) AS pk, hex(sealed_secret) AS sealed, "
                   "created_ms, expires_ms FROM member_keys ORDER BY member_id, key_id",
    "credentials": "SELECT * FROM credentials ORDER BY hash",
    "issuers": "SELECT * FROM issuers ORDER BY id",
    "token_requests": "SELECT * FROM token_requests ORDER BY id",
    "tokens": "SELECT * FROM tokens ORDER BY id",
    "token_events": "SELECT * FROM token_events ORDER BY token_id, seq",
    "idempotency": "SELECT * FROM idempotency ORDER BY scope, key",
}


def sql_many(db_path, queries):
    """{name: rows} for {name: query}; on PostgreSQL in one psql call (a
    process and a login per query made snapshots slow enough to upset tests
    that race a short TTL)."""
    if not db_path.startswith("postgres"):
        return {name: sql(db_path, q) for name, q in queries.items()}
    parts = ", ".join(f"'{name}', (SELECT coalesce(json_agg(q), '[]') FROM ({q}) AS q)" for name, q in queries.items())
    return json.loads(psql(db_path, f"SELECT json_build_object({parts})").strip())


def db_snapshot(db_path):
    """Every row of every table tokend writes: equal snapshots = nothing changed."""
    return sql_many(db_path, SNAPSHOT_QUERIES)


def assert_unchanged(before, after):
    for table in before:
        assert before[table] == after[table], f"table {table} changed"


# ---------------------------------------------------------------------------
# Node.js
# ---------------------------------------------------------------------------


def node(script_path, payload, timeout=120):
    """Runs `node script` with JSON on stdin; returns its JSON stdout."""
    p = subprocess.run(["node", script_path], input=json.dumps(payload), capture_output=True, text=True,
                       timeout=timeout)
    assert p.returncode == 0, f"node {script_path} failed ({p.returncode}): {p.stderr}\n{p.stdout}"
    return json.loads(p.stdout)


# ---------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------


def parse_metrics(text):
    """Prometheus text -> list of (name, {labels}, value)."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        labels = {}
        if "{" in name_labels:
            name, _, rest = name_labels.partition("{")
            rest = rest.rstrip("}")
            for part in _split_labels(rest):
                k, _, v = part.partition("=")
                labels[k] = json.loads(v)
        else:
            name = name_labels
        out.append((name, labels, float(value)))
    return out


def _split_labels(s):
    parts, cur, in_q, esc = [], "", False, False
    for ch in s:
        if esc:
            cur += ch
            esc = False
        elif ch == "\\":
            cur += ch
            esc = True
        elif ch == '"':
            cur += ch
            in_q = not in_q
        elif ch == "," and not in_q:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        parts.append(cur)
    return parts


def wait_until(pred, timeout=30, interval=0.05, what="condition"):
    """Polls pred() until it is truthy; bounded only to catch a hang."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------------------
# Raw HTTP over a socket (for requests no HTTP library will send)
# ---------------------------------------------------------------------------


class RawResponse:
    def __init__(self, raw):
        self.raw = raw
        self.status = None
        self.headers = {}
        self.body = b""
        head, sep, rest = raw.partition(b"\r\n\r\n")
        if not sep:
            return
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) >= 2 and parts[0].startswith("HTTP/") and parts[1].isdigit():
            self.status = int(parts[1])
        for line in lines[1:]:
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        n = int(self.headers.get("content-length", "0") or 0)
        self.body = rest[:n]
        self.rest = rest[n:]

    def json(self):
        return json.loads(self.body.decode("utf-8"))


def raw_exchange(server, data, shut_write=False, timeout=HTTP_TIMEOUT, read_all=False):
    """Sends bytes; returns the first response (or None if the server closed
    without one). With read_all, reads until the server closes the connection."""
    s = socket.create_connection((server.host, server.port), timeout=timeout)
    try:
        s.sendall(data)
        if shut_write:
            s.shutdown(socket.SHUT_WR)
        buf = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            buf += chunk
            if not read_all:
                r = RawResponse(buf)
                if r.status is not None and len(r.body) >= int(r.headers.get("content-length", "0") or 0):
                    break
        return RawResponse(buf) if buf else None
    finally:
        s.close()


def http_request_bytes(method, path, headers, body=b""):
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
