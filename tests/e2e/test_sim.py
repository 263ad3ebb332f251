"""test_sim.py — `tokenctl sim` (the TSP/wallet simulator) and `tokenctl
cards` (the issuer side) against a real tokend: every scenario exits 0 (every
step got the answer the contract promises), with --duplicates and --late too;
an unexpected answer exits 1; the PAN and the OTP are never printed."""

import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import NetIssuer, new_pan, read_outbox

REPO = Path(__file__).resolve().parents[2]
TOKENCTL = os.environ.get("TOKENCTL_BIN", str(REPO / "build" / "tokenctl"))

pytestmark = pytest.mark.skipif(not os.access(TOKENCTL, os.X_OK), reason="tokenctl not built (set TOKENCTL_BIN)")

SCENARIOS = ["green", "yellow-otp", "yellow-cancel", "yellow-expiry", "red", "enrollment-failure"]


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKEND_")}
    env.update(extra)
    return env


def tokenctl(srv, *args, env=None, stdin=None, admin=True, cwd=None):
    argv = [TOKENCTL, "--url", srv.url]
    if admin:
        argv += ["--admin-key-file", os.path.join(srv.dir, "admin.key")]
    argv += [str(a) for a in args]
    p = subprocess.run(argv, env=env or clean_env(), input=stdin, capture_output=True, text=True, timeout=120,
                       cwd=cwd or srv.dir)
    assert "Sanitizer" not in p.stderr and "runtime error" not in p.stderr, p.stderr
    return p


def keys_env(iss, **extra):
    return clean_env(TOKEND_ISSUER_ID=iss.id, TOKEND_ISSUER_KEY=iss.issuer_key, TOKEND_NETWORK_KEY=iss.network_key,
                     **extra)


def no_secrets(p, iss, *secrets):
    out = p.stdout + p.stderr
    for s in (iss.issuer_key, iss.network_key) + secrets:
        assert s not in out, "a secret was printed"
    # No PAN (the sim makes its own): no number of 13-19 digits anywhere. A
    # number stands alone: digits inside a hex trace id (…b120338857092552)
    # are part of that id, not a PAN.
    pan = re.compile(r"(?<![0-9A-Za-z])[0-9]{13,19}(?![0-9A-Za-z])")
    assert not pan.search(out), pan.search(out)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_sim_scenario(net_tokend, scenario):
    iss = NetIssuer(net_tokend)
    p = tokenctl(net_tokend, "sim", scenario, "--register", env=keys_env(iss))
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"== sim {scenario}: every step got the expected answer ==" in p.stdout, p.stdout
    assert "!! expected" not in p.stdout, p.stdout
    assert "outbox #" in p.stdout and "issuer view:" in p.stdout, p.stdout
    no_secrets(p, iss)


@pytest.mark.parametrize("scenario", ["yellow-cancel", "enrollment-failure", "green"])
def test_sim_duplicates_and_late(net_tokend, scenario):
    iss = NetIssuer(net_tokend)
    p = tokenctl(net_tokend, "sim", scenario, "--register", "--duplicates", "--late", env=keys_env(iss))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "(duplicate)" in p.stdout, p.stdout
    no_secrets(p, iss)
    if scenario != "green":
        assert "IGNORED" in p.stdout, p.stdout


def test_sim_with_flags_and_given_card(net_tokend):
    """Keys as flags, a card registered beforehand and given by PAN, a phone
    that matches the registered one; the PAN is never printed."""
    iss = NetIssuer(net_tokend)
    pan = new_pan()
    iss.register_card(pan=pan, expiry="1230", phone="+33 6 12 34 56 78", card_id="sim-given-card")
    p = tokenctl(net_tokend, "sim", "yellow-otp", "--issuer", iss.id, "--network-key", iss.network_key,
                 "--issuer-key", iss.issuer_key, "--pan", pan, "--expiry", "1230", "--phone", "0612345678",
                 "--wallet", "ANDROID_PAY")
    assert p.returncode == 0, p.stdout + p.stderr
    assert pan not in p.stdout + p.stderr
    assert "*" * 12 + pan[-4:] in p.stdout, p.stdout
    # The OTP delivered is never printed either: the request shows stars.
    assert '"otp":"******"' in p.stdout, p.stdout
    rows = read_outbox(net_tokend, iss.id)
    assert any(r["message"] == "OTP" for r in rows), rows
    p = tokenctl(net_tokend, "sim", "green", "--card-id", "sim-given-card", "--phone", "+33612345678",
                 env=keys_env(iss))
    assert p.returncode == 0, p.stdout + p.stderr


def test_sim_network_key_only(net_tokend):
    """Without the issuer and admin keys the sim still drives the network side."""
    iss = NetIssuer(net_tokend)
    card = iss.register_card()
    env = clean_env(TOKEND_NETWORK_KEY=iss.network_key)
    p = tokenctl(net_tokend, "sim", "enrollment-failure", "--card-id", card.id, "--late", env=env, admin=False,
                 cwd="/")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "issuer view:" not in p.stdout and "outbox #" not in p.stdout, p.stdout


def test_sim_unexpected_answer_exits_1(net_tokend):
    iss = NetIssuer(net_tokend)
    p = tokenctl(net_tokend, "sim", "green", "--card-id", "no-such-card", env=keys_env(iss))
    assert p.returncode == 1, p.stdout + p.stderr
    assert "!! expected the decision GREEN (got RED)" in p.stdout, p.stdout


