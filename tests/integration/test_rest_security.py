"""The REST API as an operator finds it: the real ryu-manager, started with
no wsapi_host, answers on loopback only; changes need the bearer token; bad
bodies are a 400 naming the field; no traceback reaches the client."""
from __future__ import annotations

import subprocess

import pytest

from lab import Controller
from localports import free_tcp_port

TOKEN = "lab-token-0123456789"
FORWARD = {"protocol": "udp", "external_port": 5300, "internal_ip": "10.0.0.12",
           "internal_port": 53}
BEARER = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def controller():
    ctl = Controller({"rest_token": TOKEN}, of_port=free_tcp_port(), wsapi_host=None)
    ctl.start()
    try:
        yield ctl
    finally:
        ctl.stop()
    assert "Traceback" not in ctl.log(), ctl.log()


def test_the_api_listens_on_loopback_only(controller):
    listening = subprocess.run(["ss", "-Hltn", f"sport = :{controller.rest_port}"],
                               capture_output=True, text=True, check=True).stdout.split()
    local = [field for field in listening if field.endswith(f":{controller.rest_port}")]
    assert local == [f"127.0.0.1:{controller.rest_port}"], listening


def test_changes_need_the_token(controller):
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"},
                    {"Authorization": f"Basic {TOKEN}"}):
        status, body = controller.request("POST", "/nat/forwards", FORWARD, headers=headers)
        assert status == 401 and "Authorization: Bearer" in body["error"], (headers, body)
    assert controller.get("/nat/forwards") == []
    status, body = controller.request("POST", "/nat/forwards", FORWARD, headers=BEARER)
    assert status == 200 and body == FORWARD
    assert controller.request("DELETE", "/nat/forwards/udp/5300")[0] == 401
    assert controller.get("/nat/forwards") == [FORWARD]
    assert controller.request("DELETE", "/nat/forwards/udp/5300", headers=BEARER)[0] == 200
    assert controller.get("/nat/forwards") == []


@pytest.mark.parametrize("body,field", [
    ({**FORWARD, "external_port": 70000}, "external_port"),
    ({**FORWARD, "internal_port": "53"}, "internal_port"),
    ({**FORWARD, "internal_ip": "203.0.113.5"}, "internal_ip"),
    ({**FORWARD, "protocol": 17}, "protocol"),
    ({**FORWARD, "owner": "me"}, "owner"),
    ({k: v for k, v in FORWARD.items() if k != "internal_ip"}, "internal_ip"),
])
def test_bad_bodies_are_a_400_naming_the_field(controller, body, field):
    status, answer = controller.request("POST", "/nat/forwards", body, headers=BEARER)
    assert status == 400 and field in answer["error"], answer


@pytest.mark.parametrize("raw", [b"{", b"\xff\xfe\x00", b"[]", b"null", b"[" * 50000])
def test_bodies_that_are_not_json_objects_are_a_400(controller, raw):
    status, answer = controller.request("POST", "/nat/forwards", headers=BEARER, raw_body=raw)
    assert status == 400 and isinstance(answer, dict) and "error" in answer, answer
    assert "Traceback" not in answer["error"]
