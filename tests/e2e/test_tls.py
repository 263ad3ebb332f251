"""test_tls.py — HTTPS and mutual TLS (issue 12 §5; docs/operations.md, "TLS").

The certificates are made here, at test time, with the openssl CLI: a CA, two
server certificates (the second for a reload), two client certificates of that
CA and one of another CA.

1. HTTPS answers with TLS 1.2 and 1.3 (AEAD ciphers only) and refuses 1.0 and
   1.1; plain HTTP to the TLS port is dropped without an HTTP answer.
2. With --tls-client-ca, the network, issuer and classic faces refuse requests
   without a valid client certificate (401 in each face's shape); the Token API
   and /healthz do not ask for one (by default).
3. An API key bound to certificate A (at creation, or later through the admin
   API) is refused with certificate B or none, on any face; rebinding and
   unbinding apply to the next request.
4. SIGHUP with a new certificate: a new connection sees it while an open
   keep-alive connection keeps working on the old one; a reload with a key
   that does not match keeps the certificate in use.
5. Outbound: delivery to a real TLS receiver that requires a client
   certificate, with the receiver's CA and public-key pin: the right pin
   delivers, a wrong one fails and is retried."""

import hashlib
import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest
import requests

import tdlib
from conftest import (DELIVERY_SETTINGS, NetIssuer, assert_classic_error, assert_d1_error, read_outbox, set_delivery,
                      wait_delivered)

pytestmark = pytest.mark.skipif(not shutil.which("openssl"), reason="the openssl CLI makes the test certificates")


# ---------------------------------------------------------------------------
# Certificates, made with the openssl CLI
# ---------------------------------------------------------------------------

def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


class Pki:
    """A CA and certificates it signed, as PEM files in one directory."""

    def __init__(self, workdir):
        self.dir = workdir

    def path(self, name):
        return os.path.join(self.dir, name)

    def make_ca(self, name):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=self.dir)
        return self.path(f"{name}.pem")

    def make_cert(self, name, ca, usage):
        """A certificate for name signed by ca: usage "server" (for 127.0.0.1) or "client"."""
        ext = ("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n" if usage == "server"
               else "extendedKeyUsage=clientAuth\n")
        with open(self.path(f"{name}.ext"), "w") as f:
            f.write(ext)
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=self.dir)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
                "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=self.dir)
        return self.pair(name)

    def pair(self, name):
        return (self.path(f"{name}.pem"), self.path(f"{name}.key"))

    def der(self, name):
        with open(self.path(f"{name}.pem")) as f:
            return ssl.PEM_cert_to_DER_cert(f.read())

    def sha256(self, name):
        return hashlib.sha256(self.der(name)).hexdigest()

    def openssl_fingerprint(self, name):
        """As `openssl x509 -fingerprint -sha256` prints it: AB:CD:..."""
        out = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", self.path(f"{name}.pem")],
                             check=True, capture_output=True, text=True).stdout
        return out.strip().split("=", 1)[1]

    def pin(self, name):
        """curl's pinned public key of name's certificate: sha256//<base64 of its SubjectPublicKeyInfo>."""
        out = subprocess.run(f"openssl x509 -in {name}.pem -pubkey -noout | openssl pkey -pubin -outform der "
                             "| openssl dgst -sha256 -binary | base64", shell=True, cwd=self.dir, check=True,
                             capture_output=True, text=True).stdout
        return "sha256//" + out.strip()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = Pki(str(tmp_path_factory.mktemp("pki")))
    p.make_ca("ca")
    p.make_ca("rogue-ca")
    p.make_cert("server", "ca", "server")
    p.make_cert("server2", "ca", "server")
    p.make_cert("client-a", "ca", "client")
    p.make_cert("client-b", "ca", "client")
    p.make_cert("client-rogue", "rogue-ca", "client")
    return p