def test_sim_usage_errors(net_tokend):
    iss = NetIssuer(net_tokend)
    for args, env in ((["sim", "purple", "--register"], keys_env(iss)),
                      (["sim", "green"], keys_env(iss)),
                      (["sim", "green", "--register"], clean_env(TOKEND_NETWORK_KEY=iss.network_key)),
                      (["sim", "green", "--card-id", "x"], clean_env()),
                      (["sim", "green", "--card-id", "x", "--register"], keys_env(iss))):
        p = tokenctl(net_tokend, *args, env=env, admin=False, cwd="/")
        assert p.returncode == 2, (args, p.stdout, p.stderr)


def test_sim_unreachable_exits_3(tmp_path):
    p = subprocess.run([TOKENCTL, "--url", "http://127.0.0.1:9", "sim", "green", "--card-id", "c"],
                       env=clean_env(TOKEND_NETWORK_KEY="tk_x"), capture_output=True, text=True, timeout=60,
                       cwd=str(tmp_path))
    assert p.returncode == 3, p.stdout + p.stderr


# ---------------------------------------------------------------------------
# tokenctl cards
# ---------------------------------------------------------------------------


def test_cards_commands(net_tokend):
    srv = net_tokend
    iss = NetIssuer(srv)
    env = keys_env(iss)
    pan = new_pan()
    p = tokenctl(srv, "cards", "register", "--card-id", "cli-card-1", "--consumer-id", "cons-1", "--pan", "-",
                 "--expiry", "1230", "--phone", "+33 6 12 34 56 78", "--email", "jane@example.com", env=env,
                 stdin=pan + "\n")
    assert p.returncode == 0, p.stderr
    assert '"cardId": "cli-card-1"' in p.stdout and pan[-4:] in p.stdout, p.stdout
    no_secrets(p, iss, pan)
    p = tokenctl(srv, "-q", "cards", "get", "cli-card-1", env=env)
    assert p.returncode == 0 and p.stdout.strip() == "ACTIVE", (p.stdout, p.stderr)

    dc = iss.green(iss.register_card(card_id="cli-card-2"))
    p = tokenctl(srv, "-q", "cards", "dcard", "suspend", dc, "--reason", "Lost phone", "--reason-code", "DEVICE_LOST",
                 "--correlation-id", "corr-cli-1", env=env)
    assert p.returncode == 0, p.stderr
    op = p.stdout.strip()
    assert op.startswith("op_"), p.stdout
    p = tokenctl(srv, "-q", "cards", "op", "get", op, env=env)
    assert p.stdout.strip() == "SUCCESSFUL", (p.stdout, p.stderr)
    p = tokenctl(srv, "-q", "cards", "dcard", "get", dc, env=env)
    assert p.stdout.strip() == "SUSPENDED", (p.stdout, p.stderr)
    p = tokenctl(srv, "cards", "dcard", "get", dc, env=env)
    assert p.returncode == 0 and '"suspendedBy": [' in p.stdout, p.stdout
    p = tokenctl(srv, "-q", "cards", "dcards", "cli-card-2", env=env)
    assert p.stdout.split() == [dc], p.stdout
    # A refusal exits 1 with the D1 error on stderr.
    p = tokenctl(srv, "cards", "dcard", "suspend", dc, "--reason-code", "NOPE", env=env)
    assert p.returncode == 1 and "INVALID_ARGUMENT" in p.stderr, (p.stdout, p.stderr)
    p = tokenctl(srv, "cards", "card", "delete", "cli-card-2", "--reason-code", "CLOSED_CARD", env=env)
    assert p.returncode == 0 and "operationId" in p.stdout, p.stderr
    assert iss.state(dc) == "DELETED"

    # Admin: policy, outbox, simulated TSP.
    p = tokenctl(srv, "cards", "policy", "set", iss.id, "--json", '{"stepUp": {"sessionSeconds": 120}}')
    assert p.returncode == 0, p.stderr
    p = tokenctl(srv, "cards", "policy", "get", iss.id)
    assert p.returncode == 0 and '"sessionSeconds": 120' in p.stdout, p.stdout
    p = tokenctl(srv, "cards", "policy", "set", iss.id, "--json", "{not json")
    assert p.returncode == 2, p.stderr
    p = tokenctl(srv, "-q", "cards", "outbox", iss.id, "--after", "0", "--limit", "100")
    assert p.returncode == 0 and len(p.stdout.split()) >= 3, p.stdout
    p = tokenctl(srv, "cards", "tsp", "fail", "--count", "1")
    assert p.returncode == 0, p.stderr
    dc2 = iss.green(iss.register_card())
    p = tokenctl(srv, "cards", "dcard", "suspend", dc2, env=env)
    assert p.returncode == 1 and "TSP_FAILED" in p.stderr, (p.stdout, p.stderr)
    p = tokenctl(srv, "cards", "dcard", "suspend", dc2, env=env)
    assert p.returncode == 0, p.stderr
    # Usage errors.
    for args in (["cards", "register", "--card-id", "x"], ["cards", "dcard", "freeze", dc2],
                 ["cards", "tsp", "explode"], ["cards", "dcard"]):
        p = tokenctl(srv, *args, env=env)
        assert p.returncode == 2, (args, p.stdout, p.stderr)
    p = tokenctl(srv, "cards", "get", "cli-card-1", env=clean_env(TOKEND_ISSUER_ID=iss.id))
    assert p.returncode == 2 and "TOKEND_ISSUER_KEY" in p.stderr, p.stderr
