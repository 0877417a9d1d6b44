#!/usr/bin/env bash
# Open vSwitch for ryu-snat, as root, idempotent: start it unless it runs,
# then apply the one setting of ryu-snat's install (unless an operator chose
# a value already).
#
#   other_config:max-idle=300 (ms; OVS's default is 10000).  Every new
#   session adds two flows, and every change to a bridge's flow table makes
#   OVS's revalidator translate every cached datapath flow again; finished
#   connections' datapath flows stay cached for max-idle.  Measured on the
#   2-core machine this project runs on (Mininet, 500 short connections over
#   8 workers, bench/dataplane.py shows both): the default costs about a
#   third of the new connections a second.  A flow idle for 300 ms costs
#   one upcall when its connection sends again.  The setting is global to
#   this Open vSwitch; remove it with
#   ovs-vsctl remove Open_vSwitch . other_config max-idle
#
# Starting: systemd's openvswitch-switch where systemd runs; else ovs-ctl
# (containers), and ovs-vswitchd by hand when ovs-ctl gives up for want of
# the kernel module that the userspace datapath does not need.
set -euo pipefail

MAX_IDLE_MS=300
OVS_CTL=/usr/share/openvswitch/scripts/ovs-ctl

up() { ovs-appctl --timeout=3 -t "$1" version >/dev/null 2>&1; }
running() { up ovsdb-server && up ovs-vswitchd; }
wait_for() {  # seconds, command...
    local until=$((SECONDS + $1)); shift
    until "$@"; do
        [ "$SECONDS" -ge "$until" ] && return 1
        sleep 0.1
    done
}

if ! running; then
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
        systemctl start openvswitch-switch || true
    else
        "$OVS_CTL" start --system-id=random >/dev/null 2>&1 || true
    fi
    if up ovsdb-server && ! wait_for 2 up ovs-vswitchd; then
        ovs-vswitchd unix:/var/run/openvswitch/db.sock --pidfile --detach --log-file \
            --no-chdir -vconsole:emer >/dev/null 2>&1 || true
    fi
    if ! wait_for 5 running; then
        echo "[ovs] Open vSwitch did not start: see /var/log/openvswitch/" >&2
        exit 1
    fi
    echo "[ovs] started Open vSwitch"
fi

if ! ovs-vsctl --timeout=5 get Open_vSwitch . other_config:max-idle >/dev/null 2>&1; then
    ovs-vsctl --timeout=5 set Open_vSwitch . other_config:max-idle=$MAX_IDLE_MS
    echo "[ovs] set other_config:max-idle=$MAX_IDLE_MS (see scripts/ovs.sh)"
fi
