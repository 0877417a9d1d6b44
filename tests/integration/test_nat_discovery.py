"""A third-party check: RFC 5780 NAT behaviour discovery from an inside host.

coturn's ``turnserver`` runs on o1 with two addresses (198.51.100.10 and .12)
and two ports (3478, 3479), so it can answer a Binding request from another
address and/or port (CHANGE-REQUEST).  ``turnutils_natdiscovery -m -f`` on h1
classifies the NAT's UDP mapping (RFC 4787 REQ-1: must be endpoint-independent)
and filtering (RFC 4787 REQ-8: what the lab configured).

natdiscovery decides filtering from timeouts (no answer within 3 s), so a
capture on both sides checks its verdict: o1 really sent the answers from the
changed address or port, and exactly those the mode admits reached h1.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from helpers.system import assert_left_nothing
from lab import Lab, wait_for

NAT_IP = "198.51.100.1"
A1, A2 = "198.51.100.10", "198.51.100.12"   # o1's own address and a second one
P1, P2 = 3478, 3479                          # STUN port and RFC 5780 alternate port
EIF, ADF, APDF = "endpoint-independent", "address-dependent", "address-and-port-dependent"

# The answers to CHANGE-REQUEST (change IP and port, then change port only)
# and which of them each filtering mode lets through to h1.  natdiscovery stops
# at the first test that gets an answer, so under EIF it never asks for A1:P2.
CHANGED = {EIF: {f"{A2}.{P2}"}, ADF: {f"{A2}.{P2}", f"{A1}.{P2}"},
           APDF: {f"{A2}.{P2}", f"{A1}.{P2}"}}
ADMITTED = {EIF: {f"{A2}.{P2}"}, ADF: {f"{A1}.{P2}"}, APDF: set()}

LABS = [
    # (nat options, UDP filtering expected)
    pytest.param(({}, APDF), id="default"),
    pytest.param(({"filtering": EIF, "tcp_filtering": EIF, "udp_filtering": EIF}, EIF),
                 id="endpoint-independent"),
    # udp_filtering, not filtering, governs UDP.
    pytest.param(({"filtering": EIF, "tcp_filtering": EIF, "udp_filtering": ADF}, ADF),
                 id="udp-address-dependent"),
    pytest.param(({"udp_filtering": EIF}, EIF), id="udp-only-endpoint-independent"),
]


def turnserver_cmd(workdir: Path) -> list[str]:
    """An RFC 5780 STUN server: two listener addresses turn on CHANGE-REQUEST."""
    return ["turnserver", "-n", "-L", A1, "-L", A2,
            "--listening-port", str(P1), "--alt-listening-port", str(P2),
            "--stun-only", "--no-tcp", "--no-tls", "--no-dtls", "--no-cli",
            "--log-binding", "--log-file", str(workdir / "turnserver.log"), "--simple-log",
            "--no-stdout-log", "--pidfile", str(workdir / "turnserver.pid"),
            "--userdb", str(workdir / "turndb")]


NATDISCOVERY = f"timeout 30 turnutils_natdiscovery -m -f -p {P1} {A1}"


def parse(out: str) -> dict[str, dict]:
    """natdiscovery's stdout: per section, its answers, timeouts and verdict.

    A verdict is normalised to our option values: "NAT with Address and Port
    Dependent Filtering!" -> "address-and-port-dependent".
    """
    sections: dict[str, dict] = {}
    sec = None
    for line in out.splitlines():
        line = line.strip()
        if m := re.fullmatch(r"-= (Mapping|Filtering) Behavior Discovery =-", line):
            sec = sections[m.group(1).lower()] = {"answers": [], "timeouts": 0, "verdict": None}
        elif sec is None:
            continue
        elif re.fullmatch(r"RFC 5780 response \d+", line):
            sec["answers"].append({})
        elif m := re.search(r"(Response origin|UDP reflexive addr|Other addr): (?:: )?(\S+)$", line):
            key = {"Response origin": "origin", "UDP reflexive addr": "reflexive",
                   "Other addr": "other"}[m.group(1)]
            sec["answers"][-1][key] = m.group(2)
        elif line == "STUN receive timeout..":
            sec["timeouts"] += 1
        elif m := re.fullmatch(r"NAT with (.+) (?:Mapping|Filtering)!", line):
            sec["verdict"] = m.group(1).lower().replace(" and ", "-and-").replace(" ", "-")
        elif line.startswith("No NAT!"):
            sec["verdict"] = "no-nat"
    return sections


class Capture:
    """tcpdump in a Mininet host, of UDP from the alternate port; stopped by PID."""

    def __init__(self, host, intf: str, workdir: Path) -> None:
        self.out = workdir / f"{intf}.txt"
        self.err = workdir / f"{intf}.err"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = host.popen(["timeout", "60", "tcpdump", "-n", "-l", "--immediate-mode",
                                    "-i", intf, f"udp and src port {P2}"],
                                   stdout=out, stderr=err)
        wait_for(lambda: "listening on" in self.err.read_text(), 10, what=f"tcpdump on {intf}")

    def stop(self) -> set[str]:
        """Stop; the source ip.port of every packet seen."""
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        return set(re.findall(r" IP (\S+) > ", self.out.read_text()))


@pytest.fixture(scope="module", params=LABS)
def lab(request):
    options, expected = request.param
    with Lab(inside=1, outside=1, nat_options=options) as running:
        running.expected_filtering = expected
        yield running
    assert_left_nothing(running)


@pytest.fixture(scope="module")
def discovery(lab):
    """Run turnserver on o1 and natdiscovery -m -f on h1 once per lab."""
    o1, h1 = lab.host("o1"), lab.host("h1")
    workdir = Path(tempfile.mkdtemp(prefix="natdiscovery-"))
    o1.cmd(f"ip addr add {A2}/24 dev o1-eth0")
    server = o1.popen(turnserver_cmd(workdir), stdout=subprocess.DEVNULL,
                      stderr=subprocess.STDOUT)
    try:
        listening = [f"{a}:{p}" for a in (A1, A2) for p in (P1, P2)]
        wait_for(lambda: server.poll() is not None or all(s in o1.cmd("ss -lun") for s in listening),
                 10, what="turnserver to listen on both addresses and ports")
        assert server.poll() is None, (workdir / "turnserver.log").read_text()
        # The first packet to a new remote waits for the gateway's ARP; natdiscovery
        # sends each request once and waits 3 s, so resolve both addresses first.
        warm = h1.cmd(f"ping -c1 -W2 {A1}; ping -c1 -W2 {A2}")
        assert warm.count("1 received") == 2, warm
        captures = {"o1": Capture(o1, "o1-eth0", workdir), "h1": Capture(h1, "h1-eth0", workdir)}
        started = time.monotonic()
        out = h1.cmd(NATDISCOVERY + "; echo rc=$?")
        took = time.monotonic() - started
        time.sleep(0.3)
        seen = {name: cap.stop() for name, cap in captures.items()}
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)
    log = (workdir / "turnserver.log").read_text(errors="replace")
    shutil.rmtree(workdir, ignore_errors=True)
    assert "rc=0" in out, out
    return {"out": out, "sections": parse(out), "took": took, "seen": seen, "server_log": log}


def test_server_supports_rfc_5780(discovery):
    """Both sections got their first answer, with an OTHER-ADDRESS (else no verdict)."""
    for name in ("mapping", "filtering"):
        sec = discovery["sections"].get(name)
        assert sec and sec["answers"], discovery["out"]
        first = sec["answers"][0]
        assert first.get("origin") == f"{A1}:{P1}", discovery["out"]
        assert first.get("other") == f"{A2}:{P2}", discovery["out"]   # OTHER-ADDRESS


def test_mapping_is_endpoint_independent(discovery):
    """RFC 4787 REQ-1: A1:P1 and A2:P1 see one external ip:port."""
    sec = discovery["sections"]["mapping"]
    assert sec["verdict"] == EIF, discovery["out"]
    assert [a.get("origin") for a in sec["answers"]] == [f"{A1}:{P1}", f"{A2}:{P1}"]
    assert len({a["reflexive"] for a in sec["answers"]}) == 1, discovery["out"]
    assert sec["answers"][0]["reflexive"].startswith(f"{NAT_IP}:"), discovery["out"]


def test_filtering_is_the_configured_mode(lab, discovery):
    sec = discovery["sections"]["filtering"]
    assert sec["verdict"] == lab.expected_filtering, discovery["out"]


def test_only_the_admitted_changed_answers_reach_the_inside_host(lab, discovery):
    """natdiscovery's timeouts are the NAT's doing: o1 sent them, h1 saw what the mode admits."""
    mode = lab.expected_filtering
    seen = discovery["seen"]
    assert seen["o1"] == CHANGED[mode], (seen, discovery["out"])
    assert seen["h1"] == ADMITTED[mode], (seen, discovery["out"])
