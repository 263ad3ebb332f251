"""test_crash.py — durability and shutdown. kill -9 in the middle of a stream of
cancels: after a restart on the same store every acknowledged cancel is there
and no token is half-done (checked through the API and, independently, in the
SQLite file with the sqlite3 CLI). SIGTERM with requests in flight: each one is
answered and the process exits 0."""

import queue
import socket
import threading
import time

import requests

from tdlib import (HTTP_TIMEOUT, FORM, authorize, get_token, new_member, query_params, request_body, signatures,
                   sql, store_request, wait_until)

N_TOKENS = 150
THREADS = 6


def make_access_tokens(srv, tpp, bank, n, threads=THREADS):
    """n access tokens through the consent flow, from several threads."""
    out, lock, errors = [], threading.Lock(), []
    todo = queue.Queue()
    for i in range(n):
        todo.put(i)

    def worker():
        client = tpp.client()
        form = requests.Session()
        try:
            while True:
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                rid = store_request(client, request_body(tpp.id, bank.id, ref_id=f"crash-{i}"))
                url = authorize(client, rid)
                r = form.post(url, data=f"decision=approve&accounts=a:{i}", headers=FORM, allow_redirects=False,
                              timeout=HTTP_TIMEOUT)
                assert r.status_code == 303, (r.status_code, r.text)
                with lock:
                    out.append(query_params(r.headers["Location"])["tokenId"])
        except Exception as e:  # reported by the caller
            errors.append(e)

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert not errors, errors
    assert len(out) == n
    return out


def db_token_rows(srv):
    rows = sql(srv.db_path, """
        SELECT t.id, t.state, t.seq, t.canceled_by, t.json,
               (SELECT count(*) FROM token_events e WHERE e.token_id = t.id AND e.type = 'CANCELED') AS cancel_events,
               (SELECT count(*) FROM token_events e WHERE e.token_id = t.id AND e.type = 'CREATED' AND e.seq = 1)
                 AS created_events,
               (SELECT max(seq) FROM token_events e WHERE e.token_id = t.id) AS last_event_seq
        FROM tokens t""")
    return {r["id"]: r for r in rows}