def tls_settings(pki, workdir=None, client_ca=True, **more):
    """Settings for an HTTPS tokend; the certificate files are copied into
    workdir when given (so that a test can replace them before a SIGHUP)."""
    cert, key = pki.pair("server")
    if workdir:
        os.makedirs(workdir, exist_ok=True)
        cert, key = shutil.copy(cert, os.path.join(workdir, "tls.pem")), shutil.copy(key, os.path.join(workdir, "tls.key"))
    s = {"tls-cert": cert, "tls-key": key}
    if client_ca:
        s["tls-client-ca"] = pki.path("ca.pem")
    s.update(more)
    return s


def with_cert(client, pki, name):
    """client, presenting name's certificate from now on (None: none)."""
    client.session.close()
    client.session.cert = pki.pair(name) if name else None
    return client


def tls_context(pki, minimum=None, maximum=None, cert=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki.path("ca.pem"))
    if minimum is not None and minimum < ssl.TLSVersion.TLSv1_2:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # lets this OpenSSL offer TLS 1.0/1.1 at all
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    if cert:
        ctx.load_cert_chain(*pki.pair(cert))
    return ctx


def handshake(server, ctx):
    """(version, cipher name, the server's certificate as DER) of a new TLS connection."""
    with socket.create_connection((server.host, server.port), timeout=30) as raw:
        with ctx.wrap_socket(raw, server_hostname=server.host) as s:
            return s.version(), s.cipher()[0], s.getpeercert(binary_form=True)


# ---------------------------------------------------------------------------
# 1. Protocol versions, ciphers, plain HTTP
# ---------------------------------------------------------------------------

def test_https_versions_and_plain_http(tokend_factory, pki):
    srv = tokend_factory.start(settings=tls_settings(pki, client_ca=False), tls_ca=pki.path("ca.pem"))
    assert srv.anon(capture=False).get("/healthz").json() == {"status": "ok"}
    assert requests.get(srv.url + "/healthz", verify=pki.path("ca.pem"), timeout=30).status_code == 200

    for version, name in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")):
        got, cipher, der = handshake(srv, tls_context(pki, version, version))
        assert got == name
        assert "GCM" in cipher or "CHACHA20" in cipher, cipher  # AEAD only
        assert der == pki.der("server")
    # TLS 1.2 without forward secrecy (static RSA key exchange) or with CBC: refused
    for weak in ("AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-SHA"):
        ctx = tls_context(pki, ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2)
        ctx.set_ciphers(weak)
        with pytest.raises((ssl.SSLError, ConnectionError)):
            handshake(srv, ctx)

    for version in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        with pytest.raises((ssl.SSLError, ConnectionError)) as err:
            handshake(srv, tls_context(pki, version, version))
        # the server refused: the client did offer the version
        assert "NO_PROTOCOLS_AVAILABLE" not in str(err.value).upper(), err.value

    # Plain HTTP to the TLS port: no HTTP answer, the connection ends.
    with socket.create_connection((srv.host, srv.port), timeout=30) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        got = b""
        try:
            while chunk := s.recv(4096):
                got += chunk
        except ConnectionResetError:
            pass
    assert not got.startswith(b"HTTP/"), got
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://{srv.listen}/healthz", timeout=30)
    assert srv.alive and srv.anon(capture=False).get("/healthz").status_code == 200


# ---------------------------------------------------------------------------
# 2. Client certificates on the faces that require them
# ---------------------------------------------------------------------------

