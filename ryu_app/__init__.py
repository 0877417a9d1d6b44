"""ryu-snat: the Ryu OpenFlow 1.3 application (event handlers, flows, ARP, REST).

Kept free of imports: ``ryu_snat_eventlet_compat.pth`` imports a submodule of
this package at every interpreter start in the venv.
"""
