# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpulab.cluster.metallb_address and the pool parsing under it (module_utils/_platform.py; its rules:
test_inventory_rules.py)."""
from __future__ import absolute_import, division, print_function

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.gpulab.cluster.plugins.filter.platform import FilterModule

__metaclass__ = type

ADDRESS = FilterModule().filters()["metallb_address"]


@pytest.mark.parametrize("pool, index, expected", [
    (["192.168.50.240-192.168.50.250"], 0, "192.168.50.240"),
    (["192.168.50.240-192.168.50.250"], 1, "192.168.50.241"),
    # entries in address order, whatever their order in the list; a network counts all its addresses
    (["192.168.50.244-192.168.50.250", "192.168.50.240/30"], 0, "192.168.50.240"),
    (["192.168.50.244-192.168.50.250", "192.168.50.240/30"], 4, "192.168.50.244"),
    (["192.168.50.240/32", "lan"], 0, "192.168.50.240"),
])
def test_the_nth_address_in_address_order(pool, index, expected):
    assert ADDRESS(pool, index) == expected


@pytest.mark.parametrize("pool, index", [([], 0), (["lan"], 0), (["192.168.50.240/31"], 2)])
def test_a_pool_without_that_address_is_refused(pool, index):
    with pytest.raises(AnsibleFilterError, match="has no address number %d" % index):
        ADDRESS(pool, index)


def test_each_service_has_its_default_address():
    pool = ["192.168.50.240-192.168.50.250"]
    assert [ADDRESS(pool, name) for name in ("registry", "grafana", "kubeflow")] == [
        "192.168.50.240", "192.168.50.241", "192.168.50.242"]