def test_client_certificate_required_on_network_and_issuer_faces(tokend_factory, pki):
    srv = tokend_factory.start(settings=tls_settings(pki), tls_ca=pki.path("ca.pem"))
    iss = NetIssuer(srv)  # the admin face needs no client certificate by default

    # no certificate: 401 in each face's shape, before the key is looked at
    body = assert_d1_error(iss.net.post("/network/v1/tokenizations", json={}), 401, "UNAUTHENTICATED")
    assert "client certificate" in body["error"], body
    assert_d1_error(iss.iss.get(iss.path("/cards/nope")), 401, "UNAUTHENTICATED")
    r = iss.iss.post("/igwapi/v2.0/getCardInfo", json={"issuerId": iss.id, "cardId": "nope"})
    assert r.status_code == 401 and r.json()["responseCode"] == 113, r.text
    # a certificate of another CA: refused the same way
    body = assert_d1_error(with_cert(iss.net, pki, "client-rogue").post("/network/v1/tokenizations", json={}), 401,
                           "UNAUTHENTICATED")
    assert "not valid" in body["error"], body

    # with a valid certificate the requests go through
    with_cert(iss.iss, pki, "client-a")
    with_cert(iss.net, pki, "client-a")
    card = iss.register_card()
    dc = iss.green(card)
    assert iss.iss.get(iss.path(f"/digitalCards/{dc}")).status_code == 200
    assert_d1_error(iss.net.post("/network/v1/tokenizations", json={}), 400)  # past authentication
    r = iss.iss.post("/igwapi/v2.0/getCardInfo", json={"issuerId": iss.id, "cardId": "nope"})
    assert r.status_code == 400, r.text  # past authentication too: classic's 400 with a responseCode
    assert r.json()["responseCode"] != 113, r.text

    # the Token API and the operations endpoints do not ask for one by default
    m = tdlib.new_member(srv, "tls-member")
    assert m.client().get("/tokens", params={"page.limit": "1"}).status_code == 200
    assert srv.anon(capture=False).get("/healthz").status_code == 200


def test_client_faces_setting_moves_the_requirement(tokend_factory, pki):
    srv = tokend_factory.start(settings=tls_settings(pki, **{"tls-client-faces": "token"}), tls_ca=pki.path("ca.pem"))
    iss = NetIssuer(srv)
    m = tdlib.new_member(srv, "tls-member")
    c = m.client()
    tdlib.assert_tokenio_error(c.get("/tokens", params={"page.limit": "1"}), 401, "UNAUTHENTICATED")
    assert with_cert(c, pki, "client-b").get("/tokens", params={"page.limit": "1"}).status_code == 200
    iss.register_card()  # the issuer face no longer requires one


# ---------------------------------------------------------------------------
# 3. API keys bound to a certificate
# ---------------------------------------------------------------------------

def new_key(srv, issuer_id, role, **body):
    r = srv.admin().post(f"/admin/v1/issuers/{issuer_id}/api-keys", json=dict(role=role, **body))
    assert r.status_code == 201, r.text
    return r.json()


def bind(srv, path, key, fingerprint, expect=200):
    r = srv.admin().post(path, json={"apiKey": key, "certFingerprint": fingerprint})
    assert r.status_code == expect, r.text
    return r.json()


def test_bound_api_key_needs_its_certificate(tokend_factory, pki):
    srv = tokend_factory.start(settings=tls_settings(pki), tls_ca=pki.path("ca.pem"))
    iss = NetIssuer(srv)
    # bound at creation, in openssl's notation: stored and shown as plain hex
    made = new_key(srv, iss.id, "network", certFingerprint=pki.openssl_fingerprint("client-a"))
    assert made["certFingerprint"] == pki.sha256("client-a"), made
    net = tdlib.Client(srv, headers={"Authorization": "Bearer " + made["apiKey"]}, capture=False)

    def tokenize(cert):
        return with_cert(net, pki, cert).post("/network/v1/tokenizations", json={})

    assert_d1_error(tokenize("client-a"), 400)  # past authentication
    body = assert_d1_error(tokenize("client-b"), 401, "UNAUTHENTICATED")
    assert "bound to another client certificate" in body["error"], body
    assert made["apiKey"] not in json.dumps(body)

    # rebinding to B applies to the very next request
    bind_path = f"/admin/v1/issuers/{iss.id}/api-keys:bind"
    assert bind(srv, bind_path, made["apiKey"], pki.sha256("client-b")) == {"certFingerprint": pki.sha256("client-b")}
    assert_d1_error(tokenize("client-b"), 400)
    assert_d1_error(tokenize("client-a"), 401, "UNAUTHENTICATED")
    # unbound: any valid certificate the face requires will do
    assert bind(srv, bind_path, made["apiKey"], None) == {"certFingerprint": None}
    assert_d1_error(tokenize("client-a"), 400)

    # refusals: another issuer's key, an unknown key, a malformed fingerprint
    other = NetIssuer(srv)
    tdlib.assert_tokenio_error(srv.admin().post(f"/admin/v1/issuers/{other.id}/api-keys:bind", json={
        "apiKey": made["apiKey"], "certFingerprint": pki.sha256("client-a")}), 404, "NOT_FOUND")
    tdlib.assert_tokenio_error(srv.admin().post(bind_path, json={
        "apiKey": "tk_unknown", "certFingerprint": pki.sha256("client-a")}), 404, "NOT_FOUND")
    for bad in ("abc", "sha256//x", pki.sha256("client-a") + "00", 42):
        r = srv.admin().post(bind_path, json={"apiKey": made["apiKey"], "certFingerprint": bad})
        tdlib.assert_tokenio_error(r, 400, "INVALID_ARGUMENT")
        assert made["apiKey"] not in r.text
    tdlib.assert_tokenio_error(srv.admin().post(bind_path, json={"apiKey": made["apiKey"]}), 400, "INVALID_ARGUMENT")
    tdlib.assert_tokenio_error(srv.admin().post(f"/admin/v1/issuers/{iss.id}/api-keys", json={
        "role": "network", "certFingerprint": None}), 400, "INVALID_ARGUMENT")


