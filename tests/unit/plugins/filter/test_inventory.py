# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""gpulab.cluster.inventory_problems over Ansible's own hostvars and groups, built from real inventories."""

from __future__ import absolute_import, division, print_function

import os
import textwrap

import pytest
from jinja2 import Undefined

from ansible.errors import AnsibleFilterError
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.vars.hostvars import HostVars
from ansible.vars.manager import VariableManager

from ansible_collections.gpulab.cluster.plugins.filter import inventory as inventory_filter
from ansible_collections.gpulab.cluster.plugins.module_utils._inventory_rules import Unresolved

__metaclass__ = type

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
PRODUCTION = os.path.join(ROOT, "inventories", "production")

CLUSTER_VARS = textwrap.dedent("""\
    gpulab_cluster_name: small
    gpulab_domain: small.lan
    gpulab_node_network: 10.20.0.0/24
    gpulab_control_plane_endpoint: lb01.small.lan
    gpulab_control_plane_port: 6443
    gpulab_pod_subnet: 10.244.0.0/16
    gpulab_service_subnet: 10.96.0.0/12
    gpulab_admin_user: admin
    gpulab_kubernetes_version: "1.33.5"
    gpulab_allow_single_control_plane: true
    gpulab_layers: [preflight, node]
    """)

HOSTS = textwrap.dedent("""\
    all:
      children:
        loadbalancer:
          hosts:
            lb01: {ansible_host: 10.20.0.10}
        control_plane:
          hosts:
            cp01: {ansible_host: 10.20.0.11}
        workers:
          hosts:
            gpu01: {ansible_host: 10.20.0.101}
    """)


def ansible_data(path):
    """(hostvars, groups) exactly as a play sees them."""
    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=[path])
    variable_manager = VariableManager(loader=loader, inventory=inventory)
    return HostVars(inventory, variable_manager, loader), inventory.get_groups_dict()


def write_inventory(tmp_path, hosts=HOSTS, cluster_vars=CLUSTER_VARS):
    (tmp_path / "group_vars" / "all").mkdir(parents=True)
    (tmp_path / "hosts.yml").write_text(hosts)
    (tmp_path / "group_vars" / "all" / "cluster.yml").write_text(cluster_vars)
    return str(tmp_path)


def problems_of(path):
    hostvars, groups = ansible_data(path)
    return inventory_filter.inventory_problems(hostvars, groups)


def test_production_passes():
    assert problems_of(PRODUCTION) == []


def test_production_description_has_every_host_and_value():
    hostvars, groups = ansible_data(PRODUCTION)
    description = inventory_filter.inventory_description(hostvars, groups)
    assert len(description["hostvars"]) == 19
    assert description["hostvars"]["gpu07"]["ansible_host"] == "192.168.50.107"
    assert description["hostvars"]["cp01"]["gpulab_layers"][0] == "preflight"
    assert isinstance(description["hostvars"]["cp01"]["gpulab_layers"], list)


def test_small_inventory_passes(tmp_path):
    assert problems_of(write_inventory(tmp_path)) == []


# (id, hosts.yml, group_vars/all, words of each expected problem)
CASES = [
    ("even control planes",
     HOSTS.replace("cp01: {ansible_host: 10.20.0.11}", "cp01: {ansible_host: 10.20.0.11}\n"
                   "        cp02: {ansible_host: 10.20.0.12}"),
     CLUSTER_VARS, [("control_plane", "cp01", "cp02")]),
    ("duplicate address", HOSTS.replace("10.20.0.101", "10.20.0.11"), CLUSTER_VARS, [("10.20.0.11", "cp01", "gpu01")]),
    ("address from a variable", HOSTS.replace("10.20.0.101", "'{{ \"10.20.0.\" ~ 101 }}'"), CLUSTER_VARS, []),
    ("undefined variable in ansible_host", HOSTS.replace("10.20.0.101", "'{{ gpu01_address }}'"), CLUSTER_VARS,
     [("ansible_host", "gpu01", "gpu01_address")]),
    ("undefined variable in a cluster value", HOSTS,
     CLUSTER_VARS.replace("small.lan\n", "'{{ site_domain }}'\n", 1), [("gpulab_domain", "every host", "site_domain")]),
    ("undefined variable inside a list", HOSTS,
     CLUSTER_VARS.replace("[preflight, node]", "[preflight, '{{ extra_layer }}']"),
     [("gpulab_layers", "every host", "extra_layer")]),
    ("endpoint is the control plane", HOSTS, CLUSTER_VARS.replace("lb01.small.lan", "cp01.small.lan"),
     [("cp01.small.lan", "cp01", "lb01")]),
    ("pod subnet overlaps the node network", HOSTS, CLUSTER_VARS.replace("10.244.0.0/16", "10.20.0.0/16"),
     [("gpulab_pod_subnet", "10.20.0.0/16", "gpulab_node_network")]),
]


@pytest.mark.parametrize("hosts, cluster_vars, expected", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_mistake_is_named(tmp_path, hosts, cluster_vars, expected):
    problems = problems_of(write_inventory(tmp_path, hosts, cluster_vars))
    assert len(problems) == len(expected), problems
    for words in expected:
        assert any(all(word in problem for word in words) for problem in problems), (words, problems)


def test_groups_naming_an_unknown_host(tmp_path):
    hostvars, groups = ansible_data(write_inventory(tmp_path))
    groups = dict(groups)
    groups["all"] = list(groups["all"]) + ["ghost"]
    groups["workers"] = list(groups["workers"]) + ["ghost"]
    problems = inventory_filter.inventory_problems(hostvars, groups)
    # ghost has no variables at all: every cluster-wide one is reported as not set on it, and its address.
    assert any("ghost" in p and "no ansible_host" in p for p in problems)
    assert any("gpulab_domain" in p and "not set on ghost" in p for p in problems)
    assert all("ghost" in p for p in problems)


def test_plain_mappings():
    hostvars = {
        "lb01": {"ansible_host": "10.0.0.10", "unrelated": "ignored"},
        "cp01": "not a mapping",
        "gpu01": {"ansible_host": Undefined(name="gpu01_address")},
    }
    groups = {"loadbalancer": ["lb01"], "control_plane": ["cp01", "cp02"], "workers": ["gpu01"]}
    description = inventory_filter.inventory_description(hostvars, groups)
    assert list(description["hostvars"]) == ["lb01", "cp01", "gpu01"]
    assert description["hostvars"]["lb01"] == {"ansible_host": "10.0.0.10"}
    assert description["hostvars"]["cp01"] == {}
    assert description["hostvars"]["gpu01"]["ansible_host"] == Unresolved("'gpu01_address' is undefined")
    problems = inventory_filter.inventory_problems(hostvars, groups)
    assert any("gpu01" in p and "gpu01_address" in p for p in problems)
    assert any("cp02" in p and "no ansible_host" in p for p in problems)


def test_plain_values_are_copied():
    value = {"a": ("x", ["y"]), "b": Undefined(name="b_value")}
    assert inventory_filter._plain(value) == {"a": ["x", ["y"]], "b": Unresolved("'b_value' is undefined")}


@pytest.mark.parametrize("hostvars, groups, culprit", [
    (["lb01"], {}, "hostvars"),
    ({}, "all", "groups"),
])
def test_wrong_arguments(hostvars, groups, culprit):
    with pytest.raises(AnsibleFilterError, match=culprit):
        inventory_filter.inventory_problems(hostvars, groups)


def test_filter_is_exposed():
    filters = inventory_filter.FilterModule().filters()
    assert filters["inventory_problems"] is inventory_filter.inventory_problems