def test_kill9_during_a_stream_of_cancels(tokend_factory):
    srv = tokend_factory.start()
    bank = new_member(srv, "bank")
    tpp = new_member(srv, "tpp")
    token_ids = make_access_tokens(srv, tpp, bank, N_TOKENS)

    acked = {}        # token id -> the CANCELED signature of its acknowledged SUCCESS
    attempted = set()  # sent, outcome unknown or acknowledged
    lock = threading.Lock()
    todo = queue.Queue()
    for t in token_ids:
        todo.put(t)

    def canceller():
        client = tpp.client("LOW")
        while True:
            try:
                tid = todo.get_nowait()
            except queue.Empty:
                return
            with lock:
                attempted.add(tid)
            try:
                r = client.put(f"/tokens/{tid}/cancel")
            except requests.RequestException:
                return  # the server is gone
            if r.status_code == 200 and r.json()["result"]["status"] == "SUCCESS":
                [sig] = signatures(r.json()["result"]["token"], "CANCELED")
                with lock:
                    acked[tid] = sig

    ts = [threading.Thread(target=canceller) for _ in range(THREADS)]
    [t.start() for t in ts]
    wait_until(lambda: len(acked) >= N_TOKENS // 3 or not any(t.is_alive() for t in ts), what="cancels to flow")
    srv.kill()  # SIGKILL mid-stream
    [t.join(HTTP_TIMEOUT) for t in ts]
    assert acked, "no cancel was acknowledged before the kill"
    print(f"acknowledged {len(acked)} of {N_TOKENS} cancels before SIGKILL, {len(attempted)} sent")

    srv2 = tokend_factory.restart(srv)
    tc = tpp.client(server=srv2)

    # The store: every token exists, and each is wholly canceled or wholly active.
    rows = db_token_rows(srv2)
    assert set(token_ids) <= set(rows), "tokens created before the crash are missing"
    for tid in token_ids:
        row = rows[tid]
        assert row["created_events"] == 1, row
        n_sigs = row["json"].count('"action":"CANCELED"')
        if row["state"] == 1:  # CANCELED
            assert (row["seq"], row["canceled_by"], row["cancel_events"], row["last_event_seq"], n_sigs) == (
                2, tpp.id, 1, 2, 1), row
        else:
            assert row["state"] == 0, row  # ACTIVE
            assert (row["seq"], row["canceled_by"], row["cancel_events"], row["last_event_seq"], n_sigs) == (
                1, "", 0, 1, 0), row
        if tid in acked:
            assert row["state"] == 1, f"acknowledged cancel of {tid} was lost"

    # The API agrees with the store; acknowledged cancels repeat as SUCCESS with the same signature.
    for tid in token_ids:
        token = get_token(tc, tid)
        cancels = signatures(token, "CANCELED")
        assert len(cancels) == rows[tid]["state"], (tid, token)
        if tid in acked:
            assert cancels == [acked[tid]]
            again = tc.put(f"/tokens/{tid}/cancel").json()["result"]
            assert again["status"] == "SUCCESS" and signatures(again["token"], "CANCELED") == [acked[tid]]
        elif tid not in attempted:
            assert cancels == [], f"{tid} was never sent a cancel but is canceled"

    # The rest can still be canceled, exactly once each.
    for tid in token_ids:
        r = tc.put(f"/tokens/{tid}/cancel")
        assert r.status_code == 200 and r.json()["result"]["status"] == "SUCCESS", r.text
    rows = db_token_rows(srv2)
    assert all(rows[t]["state"] == 1 and rows[t]["cancel_events"] == 1 for t in token_ids)


def _in_flight(srv):
    text = requests.get(srv.url + "/metrics", timeout=HTTP_TIMEOUT).text
    line = [x for x in text.splitlines() if x.startswith("tokend_requests_in_flight ")][0]
    return int(line.split()[1])


def park_cancels(srv, tpp, token_ids):
    """Stalls the writer and sends one cancel per token from its own thread; returns
    once they are all in flight (waiting for the writer)."""
    answers = {}

    def send(tid):
        try:
            answers[tid] = tpp.client().put(f"/tokens/{tid}/cancel")
        except requests.RequestException as e:
            answers[tid] = e

    threads = [threading.Thread(target=send, args=(t,)) for t in token_ids]
    [t.start() for t in threads]
    # +1: the /metrics request itself.
    wait_until(lambda: _in_flight(srv) >= len(token_ids) + 1, what="the cancels to be in flight")
    return threads, answers


def test_sigterm_answers_requests_in_flight(tokend_factory):
    srv = tokend_factory.start()
    bank = new_member(srv, "bank")
    tpp = new_member(srv, "tpp")
    token_ids = make_access_tokens(srv, tpp, bank, 8, threads=2)
    admin = srv.admin()  # a keep-alive connection opened before the signal
    r = admin.post("/admin/v1/faults", json={"store": "stalled"})
    assert r.status_code == 200
    threads, answers = park_cancels(srv, tpp, token_ids)

    srv.signal(15)  # SIGTERM while 8 writes wait for the writer
    time.sleep(0.2)
    assert srv.alive, "tokend exited with requests in flight"
    # The store recovers while tokend drains (over the connection opened before).
    assert admin.post("/admin/v1/faults", json={"store": "none"}).status_code == 200
    [t.join(HTTP_TIMEOUT) for t in threads]
    rc = srv.wait(20)
    srv.exit_checked = True
    for tid in token_ids:
        r = answers.get(tid)
        assert isinstance(r, requests.Response), f"cancel of {tid} got no answer: {r!r}"
        assert r.status_code == 200 and r.json()["result"]["status"] == "SUCCESS", r.text
    assert rc == 0, f"exit code {rc}"

    # What was acknowledged is durable.
    srv2 = tokend_factory.restart(srv)
    for tid in token_ids:
        assert len(signatures(get_token(tpp.client(server=srv2), tid), "CANCELED")) == 1


def test_sigterm_stops_accepting_new_connections(tokend_factory):
    """While draining, a new client is refused at once (it can go elsewhere)
    rather than accepted and left without an answer until the process exits."""
    srv = tokend_factory.start()
    bank = new_member(srv, "bank")
    tpp = new_member(srv, "tpp")
    [tid] = make_access_tokens(srv, tpp, bank, 1, threads=1)
    admin = srv.admin()
    assert admin.post("/admin/v1/faults", json={"store": "stalled"}).status_code == 200
    threads, answers = park_cancels(srv, tpp, [tid])
    srv.signal(15)
    time.sleep(0.2)
    outcome = None
    try:
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(5)
        try:
            data = s.recv(100)
            outcome = f"answered {data[:40]!r}" if data else "closed"
        except socket.timeout:
            outcome = "accepted, no answer within 5 s"
        except ConnectionResetError:
            outcome = "reset"
        s.close()
    except ConnectionRefusedError:
        outcome = "refused"
    assert admin.post("/admin/v1/faults", json={"store": "none"}).status_code == 200
    [t.join(HTTP_TIMEOUT) for t in threads]
    rc = srv.wait(20)
    srv.exit_checked = True
    assert isinstance(answers.get(tid), requests.Response) and answers[tid].status_code == 200
    assert rc == 0, f"exit code {rc}"
    assert outcome in ("refused", "reset", "closed"), (
        f"a new connection during the drain was {outcome} (the listening socket stays open after SIGTERM)")


def test_sigterm_while_the_writer_is_stuck(tokend_factory):
    """A write that cannot be committed (the writer is stuck) when SIGTERM comes:
    after the drain period the process must still exit 0, and the client must get
    an answer (503/504), not a dropped connection or a crash."""
    srv = tokend_factory.start(settings={"commit-timeout": "200"})
    bank = new_member(srv, "bank")
    tpp = new_member(srv, "tpp")
    [tid] = make_access_tokens(srv, tpp, bank, 1, threads=1)
    srv.set_fault("stalled")
    threads, answers = park_cancels(srv, tpp, [tid])
    srv.signal(15)
    rc = srv.wait(30)
    [t.join(HTTP_TIMEOUT) for t in threads]
    srv.exit_checked = rc is not None
    answer = answers.get(tid)
    tail = srv.tail(5)
    assert rc == 0, f"exit code {rc} (SIGTERM with a write stuck in the writer); log tail:\n{tail}"
    assert isinstance(answer, requests.Response) and answer.status_code in (503, 504), repr(answer)
