# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""gpulab.cluster.metallb_first_address: the lowest address of a MetalLB pool (documented in
metallb_first_address.yml); the pool's rules live in the collection's module_utils/_platform.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.gpulab.cluster.plugins.module_utils import _platform


def metallb_first_address(pool):
    """The pool's lowest address as text; a pool without a usable entry is refused."""
    address = _platform.first_address(pool)
    if address is None:
        raise AnsibleFilterError("gpulab_metallb_pool %r has no usable entry; give CIDR networks or address ranges "
                                 "(validate_inventory names the problem)" % (pool,))
    return address


class FilterModule(object):
    """gpulab.cluster platform filters."""

    def filters(self):
        return {
            "metallb_first_address": metallb_first_address,
        }
