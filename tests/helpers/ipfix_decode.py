"""IPFIX datagrams read back by scapy's IPFIX layer (an independent decoder
with its own template cache), as plain records named as IANA names them."""
from __future__ import annotations

from scapy.layers.netflow import NetflowHeader, netflowv9_defragment

# scapy calls the IEs NetFlow v9 also has by their v9 names.
IANA = {"PROTOCOL": "protocolIdentifier", "IPV4_SRC_ADDR": "sourceIPv4Address",
        "L4_SRC_PORT": "sourceTransportPort", "IPV4_DST_ADDR": "destinationIPv4Address",
        "L4_DST_PORT": "destinationTransportPort"}


def records(datagrams: list[bytes]) -> list[dict]:
    """Every data record whose template was seen, in the order sent, with
    its message's ``domain`` and ``sequence``; values as ints or dotted
    addresses."""
    out = []
    for pkt in netflowv9_defragment([NetflowHeader(d) for d in datagrams], verb=0):
        header = pkt.getlayer("IPFix (Netflow V10) Header") or pkt[1]
        layer = pkt.getlayer("NetflowDataflowsetV9")
        while layer is not None:
            for record in layer.records:
                if "fieldValue" in record.fields:
                    continue                 # its template never came: undecodable
                row = {IANA.get(k, k): int.from_bytes(v, "big") if isinstance(v, bytes) else v
                       for k, v in record.fields.items()}
                row.update(domain=header.ObservationDomainID, sequence=header.flowSequence,
                           template=layer.templateID)
                out.append(row)
            layer = layer.payload.getlayer("NetflowDataflowsetV9") if layer.payload else None
    return out


def templates(datagrams: list[bytes]) -> dict[int, list[str]]:
    """Template id -> its fields' names, from every template set sent."""
    out: dict[int, list[str]] = {}
    for data in datagrams:
        pkt = NetflowHeader(data)
        layer = pkt.getlayer("NetflowFlowsetV9")
        while layer is not None:
            for template in layer.templates:
                out[template.templateID] = [
                    IANA.get(str(f.sprintf("%fieldType%")), f.sprintf("%fieldType%"))
                    for f in template.template_fields]
            layer = layer.payload.getlayer("NetflowFlowsetV9") if layer.payload else None
    return out