def test_bound_member_key_on_a_face_without_the_requirement(tokend_factory, pki):
    """The binding holds where the face itself asks for no certificate (the
    Token API by default), and the bound key survives a restart (stored)."""
    srv = tokend_factory.start(settings=tls_settings(pki), tls_ca=pki.path("ca.pem"))
    m = tdlib.new_member(srv, "bound-member")
    r = srv.admin().post(f"/admin/v1/members/{m.id}/api-keys", json={"level": "STANDARD"})
    key = r.json()["apiKey"]
    bind(srv, f"/admin/v1/members/{m.id}/api-keys:bind", key, pki.sha256("client-a"))
    c = tdlib.Client(srv, headers={"Authorization": "Bearer " + key}, capture=False)
    r = c.get("/tokens", params={"page.limit": "1"})
    tdlib.assert_tokenio_error(r, 401, "UNAUTHENTICATED")
    assert "bound to a client certificate: present it" in r.json()["error"]["message"]
    assert key not in r.text
    assert with_cert(c, pki, "client-a").get("/tokens", params={"page.limit": "1"}).status_code == 200
    assert srv.stop() == 0
    srv2 = tokend_factory.restart(srv)
    c2 = tdlib.Client(srv2, headers={"Authorization": "Bearer " + key}, capture=False)
    tdlib.assert_tokenio_error(with_cert(c2, pki, "client-b").get("/tokens", params={"page.limit": "1"}), 401)
    assert with_cert(c2, pki, "client-a").get("/tokens", params={"page.limit": "1"}).status_code == 200


# ---------------------------------------------------------------------------
# 4. SIGHUP: new certificates for new connections only
# ---------------------------------------------------------------------------

def reloads(srv, level):
    return [r for r in srv.log_records() if r.get("event") == "tls_reload" and r.get("level") == level]


def test_sighup_reloads_certificate_without_dropping_connections(tokend_factory, pki, tmp_path):
    srv = tokend_factory.start(settings=tls_settings(pki, workdir=str(tmp_path)), tls_ca=pki.path("ca.pem"))
    ctx = tls_context(pki)
    kept = http.client.HTTPSConnection(srv.host, srv.port, context=ctx, timeout=30)
    kept.request("GET", "/healthz")
    assert kept.getresponse().read() == b'{"status":"ok"}'
    sock = kept.sock
    assert sock.getpeercert(binary_form=True) == pki.der("server")

    shutil.copy(pki.path("server2.pem"), str(tmp_path / "tls.pem"))
    shutil.copy(pki.path("server2.key"), str(tmp_path / "tls.key"))
    srv.signal(signal.SIGHUP)
    tdlib.wait_until(lambda: reloads(srv, "info"), timeout=30, what="the TLS reload")
    assert handshake(srv, ctx)[2] == pki.der("server2")  # a new connection: the new certificate
    # the open keep-alive connection still works, on its first handshake
    kept.request("GET", "/healthz")
    assert kept.getresponse().read() == b'{"status":"ok"}'
    assert kept.sock is sock and sock.getpeercert(binary_form=True) == pki.der("server")
    kept.close()

    # a key that is not the certificate's: refused, the certificate in use stays
    shutil.copy(pki.path("server.pem"), str(tmp_path / "tls.pem"))
    srv.signal(signal.SIGHUP)
    warn = tdlib.wait_until(lambda: reloads(srv, "warn"), timeout=30, what="the refused reload")
    assert "not the key of the certificate" in warn[0]["msg"], warn
    assert handshake(srv, ctx)[2] == pki.der("server2")
    assert srv.anon(capture=False).get("/healthz").status_code == 200


