# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""gpulab.cluster.metallb_address: one address of a MetalLB pool (documented in metallb_address.yml); the pool's
rules live in the collection's module_utils/_platform.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.gpulab.cluster.plugins.module_utils import _platform


def metallb_address(pool, which=0):
    """The pool's address number ``which`` (0: the lowest), or the default address of the service named ``which``
    (registry, grafana, kubeflow: the first, second, third), as text; a pool without it is refused."""
    index = _platform.SERVICES.index(which) if which in _platform.SERVICES else int(which)
    found = _platform.address(pool, index)
    if found is None:
        raise AnsibleFilterError("gpulab_metallb_pool %r has no address number %d; give CIDR networks or address "
                                 "ranges with enough addresses (validate_inventory names the problem)" % (pool, index))
    return found


class FilterModule(object):
    """gpulab.cluster platform filters."""

    def filters(self):
        return {
            "metallb_address": metallb_address,
        }
