"""Property-based tests: random packets, time steps and removals on a small
table (few hosts, ports and remotes, tiny port ranges) so collisions,
exhaustion, quarantine and limits all happen. After every step the table
must satisfy the invariants listed in check()."""

from __future__ import annotations

import random
from ipaddress import IPv4Address

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conntrack import (
    ICMP,
    INBOUND,
    OUTBOUND,
    TCP,
    UDP,
    ConnTrack,
    ConntrackConfig,
    EventKind,
    Filtering,
    Refused,
    RefuseReason,
    State,
)
from conntrack.ports import QUARANTINED

EXT = 0xC6336401  # 198.51.100.1
HOSTS = [0x0A000001, 0x0A000002, 0x0A000003]
INSIDE_PORTS = [7, 80, 1000, 1024, 1025, 5000]
REMOTES = [0xCB007101, 0xCB007102, EXT]  # EXT: hairpin
REMOTE_PORTS = [53, 80, 443]
PROTOS = [TCP, UDP, ICMP]
EXT_PORTS = [0, 1, 2, 3, 4, 7, 80, 1000, 1001, 1002, 1024, 1025, 1026, 1027, 1028, 1029, 5000]
FLAGS = [0x02, 0x12, 0x10, 0x11, 0x01, 0x04, 0x18]  # SYN, SYN|ACK, ACK, FIN|ACK, FIN, RST, PSH|ACK

configs = st.builds(
    lambda quarantine, parity, low, filt, limits, timeouts: ConntrackConfig(
        external_ip=IPv4Address(EXT),
        port_range=(1024, 1029),
        low_port_range=(1000, 1002),
        preserve_low_ports=low,
        preserve_parity=parity,
        icmp_id_range=(0, 4),
        quarantine=quarantine,
        tcp_filtering=filt[0],
        udp_filtering=filt[1],
        icmp_filtering=filt[2],
        max_connections=limits[0],
        max_connections_per_host=limits[1],
        tcp_established_timeout=timeouts[0],
        tcp_opening_timeout=timeouts[1],
        tcp_closing_timeout=timeouts[2],
        udp_timeout=timeouts[3],
        icmp_timeout=timeouts[4],
    ),
    st.sampled_from([0.0, 5.0, 30.0]),
    st.booleans(),
    st.booleans(),
    st.tuples(*[st.sampled_from(list(Filtering))] * 3),
    st.tuples(st.integers(4, 40), st.integers(2, 20)),
    st.tuples(*[st.sampled_from([1.0, 7.5, 20.0, 60.0])] * 5),
)

out_op = st.tuples(st.just("out"), st.sampled_from(PROTOS), st.sampled_from(HOSTS), st.sampled_from(INSIDE_PORTS),
                  st.sampled_from(REMOTES), st.sampled_from(REMOTE_PORTS), st.sampled_from(FLAGS))
op = st.one_of(
    out_op,
    out_op,
    st.tuples(st.just("in"), st.sampled_from(PROTOS), st.sampled_from(REMOTES), st.sampled_from(REMOTE_PORTS),
              st.sampled_from(EXT_PORTS), st.sampled_from(FLAGS)),
    # Inbound to the external port of a live session, from any remote: exercises filtering.
    st.tuples(st.just("in_live"), st.integers(0, 10**6), st.sampled_from(REMOTES), st.sampled_from(REMOTE_PORTS),
              st.sampled_from(FLAGS)),
    # The last field is how late the caller reports the packet (flow stats lag).
    st.tuples(st.just("touch"), st.integers(0, 10**6), st.sampled_from([OUTBOUND, INBOUND]),
              st.sampled_from([0.0, 0.0, 0.5, 3.0])),
    st.tuples(st.just("observe"), st.integers(0, 10**6), st.sampled_from([OUTBOUND, INBOUND]), st.sampled_from(FLAGS),
              st.sampled_from([0.0, 0.0, 0.5, 3.0])),
    st.tuples(st.just("remove"), st.integers(0, 10**6)),
    st.tuples(st.just("time"), st.sampled_from([0.0, 0.25, 0.5, 1.0, 3.0, 5.0, 7.5, 19.0, 20.0, 31.0, 60.0])),
)


