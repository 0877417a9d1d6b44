#!/usr/bin/env python3
"""The ryu-snat lab topology: inside hosts, the NAT bridge, an outside segment.

    h1 10.0.0.11 --+                          +-- o1 198.51.100.10
    h2 10.0.0.12 --+-- s1 (NAT, OpenFlow 1.3) -- s2 (plain L2) --+-- o2 198.51.100.11
    ...            (uplink s1-eth1 = port 1)                    +-- ...

``s1`` is the bridge ryu-snat controls (remote controller, 127.0.0.1:6653 by
default); its port 1 is the uplink to ``s2``, a standalone learning bridge that
stands for the outside L2 segment 198.51.100.0/24, where the NAT address is
198.51.100.1.  Inside hosts route via 10.0.0.1.

Use it with Mininet's own command::

    mn --custom mininet/nat_topo.py --topo nat,inside=3,outside=2 \\
       --controller remote,ip=127.0.0.1,port=6653

or as a script (``--help`` lists the options)::

    python3 mininet/nat_topo.py --inside 3 --outside 2

Both switches use the kernel datapath when the openvswitch module is loaded and
the userspace one (``datapath_type=netdev``) otherwise.  On the userspace
datapath TCP only works with checksum and segmentation offloads off on the
hosts' interfaces, so :class:`NatHost` turns them off.
"""
from __future__ import annotations

import argparse
import ipaddress
import os

from mininet.node import Host, OVSBridge, OVSSwitch
from mininet.topo import Topo

# Mininet's Node.popen(..., shell=True) runs os.environ["SHELL"] and raises
# KeyError where it is unset (CI runners, cron, `env -i`); Mininet's own host
# shells are bash, so the same shell is the default here.
os.environ.setdefault("SHELL", "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh")

INSIDE_NET = ipaddress.IPv4Network("10.0.0.0/24")
INSIDE_GATEWAY = ipaddress.IPv4Address("10.0.0.1")
OUTSIDE_NET = ipaddress.IPv4Network("198.51.100.0/24")   # RFC 5737 TEST-NET-2
NAT_ADDRESS = ipaddress.IPv4Address("198.51.100.1")
NAT_DPID = "0000000000000001"
OUTSIDE_ROUTER = ipaddress.IPv4Address("198.51.100.254")
FAR_ROUTER = ipaddress.IPv4Address("203.0.113.1")        # RFC 5737 TEST-NET-3
FAR_SERVER = ipaddress.IPv4Address("203.0.113.10")
UPLINK_PORT = 1
UPLINK_NAME = "s1-eth1"
# A second NAT bridge (``bridges=2``): s4, its own inside network, the same outside.
SECOND_DPID = "0000000000000004"
SECOND_INSIDE_NET = ipaddress.IPv4Network("10.0.1.0/24")
SECOND_INSIDE_GATEWAY = ipaddress.IPv4Address("10.0.1.1")
SECOND_NAT_ADDRESS = ipaddress.IPv4Address("198.51.100.2")
SECOND_UPLINK_NAME = "s4-eth1"
OFFLOADS = ("rx", "tx", "sg", "tso", "gso", "gro")


def kernel_datapath_available() -> bool:
    """True when the kernel's openvswitch module is loaded."""
    return os.path.isdir("/sys/module/openvswitch")


def default_datapath() -> str:
    """Mininet's name for the datapath to use here: 'kernel' or 'user'."""
    return "kernel" if kernel_datapath_available() else "user"


def inside_ip(index: int) -> ipaddress.IPv4Address:
    """Address of inside host number ``index`` (1-based): 10.0.0.11, .12, ..."""
    return INSIDE_NET.network_address + 10 + index


def outside_ip(index: int) -> ipaddress.IPv4Address:
    """Address of outside server number ``index`` (1-based): .10, .11, ..."""
    return OUTSIDE_NET.network_address + 9 + index


class NatHost(Host):
    """A Mininet host whose interfaces have offloads off (userspace datapath)."""

    def config(self, **params):
        result = super().config(**params)
        for intf in self.intfList():
            if intf.name != "lo":
                self.cmd("ethtool", "-K", intf.name, *[f"{o} off" for o in OFFLOADS],
                         ">/dev/null 2>&1")
        return result


class NatRouter(NatHost):
    """A Linux host that forwards IPv4: a router beyond the NAT."""

    def config(self, **params):
        result = super().config(**params)
        self.cmd("sysctl -qw net.ipv4.ip_forward=1")
        mtu = params.get("far_mtu")
        if mtu:     # a narrower link beyond the router: PMTU discovery must work
            self.cmd(f"ip link set dev {self.name}-eth1 mtu {int(mtu)}")
        return result