def test_sighup_without_tls_keeps_serving(tokend):
    """SIGHUP used to end tokend (the default action); now it is a reload,
    which on plain HTTP rereads the admin key file alone."""
    tokend.signal(signal.SIGHUP)
    tdlib.wait_until(lambda: [r for r in tokend.log_records() if r.get("event") == "admin_key_reload"], timeout=30,
                     what="the SIGHUP to be handled")
    assert not [r for r in tokend.log_records() if r.get("event") == "tls_reload"]
    assert tokend.alive and tokend.anon(capture=False).get("/healthz").status_code == 200


# ---------------------------------------------------------------------------
# 5. Outbound: delivery to a TLS receiver, mutual TLS and a pinned key
# ---------------------------------------------------------------------------

class TlsReceiver:
    """An HTTPS receiver that requires a client certificate of the test CA
    and answers 200 to every POST; what it got in self.got."""

    def __init__(self, pki):
        self.got = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                subject = dict(x[0] for x in self.connection.getpeercert()["subject"])
                receiver.got.append({"path": self.path, "client": subject.get("commonName"), "body": body})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*pki.pair("server"))
        ctx.load_verify_locations(pki.path("ca.pem"))
        ctx.verify_mode = ssl.CERT_REQUIRED
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.httpd.handle_error = lambda request, address: None  # failed handshakes are expected
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def tls_receiver(pki):
    rx = TlsReceiver(pki)
    yield rx
    rx.close()


def delivery_tls_body(rx, pki, pin, cert="client-a"):
    cert_file, key_file = pki.pair(cert)
    return {"profile": "d1", "baseUrl": rx.url + "/issuer", "messagingUrl": rx.url + "/messages", "timeoutMs": 5000,
            "tls": {"certFile": cert_file, "keyFile": key_file, "caFile": pki.path("ca.pem"), "pinnedPublicKey": pin}}


def test_delivery_to_tls_receiver_with_client_cert_and_pin(tokend_factory, pki, tls_receiver):
    srv = tokend_factory.start(settings=DELIVERY_SETTINGS)
    right, wrong = NetIssuer(srv), NetIssuer(srv)
    set_delivery(srv, right.id, delivery_tls_body(tls_receiver, pki, pki.pin("server")))
    set_delivery(srv, wrong.id, delivery_tls_body(tls_receiver, pki, pki.pin("server2")))
    for iss in (right, wrong):
        iss.green(iss.register_card())

    rows = wait_delivered(srv, right.id, timeout=45)
    assert rows and all(r["state"] in ("DELIVERED", "CANCELLED") for r in rows), rows
    mine = [g for g in tls_receiver.got if f"/issuers/{right.id}/" in g["path"]]
    assert mine and all(g["client"] == "client-a" for g in mine), tls_receiver.got  # tokend's client certificate

    # the wrong pin: every attempt fails before a request is sent, and is retried
    failing = tdlib.wait_until(
        lambda: [r for r in read_outbox(srv, wrong.id) if r["attempts"] >= 2] or None, timeout=45, interval=0.1,
        what="a second failed attempt under the wrong pin")
    assert all(r["state"] != "DELIVERED" for r in read_outbox(srv, wrong.id))
    assert "pin" in failing[0]["lastError"].lower() or "public key" in failing[0]["lastError"].lower(), failing[0]
    assert not [g for g in tls_receiver.got if f"/issuers/{wrong.id}/" in g["path"]], tls_receiver.got