# Moderate example counts keep the suite well under a minute; no deadlines
# (no timing assertions in tests).
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Harness:
    """Drives a table and checks it after every step."""

    def __init__(self, config: ConntrackConfig, seed: int) -> None:
        self.config = config
        self.ct = ConnTrack(config, on_event=self.on_event, rng=random.Random(seed))
        self.now = 0.0
        self.freed: dict[tuple[int, int], tuple[float, int]] = {}  # (proto, port) -> (time, ikey)
        self.last_id = 0
        self.initial_free = {p: [len(f) for f in self.ct._pools[p]._free] for p in PROTOS}
        # The harness's own record of each live session's last refresh, kept
        # by the rules (not read back from the engine): expiry is checked
        # against it, so a wrong refresh shows up as a wrong expiry.
        self.model_last: dict[int, float] = {}

    def on_event(self, event) -> None:
        s = event.session
        m = s.mapping
        if event.kind in (EventKind.EXPIRED, EventKind.REMOVED):
            assert not s.alive
            if m.count == 0 and not m.static:
                self.freed[(m.policy.protocol, m.external_port)] = (event.time, m.ikey)
            return
        assert event.kind is EventKind.CREATED
        assert s.id > self.last_id  # fresh, increasing ids (no wrap in these runs)
        self.last_id = s.id
        self.model_last[s.id] = event.time
        if m.count == 1:  # a new mapping: check how its port was chosen
            self.check_new_port(s)

    def check_new_port(self, s) -> None:
        proto, port, inside = s.protocol, s.external_port, s.inside_port
        pool = self.ct._pools[proto]
        if proto != ICMP:
            if self.config.preserve_low_ports:
                assert (inside < 1024) == (port < 1024)
            if self.config.preserve_parity:
                # Parity gives way only when its own class had nothing left.
                assert inside % 2 == port % 2 or pool.available(inside, fallback=False) == 0
        freed = self.freed.get((proto, port))
        if freed and freed[0] + self.config.quarantine > s.created_at and freed[1] != s.mapping.ikey:
            # A port still in quarantine went to another endpoint: only if nothing else was free.
            assert pool.free_count(inside) == 0

    def check_filtering(self, got, created: bool) -> None:
        """An accepted inbound packet that made a new session passed the filter."""
        if not created:
            return
        assert got.inbound_initiated and got.id == self.last_id
        mode = self.config.filtering(got.protocol)
        assert mode is not Filtering.ADDRESS_AND_PORT_DEPENDENT or got.mapping.static
        if mode is Filtering.ADDRESS_DEPENDENT:
            assert any(s.remote_ip == got.remote_ip for s in got.mapping.sessions() if s is not got)

    def sessions(self) -> list:
        return list(self.ct.sessions())

    def pick(self, n: int):
        live = self.sessions()
        return live[n % len(live)] if live else None

    def refresh_model(self, s, direction, state_before, seen) -> None:
        """Outbound always refreshes; inbound only a session established
        before or after the packet (UDP/ICMP: replied)."""
        if direction == OUTBOUND:
            refreshes = True
        elif s.protocol == TCP:
            refreshes = bool({state_before, s.state} & {State.ESTABLISHED, State.FIN_WAIT})
        else:
            refreshes = s.replied
        if refreshes:
            self.model_last[s.id] = max(self.model_last[s.id], seen)

    def justify(self, refused: Refused, action: tuple) -> None:
        """A refusal must be true of the table as it stands."""
        ct, cfg, reason = self.ct, self.config, refused.reason
        kind = action[0]
        live = self.sessions()
        if kind == "out":
            _, proto, host, port = action[:4]
            inside = host
        else:
            if kind == "in":
                proto, ext_port, remote = action[1], action[4], action[2]
            else:
                probe = self.pick(action[1])
                proto, ext_port, remote = probe.protocol, probe.external_port, action[2]
            mapping = ct.mapping_of_port(proto, ext_port)
            inside = int(mapping.inside_ip) if mapping is not None else None
        if reason is RefuseReason.TABLE_FULL:
            assert len(live) == cfg.max_connections
        elif reason is RefuseReason.HOST_QUOTA:
            mine = [s for s in live if int(s.inside_ip) == inside]
            inbound = [s for s in mine if s.inbound_initiated]
            assert len(mine) == cfg.max_connections_per_host or (
                kind != "out" and len(inbound) >= max(1, 3 * cfg.max_connections_per_host // 4)), \
                (len(mine), len(inbound))
        elif reason is RefuseReason.POOL_EXHAUSTED:
            assert kind == "out" and ct.mapping(proto, host, port) is None
            assert ct._pools[proto].available(port) == 0
        elif reason is RefuseReason.NO_MAPPING:
            assert inside is None
        elif reason is RefuseReason.FILTERED:
            mode = cfg.filtering(proto)
            assert mode is not Filtering.ENDPOINT_INDEPENDENT and not mapping.static
            if mode is Filtering.ADDRESS_DEPENDENT:
                assert all(int(s.remote_ip) != remote for s in mapping.sessions())
        elif reason is RefuseReason.NOT_SYN:
            assert proto == TCP and action[-1] != 0x02
        else:
            raise AssertionError(f"unexpected refusal {refused}")

    def step(self, action: tuple) -> None:
        ct, kind = self.ct, action[0]
        try:
            if kind == "out":
                _, proto, host, port, remote, rport, flags = action
                ct.create_outbound(proto, host, port, remote, rport, self.now, tcp_flags=flags)
            elif kind == "in":
                _, proto, remote, rport, ext_port, flags = action
                ct.accept_inbound(proto, remote, rport, EXT, ext_port, self.now, tcp_flags=flags)
            elif kind == "in_live":
                s = self.pick(action[1])
                if s is not None:
                    _, _, remote, rport, flags = action
                    before = self.last_id
                    got = ct.accept_inbound(s.protocol, remote, rport, EXT, s.external_port, self.now, tcp_flags=flags)
                    assert got.external_port == s.external_port and got.inside_ip == s.inside_ip
                    self.check_filtering(got, created=self.last_id != before)
            elif kind in ("touch", "observe", "remove"):
                s = self.pick(action[1])
                if s is None:
                    return
                before = (s.last_seen, s.state)
                seen = self.now - action[-1] if kind != "remove" else self.now
                if kind == "touch":
                    refreshed = ct.touch(s, action[2], seen)
                    assert s.last_seen == (max(before[0], seen) if refreshed else before[0])
                    if action[2] == OUTBOUND:
                        assert refreshed  # outbound always refreshes
                    elif s.protocol == TCP:
                        assert refreshed == (s.state in (State.ESTABLISHED, State.FIN_WAIT))
                    else:
                        assert refreshed == s.replied
                    self.refresh_model(s, action[2], before[1], seen)
                elif kind == "observe":
                    old_timeout = s.timeout
                    changed = ct.observe(s, action[2], action[3], seen)
                    assert changed == (s.timeout if s.timeout != old_timeout else None)
                    self.refresh_model(s, action[2], before[1], seen)
                else:
                    assert ct.remove(s.id, "test", self.now) is s and not s.alive
                    del self.model_last[s.id]
                if s.alive:
                    assert s.last_seen == self.model_last[s.id], (kind, action, before, s.state)
            elif kind == "time":
                self.now += action[1]
                due = {s.id for s in self.sessions()
                       if self.model_last[s.id] + expected_timeout(self.config, s) <= self.now}
                gone = ct.expire(self.now)
                assert all(s.expires_at <= self.now and not s.alive for s in gone)
                assert len({s.id for s in gone}) == len(gone)
                # Nothing dies before its time, nothing lives past it.
                assert {s.id for s in gone} == due
                for s in gone:
                    del self.model_last[s.id]
        except Refused as refused:
            self.justify(refused, action)
        self.check()

    def check(self) -> None:
        ct, cfg = self.ct, self.config
        live = self.sessions()
        st_ = ct.stats()
        # Limits are never exceeded.
        assert len(live) == st_.active <= cfg.max_connections
        per_host: dict = {}
        for s in live:
            per_host[s.inside_ip] = per_host.get(s.inside_ip, 0) + 1
        assert all(n <= cfg.max_connections_per_host for n in per_host.values())
        assert st_.created + st_.restored - st_.expired - st_.removed == st_.active
        external, by_endpoint, ports_of = set(), {}, {}
        for s in live:
            assert s.alive and 1 <= s.id < 2**32
            # No two live sessions share an external (protocol, ip, port, remote) tuple.
            key = (s.protocol, s.external_port, s.remote_ip, s.remote_port)
            assert key not in external
            external.add(key)
            # EIM: one external port per inside endpoint ...
            endpoint = (s.protocol, s.inside_ip, s.inside_port)
            assert by_endpoint.setdefault(endpoint, s.external_port) == s.external_port
            # ... and, no overloading, one inside endpoint per external port.
            assert ports_of.setdefault((s.protocol, s.external_port), endpoint) == endpoint
            # Lookups both ways find it, and invert each other.
            assert ct.lookup_outbound(*s.original) is s
            assert ct.lookup_inbound(*s.reply) is s
            # The deadline is the model's, with the timeout of its state (a
            # late report that shortens the timeout may make it due at once;
            # the next sweep must take exactly those: see the "time" step).
            assert s.timeout == expected_timeout(cfg, s)
            assert s.expires_at == self.model_last[s.id] + s.timeout
        # Port accounting: a port is in use iff a mapping holds it.
        for proto in PROTOS:
            mappings = {p for (pr, p) in ports_of if pr == proto}
            assert ct._pools[proto].in_use == len(mappings) == st_.ports_in_use[{6: "tcp", 17: "udp", 1: "icmp"}[proto]]
            owners, ikeys = ct._owners[proto], ct._ikeys[proto]
            assert len(owners) - owners.count(None) == len(ikeys) - ikeys.count(0) == len(mappings)
            assert all(owners[p] is not None and ikeys[p] == owners[p].ikey for p in mappings)
        assert st_.mappings == len(ports_of)

    def finish(self) -> None:
        """After every timeout and quarantine, every port is back in its free list."""
        self.now += 10_000.0
        self.ct.expire(self.now)
        assert len(self.ct) == 0 and self.ct.next_deadline() is None
        for proto in PROTOS:
            pool = self.ct._pools[proto]
            pool.drain(self.now + self.config.quarantine)
            assert pool.in_use == 0 and pool.quarantined == 0
            assert [len(f) for f in pool._free] == self.initial_free[proto]
            assert QUARANTINED not in pool._state


def expected_timeout(cfg: ConntrackConfig, s) -> float:
    if s.protocol == UDP:
        return cfg.udp_timeout
    if s.protocol == ICMP:
        return cfg.icmp_timeout
    return {
        State.ESTABLISHED: cfg.tcp_established_timeout,
        State.FIN_WAIT: cfg.tcp_established_timeout,
        State.CLOSING: cfg.tcp_closing_timeout,
    }.get(s.state, cfg.tcp_opening_timeout)


@SETTINGS
@given(config=configs, seed=st.integers(0, 2**16), ops=st.lists(op, min_size=10, max_size=80))
def test_random_sequences_keep_the_invariants(config, seed, ops):
    h = Harness(config, seed)
    for action in ops:
        h.step(action)
    h.finish()


@SETTINGS
@given(seed=st.integers(0, 2**16), ops=st.lists(op, min_size=10, max_size=80))
def test_default_config_invariants(seed, ops):
    """Same with the shipped defaults (wide pools: no exhaustion, real timeouts)."""
    h = Harness(ConntrackConfig(external_ip=IPv4Address(EXT)), seed)
    for action in ops:
        h.step(action)
    h.finish()


@SETTINGS
@given(
    timeouts=st.lists(st.floats(0.5, 50.0, allow_nan=False), min_size=1, max_size=30),
    steps=st.lists(st.floats(0.0, 20.0, allow_nan=False), min_size=1, max_size=30),
)
def test_nothing_dies_early_or_lives_late(timeouts, steps):
    """Sessions refreshed at random times expire exactly when last_seen + timeout <= now."""
    ct = ConnTrack(ConntrackConfig(external_ip=IPv4Address(EXT), udp_timeout=17.0, quarantine=0.0))
    sessions = [ct.create_outbound(UDP, HOSTS[0], 2000 + n, REMOTES[0], 53, t % 5) for n, t in enumerate(timeouts)]
    now = 5.0
    rng = random.Random(len(steps))
    for dt in steps:
        now += dt
        for s in sessions:
            if s.alive and rng.random() < 0.3:
                ct.touch(s, OUTBOUND, now - rng.random())  # stats may report a little late
        expected = {s.id for s in sessions if s.alive and s.last_seen + 17.0 <= now}
        assert {s.id for s in ct.expire(now)} == expected
        assert all(s.last_seen + 17.0 > now for s in sessions if s.alive)