class NatTopo(Topo):
    """``inside`` hosts behind the NAT bridge s1, ``outside`` servers beyond it.

    With ``bridges=2`` a second NAT bridge s4 (dpid 4, uplink s4-eth1 to the
    same outside segment) has ``inside`` hosts of its own, g1 10.0.1.11, ...
    routed via 10.0.1.1; both bridges use the one controller.

    With ``far=True`` a router r1 (198.51.100.254) joins the outside segment
    and leads to a far network 203.0.113.0/24 with server f1 (203.0.113.10),
    whose link has MTU ``far_mtu`` (traceroute and PMTU discovery tests).
    """

    def build(self, inside: int = 2, outside: int = 2, datapath: str | None = None,
              far: bool = False, far_mtu: int = 0, bridges: int = 1) -> None:
        inside, outside = int(inside), int(outside)
        if not 1 <= inside <= 200 or not 1 <= outside <= 200:
            raise ValueError("inside and outside host counts must be 1..200")
        dp = datapath or default_datapath()
        nat = self.addSwitch("s1", cls=OVSSwitch, dpid=NAT_DPID, datapath=dp,
                             protocols="OpenFlow13", failMode="secure")
        segment = self.addSwitch("s2", cls=OVSBridge, dpid="0000000000000002",
                                 datapath=dp)
        self.addLink(nat, segment)          # first link: s1 port 1, the uplink
        for i in range(1, inside + 1):
            host = self.addHost(f"h{i}", cls=NatHost,
                                ip=f"{inside_ip(i)}/{INSIDE_NET.prefixlen}",
                                defaultRoute=f"via {INSIDE_GATEWAY}")
            self.addLink(host, nat)
        if int(bridges) == 2:
            second = self.addSwitch("s4", cls=OVSSwitch, dpid=SECOND_DPID, datapath=dp,
                                    protocols="OpenFlow13", failMode="secure")
            self.addLink(second, segment)       # s4 port 1, its uplink
            for i in range(1, inside + 1):
                host = self.addHost(f"g{i}", cls=NatHost,
                                    ip=f"{SECOND_INSIDE_NET.network_address + 10 + i}/"
                                       f"{SECOND_INSIDE_NET.prefixlen}",
                                    defaultRoute=f"via {SECOND_INSIDE_GATEWAY}")
                self.addLink(host, second)
        elif int(bridges) != 1:
            raise ValueError("bridges must be 1 or 2")
        for j in range(1, outside + 1):
            self.addHost(f"o{j}", cls=NatHost, ip=f"{outside_ip(j)}/{OUTSIDE_NET.prefixlen}")
            self.addLink(f"o{j}", segment)
        if far:
            far_net = self.addSwitch("s3", cls=OVSBridge, dpid="0000000000000003", datapath=dp)
            self.addHost("r1", cls=NatRouter, ip=f"{OUTSIDE_ROUTER}/{OUTSIDE_NET.prefixlen}",
                         far_mtu=int(far_mtu))
            self.addLink("r1", segment)                            # r1-eth0
            self.addLink("r1", far_net, params1={"ip": f"{FAR_ROUTER}/24"})   # r1-eth1
            self.addHost("f1", cls=NatHost, ip=f"{FAR_SERVER}/24",
                         defaultRoute=f"via {FAR_ROUTER}")
            self.addLink("f1", far_net)


topos = {"nat": NatTopo}


def remote_controller_class() -> type:
    """Mininet's RemoteController, minus its telnet probe.

    ``RemoteController.isListening`` runs ``echo A | telnet ...`` in a shell
    and decodes what telnet prints as UTF-8.  When the controller's OpenFlow
    HELLO (binary, with a random xid) arrives before telnet quits, the
    decode raises and the whole network fails to build: seen under CPU load.
    A plain TCP connect answers the same question without reading a byte.
    """
    import socket

    from mininet.log import warn
    from mininet.node import RemoteController

    class PlainRemoteController(RemoteController):
        def stop(self) -> None:
            """Mininet's RemoteController.stop does nothing, and the net
            never terminates controllers: each lab left its shell running
            until the process ended.  The remote controller itself is not ours."""
            self.terminate()

        def isListening(self, ip: str, port: int) -> bool:
            try:
                with socket.create_connection((ip, port), timeout=2):
                    return True
            except OSError:
                warn(f"Unable to contact the remote controller at {ip}:{port}\n")
                return False

    return PlainRemoteController


def main() -> None:
    from mininet.cli import CLI
    from mininet.log import setLogLevel
    from mininet.net import Mininet

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inside", type=int, default=2, help="inside hosts (default 2)")
    ap.add_argument("--outside", type=int, default=2, help="outside servers (default 2)")
    ap.add_argument("--controller", default="127.0.0.1:6653",
                    help="HOST[:PORT] of ryu-manager (default 127.0.0.1:6653)")
    args = ap.parse_args()
    if args.inside < 1 or args.outside < 1:
        ap.error("--inside and --outside need at least 1 host each")
    host, _, port = args.controller.partition(":")
    if not port.isdigit() and port:
        ap.error(f"--controller {args.controller!r}: the port must be a number")
    setLogLevel("info")
    net = Mininet(topo=NatTopo(args.inside, args.outside), controller=None,
                  autoSetMacs=True, waitConnected=False, build=False)
    try:
        net.addController("c0", controller=remote_controller_class(), ip=host or "127.0.0.1",
                          port=int(port or 6653))
        net.build()
        net.start()
        CLI(net)
    finally:
        net.stop()


if __name__ == "__main__":
    main()
