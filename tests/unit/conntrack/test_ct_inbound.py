"""Inbound packets: filtering per protocol (RFC 4787 REQ-8, RFC 7857 s5-6),
unsolicited inbound, inbound-initiated sessions on existing mappings."""

import pytest

from conntrack import ICMP, TCP, UDP, Refused, RefuseReason, State
from conntrack.keys import TcpFlags

EXT = "198.51.100.1"
H1, A1, A2 = "10.0.0.1", "203.0.113.1", "203.0.113.2"
SYN, ACK = TcpFlags.SYN, TcpFlags.ACK


def refused(fn, *args, **kwargs) -> RefuseReason:
    with pytest.raises(Refused) as err:
        fn(*args, **kwargs)
    return err.value.reason


def test_reply_returns_the_existing_session(make_ct):
    ct = make_ct()
    s = ct.create_outbound(UDP, H1, 5000, A1, 53, 0.0)
    assert ct.accept_inbound(UDP, A1, 53, EXT, 5000, 1.0) is s
    assert s.last_seen == 0.0  # accepting is a lookup; refresh is touch()


def test_unsolicited_inbound_without_mapping_is_refused(make_ct):
    ct = make_ct(udp_filtering="endpoint-independent")
    assert refused(ct.accept_inbound, UDP, A1, 53, EXT, 5000, 0.0) is RefuseReason.NO_MAPPING
    assert refused(ct.accept_inbound, UDP, A1, 53, "198.51.100.9", 5000, 0.0) is RefuseReason.NO_MAPPING
    assert ct.stats().refused_by_reason == {"no_mapping": 2}


def test_address_and_port_dependent_filtering_is_the_default(make_ct):
    ct = make_ct()
    ct.create_outbound(UDP, H1, 5000, A1, 53, 0.0)
    assert refused(ct.accept_inbound, UDP, A1, 54, EXT, 5000, 0.0) is RefuseReason.FILTERED
    assert refused(ct.accept_inbound, UDP, A2, 53, EXT, 5000, 0.0) is RefuseReason.FILTERED
    assert len(ct) == 1


def test_address_dependent_filtering_accepts_known_address_any_port(make_ct):
    ct = make_ct(udp_filtering="address-dependent")
    s = ct.create_outbound(UDP, H1, 5000, A1, 53, 0.0)
    new = ct.accept_inbound(UDP, A1, 9999, EXT, 5000, 1.0)
    assert new is not s and new.external_port == 5000 and new.inbound_initiated
    assert new.original == (UDP, s.inside_ip, 5000, new.remote_ip, 9999)
    assert refused(ct.accept_inbound, UDP, A2, 53, EXT, 5000, 1.0) is RefuseReason.FILTERED


def test_endpoint_independent_filtering_accepts_anyone_on_the_mapping(make_ct, recorder):
    ct = make_ct(udp_filtering="endpoint-independent")
    ct.create_outbound(UDP, H1, 5000, A1, 53, 0.0)
    new = ct.accept_inbound(UDP, A2, 7777, EXT, 5000, 2.0)
    assert new.external_port == 5000 and new.created_at == 2.0
    assert recorder.kinds() == ["created", "created"]
    assert ct.lookup_inbound(*new.reply) is new and ct.lookup_outbound(*new.original) is new


def test_filtering_is_per_protocol(make_ct):
    ct = make_ct(udp_filtering="endpoint-independent")  # TCP keeps the default
    ct.create_outbound(UDP, H1, 5000, A1, 53, 0.0)
    ct.create_outbound(TCP, H1, 5000, A1, 80, 0.0, tcp_flags=SYN)
    assert ct.accept_inbound(UDP, A2, 1, EXT, 5000, 0.0)
    assert refused(ct.accept_inbound, TCP, A2, 1, EXT, 5000, 0.0, tcp_flags=SYN) is RefuseReason.FILTERED


def test_inbound_tcp_needs_a_bare_syn_and_starts_syn_received(make_ct):
    ct = make_ct(tcp_filtering="endpoint-independent")
    ct.create_outbound(TCP, H1, 5000, A1, 80, 0.0, tcp_flags=SYN)
    assert refused(ct.accept_inbound, TCP, A2, 1, EXT, 5000, 0.0, tcp_flags=ACK) is RefuseReason.NOT_SYN
    assert refused(ct.accept_inbound, TCP, A2, 1, EXT, 5000, 0.0, tcp_flags=SYN | ACK) is RefuseReason.NOT_SYN
    s = ct.accept_inbound(TCP, A2, 1, EXT, 5000, 0.0, tcp_flags=SYN)
    assert s.state is State.SYN_RECEIVED and s.timeout == 240
    assert ct.observe(s, 0, SYN | ACK, 1.0) == 7440  # the inside host answers


def test_icmp_inbound_on_existing_identifier(make_ct):
    ct = make_ct(icmp_filtering="address-dependent")
    s = ct.create_outbound(ICMP, H1, 33, A1, 0, 0.0)
    assert ct.accept_inbound(ICMP, A1, 5, EXT, 33, 0.0) is s  # remote "port" normalised to 0
    assert refused(ct.accept_inbound, ICMP, A2, 0, EXT, 33, 0.0) is RefuseReason.FILTERED


def test_refused_inbound_changes_nothing(make_ct):
    ct = make_ct()
    s = ct.create_outbound(UDP, H1, 5000, A1, 53, 0.0)
    refused(ct.accept_inbound, UDP, A2, 53, EXT, 5000, 100.0)
    assert s.last_seen == 0.0 and len(ct) == 1 and ct.expire(300.0) == [s]
