# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The MetalLB address pool of a gpulab.cluster site, as pure functions.

``gpulab_metallb_pool`` lists CIDR networks ("192.168.50.240/29") and ranges ("192.168.50.240-192.168.50.250"), as
MetalLB's IPAddressPool ``spec.addresses`` takes them. In layer-2 mode the addresses must lie in the node network
(MetalLB answers ARP for them there) and no node, VIP or subnet may use them.
"""

from __future__ import absolute_import, division, print_function

import ipaddress

__metaclass__ = type


def parse_entry(entry):
    """(first, last) IPv4Address of a pool entry, or (None, why) when it is unusable."""
    if not isinstance(entry, str) or not entry.strip():
        return None, "is %r; write a CIDR network (192.168.50.240/29) or a range (192.168.50.240-192.168.50.250)" % (
            entry,)
    text = entry.strip()
    try:
        if "-" in text:
            first, last = (ipaddress.IPv4Address(part.strip()) for part in text.split("-", 1))
            if first > last:
                return None, "%r starts after it ends; write the lower address first" % text
            return (first, last), None
        network = ipaddress.IPv4Network(text, strict=True)
    except ValueError as exc:
        if "host bits set" in str(exc):
            return None, "%r has host bits set; write %s" % (text, ipaddress.IPv4Network(text, strict=False))
        return None, "%r is neither an IPv4 CIDR network nor a range of two IPv4 addresses" % text
    return (network.network_address, network.broadcast_address), None


def ranges(pool):
    """[(first, last)] of the usable entries of a pool."""
    found = []
    for entry in pool or []:
        bounds, _why = parse_entry(entry)
        if bounds:
            found.append(bounds)
    return found


# The Services that get a fixed MetalLB address, and which address of the pool each takes unless the inventory names
# one (gpulab_<name>_address): the registry, Grafana, Kubeflow's gateway.
SERVICES = ("registry", "grafana", "kubeflow")


def address(pool, index=0):
    """The pool's address number ``index`` (0: the lowest), counting through its entries in address order, as text;
    None for an unusable pool or one with fewer addresses."""
    for first, last in sorted(ranges(pool)):
        size = int(last) - int(first) + 1
        if index < size:
            return str(first + index)
        index -= size
    return None
