# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The inventory rules, table-driven: production passes, each mistake is named in a problem."""

from __future__ import absolute_import, division, print_function

import copy
import json
import os
import subprocess
import sys

import pytest

from ansible_collections.gpulab.cluster.plugins.module_utils import _inventory_rules as rules

__metaclass__ = type

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
ANSIBLE_INVENTORY = os.path.join(os.path.dirname(sys.executable), "ansible-inventory")


def _members(listing, group):
    """Hosts of a group of `ansible-inventory --list`, children included, in inventory order."""
    entry = listing.get(group, {})
    hosts = list(entry.get("hosts", []))
    for child in entry.get("children", []):
        hosts.extend(host for host in _members(listing, child) if host not in hosts)
    return hosts


def load_inventory(path):
    """The rules' description of an inventory, from a real `ansible-inventory --list`."""
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
    output = subprocess.run([ANSIBLE_INVENTORY, "-i", path, "--list"], cwd=ROOT, env=env, check=True,
                            stdout=subprocess.PIPE, universal_newlines=True).stdout
    listing = json.loads(output)
    groups = dict((name, _members(listing, name)) for name in listing if name != "_meta")
    hostvars = listing["_meta"]["hostvars"]
    return {"groups": groups,
            "hostvars": dict((host, dict((k, v) for k, v in hostvars[host].items() if k in rules.VARIABLES))
                             for host in groups["all"])}


@pytest.fixture(scope="module")
def production():
    return load_inventory(os.path.join(ROOT, "inventories", "production"))


class TaggedStr(str):
    """Stands in for the str subclasses Ansible hands over (tagged or lazy values)."""


# Mutations of the production description, composable.

def set_var(name, value):
    def apply(inv):
        for hvars in inv["hostvars"].values():
            hvars[name] = value
    return apply


def del_var(name):
    def apply(inv):
        for hvars in inv["hostvars"].values():
            hvars.pop(name, None)
    return apply


def set_host_var(host, name, value):
    def apply(inv):
        inv["hostvars"][host][name] = value
    return apply


def del_host_var(host, name):
    def apply(inv):
        del inv["hostvars"][host][name]
    return apply


def add_host(host, groups, address):
    def apply(inv):
        hvars = copy.deepcopy(inv["hostvars"]["lb01"])
        hvars["ansible_host"] = address
        inv["hostvars"][host] = hvars
        for group in ["all"] + list(groups):
            inv["groups"].setdefault(group, []).append(host)
    return apply


def drop_hosts(*hosts):
    def apply(inv):
        for host in hosts:
            inv["hostvars"].pop(host)
            for members in inv["groups"].values():
                if host in members:
                    members.remove(host)
    return apply


def join_group(host, group):
    def apply(inv):
        inv["groups"][group].append(host)
    return apply


def drop_group(group):
    def apply(inv):
        for host in inv["groups"].pop(group):
            inv["hostvars"].pop(host)
            for members in inv["groups"].values():
                if host in members:
                    members.remove(host)
    return apply


def rename_host(old, new):
    def apply(inv):
        inv["hostvars"][new] = inv["hostvars"].pop(old)
        for members in inv["groups"].values():
            if old in members:
                members[members.index(old)] = new
    return apply


def workers(count):
    return drop_hosts(*["gpu%02d" % number for number in range(count + 1, 16)])


# (id, mutations, expected): expected is a list of word tuples, each tuple found together in one problem,
# and the problems are exactly that many.
CASES = [
    # groups
    ("group missing", [drop_group("workers")], [("workers", "missing"), ("storage_osd", "no hosts")]),
    ("group empty", [drop_group("workers"), lambda inv: inv["groups"].__setitem__("workers", [])],
     [("workers", "no hosts"), ("storage_osd", "no hosts")]),
    ("three load balancers", [add_host("lb02", ["loadbalancer"], "192.168.50.8"),
                              add_host("lb03", ["loadbalancer"], "192.168.50.9")],
     [("loadbalancer", "lb01", "lb02", "lb03")]),
    ("pair without vip", [add_host("lb02", ["loadbalancer"], "192.168.50.9")],
     [("gpulab_control_plane_vip", "lb01", "lb02", "keepalived"), ("lb01.gpulab.lan", "lb01", "two")]),
    ("pair with vip", [add_host("lb02", ["loadbalancer"], "192.168.50.9"),
                       set_var("gpulab_control_plane_vip", "192.168.50.5"),
                       set_var("gpulab_control_plane_endpoint", "192.168.50.5")], []),
    ("pair, endpoint not the vip", [add_host("lb02", ["loadbalancer"], "192.168.50.9"),
                                    set_var("gpulab_control_plane_vip", "192.168.50.5"),
                                    set_var("gpulab_control_plane_endpoint", "lb02")],
     [("'lb02'", "192.168.50.5")]),
    ("two control planes", [drop_hosts("cp03")], [("control_plane", "cp01", "cp02", "odd", "3 or 5")]),
    ("four control planes", [add_host("cp04", ["control_plane"], "192.168.50.14")],
     [("control_plane", "cp04", "odd")]),
    ("one control plane", [drop_hosts("cp02", "cp03")], [("cp01", "gpulab_allow_single_control_plane")]),
    ("one control plane allowed", [drop_hosts("cp02", "cp03"), set_var("gpulab_allow_single_control_plane", True)],
     []),
    ("one control plane allowed by -e", [drop_hosts("cp02", "cp03"),
                                         set_var("gpulab_allow_single_control_plane", "yes")], []),
    ("two control planes allowed", [drop_hosts("cp03"), set_var("gpulab_allow_single_control_plane", True)],
     [("cp01", "cp02", "1, 3 or 5")]),
    ("one control plane, flag false", [drop_hosts("cp02", "cp03"),
                                       set_var("gpulab_allow_single_control_plane", "false")],
     [("cp01", "gpulab_allow_single_control_plane")]),
    ("host in two roles", [join_group("cp03", "workers")], [("cp03", "control_plane", "workers")]),
    ("host in three roles", [join_group("gpu01", "loadbalancer"), join_group("gpu01", "control_plane"),
                             drop_hosts("cp03")],
     [("gpu01", "loadbalancer", "control_plane", "workers"), ("gpulab_control_plane_vip", "lb01", "gpu01"),
      ("'lb01.gpulab.lan'", "two load balancers")]),
    ("host without role", [add_host("backup01", [], "192.168.50.200")], [("backup01", "none of the groups")]),
    # names
    ("uppercase host name", [rename_host("gpu01", "GPU01")], [("'GPU01'", "'gpu01'")]),
    ("host named by its FQDN", [rename_host("gpu01", "gpu01.gpulab.lan")], [("'gpu01.gpulab.lan'", "short name")]),
    ("underscore in host name", [rename_host("gpu01", "gpu_01")], [("'gpu_01'", "a-z, 0-9")]),
    ("FQDN too long", [set_var("gpulab_domain", ".".join(["a" * 62] + ["a" * 61] * 3)),  # 248 characters
                       set_var("gpulab_control_plane_endpoint", "lb01")],
     [("gpu%02d" % n, "253") for n in range(1, 16)]),
    ("cluster name", [set_var("gpulab_cluster_name", "GPU Lab")], [("gpulab_cluster_name", "'GPU Lab'")]),
    ("domain with empty label", [set_var("gpulab_domain", "gpulab..lan")], [("gpulab_domain", "'gpulab..lan'", "''")]),
    ("domain with trailing dot", [set_var("gpulab_domain", "gpulab.lan.")], [("gpulab_domain", "trailing dot")]),
    ("domain uppercase", [set_var("gpulab_domain", "GPULAB.lan"), set_var("gpulab_control_plane_endpoint",
                                                                          "lb01.GPULAB.lan")],
     [("gpulab_domain", "'GPULAB'")]),
    ("domain too long", [set_var("gpulab_domain", ".".join(["a" * 63] * 4))], [("gpulab_domain", "255 characters")]),
    ("domain broken, endpoint a control plane", [set_var("gpulab_domain", "gpulab..lan"),
                                                 set_var("gpulab_control_plane_endpoint", "cp01.gpulab..lan")],
     [("gpulab_domain",), ("'cp01.gpulab..lan'", "cp01", "lb01")]),
    ("admin user", [set_var("gpulab_admin_user", "Admin User")], [("gpulab_admin_user", "'Admin User'")]),
    ("kubernetes version with a v", [set_var("gpulab_kubernetes_version", "v1.33.5")],
     [("gpulab_kubernetes_version", "'v1.33.5'", "1.33.5")]),
    ("kubernetes version without patch", [set_var("gpulab_kubernetes_version", "1.33")],
     [("gpulab_kubernetes_version", "'1.33'")]),
    # addresses
    ("ansible_host missing", [del_host_var("gpu03", "ansible_host")], [("gpu03", "ansible_host", "192.168.50.0/24")]),
    ("ansible_host empty", [set_host_var("gpu03", "ansible_host", " ")], [("gpu03", "no ansible_host")]),
    ("ansible_host missing, network broken", [del_host_var("gpu03", "ansible_host"),
                                              set_var("gpulab_node_network", "192.168.50.0")],
     [("gpulab_node_network", "'192.168.50.0'", "CIDR"), ("gpu03", "no ansible_host")]),
    ("ansible_host a name", [set_host_var("gpu03", "ansible_host", "gpu03.lan")], [("gpu03", "'gpu03.lan'", "IPv4")]),
    ("ansible_host a number", [set_host_var("gpu03", "ansible_host", 42)], [("gpu03", "42", "IPv4")]),
    ("ansible_host out of range", [set_host_var("gpu03", "ansible_host", "192.168.50.300")],
     [("gpu03", "192.168.50.300")]),
    ("duplicate address", [set_host_var("gpu02", "ansible_host", "192.168.50.101")],
     [("192.168.50.101", "gpu01", "gpu02")]),
    ("address outside the network", [set_host_var("gpu07", "ansible_host", "10.0.0.7")],
     [("gpu07", "10.0.0.7", "192.168.50.0/24", "outside")]),
    ("network address", [set_host_var("gpu07", "ansible_host", "192.168.50.0")], [("gpu07", "192.168.50.0", "network")]),
    ("broadcast address", [set_host_var("gpu07", "ansible_host", "192.168.50.255")],
     [("gpu07", "192.168.50.255", "broadcast")]),
    ("/31 node network has no broadcast", [drop_hosts(*["gpu%02d" % n for n in range(2, 16)]),
                                           drop_hosts("cp02", "cp03", "lb01"),
                                           set_var("gpulab_allow_single_control_plane", True),
                                           set_var("gpulab_node_network", "192.168.50.10/31"),
                                           set_host_var("cp01", "ansible_host", "192.168.50.10"),
                                           set_host_var("gpu01", "ansible_host", "192.168.50.11")],
     [("loadbalancer", "no hosts"), ("gpulab_control_plane_endpoint", "'lb01.gpulab.lan'"),
      ("storage_osd", "1 host", "gpu01", "at least 3"),
      ("gpulab_metallb_pool item 1", "not inside gpulab_node_network 192.168.50.10/31")]),
    # variables
    ("port a word", [set_var("gpulab_control_plane_port", "abc")], [("gpulab_control_plane_port", "'abc'", "integer")]),
    ("port a bool", [set_var("gpulab_control_plane_port", True)], [("gpulab_control_plane_port", "True")]),
    ("port a digit string", [set_var("gpulab_control_plane_port", "6443")], []),
    ("port zero", [set_var("gpulab_control_plane_port", 0)], [("gpulab_control_plane_port", "0", "1 to 65535")]),
    ("port too high", [set_var("gpulab_control_plane_port", "70000")], [("gpulab_control_plane_port", "70000")]),
    ("domain empty in YAML", [set_var("gpulab_domain", None)], [("gpulab_domain", "None", "string")]),
    ("domain a list", [set_var("gpulab_domain", ["gpulab", "lan"])], [("gpulab_domain", "['gpulab', 'lan']")]),
    ("domain a number", [set_var("gpulab_domain", 42)], [("gpulab_domain", "42", "string")]),
    ("cluster name empty", [set_var("gpulab_cluster_name", "")], [("gpulab_cluster_name", "''", "non-empty")]),
    ("layers a string", [set_var("gpulab_layers", "node")], [("gpulab_layers", "'node'", "list")]),
    ("layers a mapping", [set_var("gpulab_layers", {"node": True})], [("gpulab_layers", "{'node': True}", "dict")]),
    ("layers a tuple", [set_var("gpulab_layers", ("preflight", "node"))], []),
    ("flag a word", [set_var("gpulab_allow_single_control_plane", "maybe")],
     [("gpulab_allow_single_control_plane", "'maybe'", "true or false")]),
    ("value differs on one host", [set_host_var("gpu03", "gpulab_node_network", "10.0.0.0/24")],
     [("gpulab_node_network", "'10.0.0.0/24' on gpu03", "group_vars/all")]),
    ("port a string on one host", [set_host_var("gpu03", "gpulab_control_plane_port", "6443")],
     [("gpulab_control_plane_port", "'6443' on gpu03")]),
    ("same text, another str class", [set_host_var("gpu03", "gpulab_domain", TaggedStr("gpulab.lan"))], []),
    ("value missing on one host", [del_host_var("gpu03", "gpulab_domain")], [("gpulab_domain", "not set on gpu03")]),
    # networks
    ("pod subnet without prefix", [set_var("gpulab_pod_subnet", "10.244.0.0")], [("gpulab_pod_subnet", "'10.244.0.0'")]),
    ("pod subnet with host bits", [set_var("gpulab_pod_subnet", "10.244.0.1/16")],
     [("gpulab_pod_subnet", "'10.244.0.1/16'", "write 10.244.0.0/16")]),
    ("pod subnet garbage", [set_var("gpulab_pod_subnet", "banana/16")], [("gpulab_pod_subnet", "'banana/16'")]),
    ("pod subnet loopback", [set_var("gpulab_pod_subnet", "127.0.0.0/16")], [("gpulab_pod_subnet", "loopback")]),
    ("service subnet multicast", [set_var("gpulab_service_subnet", "224.0.0.0/12")],
     [("gpulab_service_subnet", "multicast")]),
    ("pod subnet overlaps node network", [set_var("gpulab_pod_subnet", "192.168.0.0/16")],
     [("gpulab_pod_subnet", "192.168.0.0/16", "gpulab_node_network", "192.168.50.0/24")]),
    ("pod subnet overlaps service subnet", [set_var("gpulab_service_subnet", "10.244.0.0/16")],
     [("gpulab_pod_subnet", "10.244.0.0/16", "gpulab_service_subnet")]),
    ("node network overlaps service subnet", [set_var("gpulab_service_subnet", "192.168.0.0/16")],
     [("gpulab_node_network", "gpulab_service_subnet", "192.168.0.0/16")]),
    ("pod subnet too small", [set_var("gpulab_pod_subnet", "10.244.0.0/20")], [("gpulab_pod_subnet", "18 nodes", "/19")]),
    ("pod subnet just large enough", [set_var("gpulab_pod_subnet", "10.244.0.0/19")], []),
    ("pod subnet /24 for one node", [drop_hosts(*["gpu%02d" % n for n in range(2, 16)]), drop_hosts("cp02", "cp03"),
                                     set_var("gpulab_allow_single_control_plane", True),
                                     set_var("gpulab_pod_subnet", "10.244.0.0/25")],
     [("gpulab_pod_subnet", "10.244.0.0/25", "/24"), ("storage_osd", "1 host")]),
    ("service subnet too large", [set_var("gpulab_service_subnet", "11.0.0.0/8")], [("gpulab_service_subnet", "/8")]),
    ("service subnet too small", [set_var("gpulab_service_subnet", "10.96.0.0/29")],
     [("gpulab_service_subnet", "10.96.0.0/29")]),
    # endpoint and VIP
    ("endpoint a control plane FQDN", [set_var("gpulab_control_plane_endpoint", "cp01.gpulab.lan")],
     [("'cp01.gpulab.lan'", "control-plane host cp01", "lb01")]),
    ("endpoint a control plane name", [set_var("gpulab_control_plane_endpoint", "cp02")], [("'cp02'", "cp02")]),
    ("endpoint a control plane address", [set_var("gpulab_control_plane_endpoint", "192.168.50.13")],
     [("'192.168.50.13'", "cp03")]),
    ("endpoint a worker", [set_var("gpulab_control_plane_endpoint", "gpu01.gpulab.lan")], [("worker gpu01",)]),
    ("endpoint the LB name", [set_var("gpulab_control_plane_endpoint", "lb01")], []),
    ("endpoint the LB address", [set_var("gpulab_control_plane_endpoint", "192.168.50.10")], []),
    ("endpoint the LB FQDN, uppercase, dot", [set_var("gpulab_control_plane_endpoint", "LB01.gpulab.lan.")], []),
    ("endpoint with scheme and port", [set_var("gpulab_control_plane_endpoint", "https://lb01.gpulab.lan:6443")],
     [("gpulab_control_plane_endpoint", "gpulab_control_plane_port")]),
    ("endpoint unknown", [set_var("gpulab_control_plane_endpoint", "k8s.gpulab.lan")],
     [("'k8s.gpulab.lan'", "lb01.gpulab.lan", "192.168.50.10")]),
    ("endpoint unknown, vip set", [set_var("gpulab_control_plane_endpoint", "k8s.gpulab.lan"),
                                   set_var("gpulab_control_plane_vip", "192.168.50.5")],
     [("'k8s.gpulab.lan'", "gpulab_control_plane_vip 192.168.50.5")]),
    ("endpoint unknown, no load balancer", [drop_group("loadbalancer"),
                                            lambda inv: inv["groups"].__setitem__("loadbalancer", [])],
     [("loadbalancer", "no hosts"), ("'lb01.gpulab.lan'", "group loadbalancer")]),
    ("endpoint the vip of one LB", [set_var("gpulab_control_plane_vip", "192.168.50.5"),
                                    set_var("gpulab_control_plane_endpoint", "192.168.50.5")], []),
    ("vip not an address", [set_var("gpulab_control_plane_vip", "vip.gpulab.lan")],
     [("gpulab_control_plane_vip", "'vip.gpulab.lan'")]),
    ("vip outside the network", [set_var("gpulab_control_plane_vip", "10.0.0.5")],
     [("gpulab_control_plane_vip", "10.0.0.5", "192.168.50.0/24")]),
    ("vip the broadcast address", [set_var("gpulab_control_plane_vip", "192.168.50.255")],
     [("gpulab_control_plane_vip", "192.168.50.255", "broadcast")]),
    ("vip the network address", [set_var("gpulab_control_plane_vip", "192.168.50.0")],
     [("gpulab_control_plane_vip", "192.168.50.0", "network address")]),
    ("vip a host's address", [set_var("gpulab_control_plane_vip", "192.168.50.11")],
     [("gpulab_control_plane_vip", "192.168.50.11", "cp01")]),
    ("vip a host's address, network broken", [set_var("gpulab_control_plane_vip", "192.168.50.11"),
                                              set_var("gpulab_node_network", "nowhere")],
     [("gpulab_node_network", "'nowhere'"), ("gpulab_control_plane_vip", "cp01")]),
    ("vip a number", [set_var("gpulab_control_plane_vip", 5)], [("gpulab_control_plane_vip", "5", "string")]),
    # layers
    ("layer misspelt", [set_var("gpulab_layers", ["preflight", "nvdia"])], [("'nvdia'", "'nvidia'", "schedule")]),
    ("layer unknown", [set_var("gpulab_layers", ["preflight", "zzz"])], [("'zzz'", "item 2", "preflight, node")]),
    ("layer twice", [set_var("gpulab_layers", ["preflight", "node", "node"])], [("'node'", "item 3", "once")]),
    ("layer not a name", [set_var("gpulab_layers", ["preflight", 42])], [("gpulab_layers", "item 2", "42")]),
    ("layers out of order", [set_var("gpulab_layers", ["node", "preflight", "cni"])],
     [("gpulab_layers", "preflight, node, cni")]),
    ("no layers", [set_var("gpulab_layers", [])], []),
    # gradual roll-out
    ("roll-out of four", [set_var("gpulab_rollout_workers", 4)], []),
    ("roll-out as text", [set_var("gpulab_rollout_workers", "8")], []),
    ("roll-out of all", [set_var("gpulab_rollout_workers", "all")], []),
    ("roll-out of two with storage", [set_var("gpulab_rollout_workers", 2)],
     [("gpulab_rollout_workers is 2", "2 hosts of group storage_osd (gpu01 and gpu02)", "first 3 OSD hosts")]),
    ("roll-out of two without storage", [set_var("gpulab_rollout_workers", 2),
                                         set_var("gpulab_layers", ["preflight", "node", "kubernetes"])], []),
    ("roll-out beyond the workers", [set_var("gpulab_rollout_workers", 16)],
     [("gpulab_rollout_workers is 16", "15 host(s)", "up to 15")]),
    ("roll-out of none", [set_var("gpulab_rollout_workers", 0)], [("gpulab_rollout_workers is 0", "at least one")]),
    ("roll-out a word", [set_var("gpulab_rollout_workers", "half")], [("gpulab_rollout_workers is 'half'", "'all'")]),
    ("roll-out true", [set_var("gpulab_rollout_workers", True)], [("gpulab_rollout_workers is True",)]),
    # tenants (the rules themselves: test__tenants.py)
    ("tenant quota below its LimitRange", [set_var("gpulab_tenants", [
        {"name": "tiny", "owner": "a@gpulab.lan", "quota": {"cpu": "1", "memory": "8Gi", "gpu": 0}}])],
     [("gpulab_tenants tiny.quota.cpu '1'", "max.cpu '4'")]),
    ("tenants not a list", [set_var("gpulab_tenants", "vision")], [("gpulab_tenants is 'vision'", "a list")]),
    # platform: MetalLB's pool and the registry's address
    ("pool as a range", [set_var("gpulab_metallb_pool", ["192.168.50.240-192.168.50.250"])], []),
    ("pool as a network", [set_var("gpulab_metallb_pool", ["192.168.50.240/29"])], []),
    ("pool outside the node network", [set_var("gpulab_metallb_pool", ["10.0.0.1-10.0.0.9"])],
     [("gpulab_metallb_pool item 1 10.0.0.1-10.0.0.9", "not inside gpulab_node_network 192.168.50.0/24")]),
    ("pool over the service subnet", [set_var("gpulab_metallb_pool", ["10.96.0.0/28"])],
     [("item 1 10.96.0.0/28 (10.96.0.0-10.96.0.15)", "not inside")]),
    ("pool over the service subnet, node network broken", [set_var("gpulab_metallb_pool", ["10.96.0.0/28"]),
                                                           set_var("gpulab_node_network", "lan")],
     [("gpulab_node_network",), ("item 1 10.96.0.0/28 (10.96.0.0-10.96.0.15) overlaps gpulab_service_subnet",)]),
    ("pool over the nodes", [set_var("gpulab_metallb_pool", ["192.168.50.100-192.168.50.110"])],
     [("item 1 192.168.50.100-192.168.50.110", "ansible_host of gpu01", "gpu06 and 4 more")]),
    ("pool with the broadcast", [set_var("gpulab_metallb_pool", ["192.168.50.248/29"])],
     [("item 1 192.168.50.248/29", "broadcast address")]),
    ("pool backwards", [set_var("gpulab_metallb_pool", ["192.168.50.250-192.168.50.240"])],
     [("item 1", "starts after it ends")]),
    ("pool host bits", [set_var("gpulab_metallb_pool", ["192.168.50.241/29"])],
     [("item 1", "host bits", "192.168.50.240/29")]),
    ("pool twice", [set_var("gpulab_metallb_pool", ["192.168.50.240/29", "192.168.50.243-192.168.50.245"])],
     [("item 2 192.168.50.243-192.168.50.245", "overlaps item 1")]),
    ("pool a word", [set_var("gpulab_metallb_pool", ["lan"])], [("item 1 'lan' is neither an IPv4 CIDR network nor a range",)]),
    ("platform without a pool", [set_var("gpulab_layers", ["preflight", "platform"]),
                                 del_var("gpulab_metallb_pool")],
     [("gpulab_layers has 'platform' but gpulab_metallb_pool is not set",)]),
    ("registry outside the pool", [set_var("gpulab_metallb_pool", ["192.168.50.240/29"]),
                                   set_var("gpulab_registry_address", "192.168.50.250")],
     [("gpulab_registry_address 192.168.50.250 is not in gpulab_metallb_pool",)]),
    ("grafana where the registry is", [set_var("gpulab_grafana_address", "192.168.50.240")],
     [("gpulab_grafana_address 192.168.50.240 is also gpulab_registry_address",)]),
    ("kubeflow outside the pool", [set_var("gpulab_kubeflow_address", "192.168.50.200")],
     [("gpulab_kubeflow_address 192.168.50.200 is not in gpulab_metallb_pool",)]),
    # storage: OSD hosts and their devices
    ("OSD host without devices", [del_host_var("gpu03", "storage_osd_devices")],
     [("host gpu03", "storage_osd", "storage_osd_devices is not set")]),
    ("OSD host with no device listed", [set_host_var("gpu03", "storage_osd_devices", [])],
     [("host gpu03", "storage_osd_devices is empty")]),
    ("OSD devices null", [set_host_var("gpu03", "storage_osd_devices", None)],
     [("host gpu03", "storage_osd_devices is not set")]),
    ("OSD device a kernel name", [set_host_var("gpu03", "storage_osd_devices", ["sda5"])],
     [("gpu03", "storage_osd_devices", "'sda5'", "/dev/")]),
    ("OSD device not a string", [set_host_var("gpu03", "storage_osd_devices", [5])],
     [("gpu03", "storage_osd_devices", "5", "/dev/")]),
    ("OSD devices a string", [set_host_var("gpu03", "storage_osd_devices", "/dev/sda5")],
     [("gpu03", "storage_osd_devices", "'/dev/sda5'", "list")]),
    ("OSD device twice", [set_host_var("gpu03", "storage_osd_devices", ["/dev/sdb", "/dev/sdb"])],
     [("gpu03", "'/dev/sdb' twice")]),
    ("two OSD devices", [set_host_var("gpu03", "storage_osd_devices", ["/dev/sdb", "/dev/disk/by-partlabel/data"])],
     []),
    ("force for a device not listed", [set_host_var("gpu07", "storage_osd_force_devices", ["/dev/sdb"])],
     [("gpu07", "storage_osd_force_devices", "/dev/sdb", "storage_osd_devices")]),
    ("force for the listed device", [set_host_var("gpu07", "storage_osd_force_devices",
                                                  ["/dev/disk/by-partlabel/data"])], []),
    ("force not a list", [set_host_var("gpu07", "storage_osd_force_devices", "yes")],
     [("gpu07", "storage_osd_force_devices", "'yes'", "list")]),
    ("force, devices broken", [set_host_var("gpu07", "storage_osd_devices", "data"),
                               set_host_var("gpu07", "storage_osd_force_devices", ["/dev/sdb"])],
     [("gpu07", "storage_osd_devices", "'data'")]),
    ("control plane as OSD host", [join_group("cp01", "storage_osd")], [("host cp01", "storage_osd", "workers")]),
    ("two control planes as OSD hosts", [join_group("cp01", "storage_osd"), join_group("cp02", "storage_osd")],
     [("hosts cp01 and cp02", "are in group storage_osd", "them")]),
    ("two OSD hosts", [lambda inv: inv["groups"].__setitem__("storage_osd", ["gpu01", "gpu02"])],
     [("storage_osd", "2 hosts", "gpu01 and gpu02", "at least 3")]),
    ("no OSD group", [lambda inv: inv["groups"].pop("storage_osd")], [("'storage'", "storage_osd", "no hosts")]),
    ("no OSD group, no storage layer", [lambda inv: inv["groups"].pop("storage_osd"),
                                        set_var("gpulab_layers", ["preflight", "node"])], []),
    ("OSD devices missing, no storage layer", [del_host_var("gpu03", "storage_osd_devices"),
                                               set_var("gpulab_layers", ["preflight", "node", "cni"])], []),
    ("OSD devices unresolved", [set_host_var("gpu03", "storage_osd_devices", rules.Unresolved("'d' is undefined"))],
     [("storage_osd_devices", "gpu03", "'d' is undefined")]),
    ("force unresolved", [set_host_var("gpu03", "storage_osd_force_devices", rules.Unresolved("'f' is undefined"))],
     [("storage_osd_force_devices", "gpu03", "'f' is undefined")]),
    # values the caller could not resolve
    ("unresolved everywhere", [set_var("gpulab_domain", rules.Unresolved("'site_domain' is undefined"))],
     [("gpulab_domain", "every host", "'site_domain' is undefined")]),
    ("unresolved on one host", [set_host_var("gpu03", "gpulab_domain", rules.Unresolved("'x' is undefined"))],
     [("gpulab_domain", "gpu03", "'x' is undefined")]),
    ("unresolved address", [set_host_var("gpu03", "ansible_host", rules.Unresolved("'ip' is undefined")),
                            set_host_var("gpu04", "ansible_host", rules.Unresolved("'ip4' is undefined"))],
     [("ansible_host", "gpu03", "'ip' is undefined"), ("ansible_host", "gpu04", "'ip4' is undefined")]),
    ("unresolved twice", [set_host_var("gpu03", "ansible_host", rules.Unresolved("'ip' is undefined")),
                          set_host_var("gpu04", "ansible_host", rules.Unresolved("'ip' is undefined"))],
     [("ansible_host", "gpu03 and gpu04", "'ip' is undefined")]),
]

REQUIRED = [name for name, _kind, required in rules.CLUSTER_VARIABLES if required]


def _apply(inventory, mutations):
    inventory = copy.deepcopy(inventory)
    for mutate in mutations:
        mutate(inventory)
    return inventory


def _assert_named(problems, expected):
    assert len(problems) == len(expected), "\n".join(problems)
    for words in expected:
        assert any(all(word in problem for word in words) for problem in problems), (words, problems)


def test_production_passes(production):
    assert rules.validate(production) == []
    assert len(production["groups"]["all"]) == 19


@pytest.mark.parametrize("mutations, expected", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_mistake_is_named(production, mutations, expected):
    _assert_named(rules.validate(_apply(production, mutations)), expected)


@pytest.mark.parametrize("name", REQUIRED)
def test_missing_variable_is_named(production, name):
    problems = rules.validate(_apply(production, [del_var(name)]))
    _assert_named(problems, [("required variable", name)])


def test_problems_follow_inventory_order(production):
    inventory = _apply(production, [set_host_var("gpu09", "ansible_host", "10.0.0.9"),
                                    set_host_var("cp02", "ansible_host", "10.0.0.2"),
                                    drop_hosts("cp03")])
    problems = rules.validate(inventory)
    assert [p.split()[0] for p in problems] == ["group", "host", "host"]
    assert "cp02" in problems[1] and "gpu09" in problems[2]


def test_empty_inventory_names_the_groups():
    problems = rules.validate({})
    assert len(problems) == 3
    for group, problem in zip(rules.ROLE_GROUPS, problems):
        assert group in problem


def test_description_without_all_group():
    inventory = {"groups": {"loadbalancer": ["lb01"], "control_plane": ["cp01"], "workers": ["gpu01"]},
                 "hostvars": {"lb01": {"ansible_host": "10.0.0.10"}, "cp01": {"ansible_host": "10.0.0.11"},
                              "gpu01": {"ansible_host": "10.0.0.101"}, "extra": None}}
    view = rules.InventoryView(inventory)
    assert view.hosts == ["lb01", "cp01", "gpu01", "extra"]
    problems = rules.validate(inventory)
    assert any("extra" in p and "no ansible_host" in p for p in problems)
    assert any("host extra is in none" in p for p in problems)
    assert any("required variable gpulab_domain" in p for p in problems)


def test_many_hosts_are_abbreviated(production):
    inventory = _apply(production, [set_host_var("gpu%02d" % n, "gpulab_domain", "other.lan") for n in range(1, 9)])
    problem = rules.validate(inventory)[0]
    assert "gpu01, gpu02, gpu03, gpu04, gpu05, gpu06 and 2 more" in problem


def test_identical_problems_are_reported_once(monkeypatch):
    monkeypatch.setattr(rules, "RULES", (rules.check_required_groups, rules.check_required_groups))
    assert len(rules.validate({})) == 3


def test_every_rule_is_run_and_documented():
    names = [rule.__name__ for rule in rules.RULES]
    assert len(set(names)) == len(names)
    assert all(rule.__doc__ for rule in rules.RULES)
    assert sorted(names) == sorted(name for name in dir(rules) if name.startswith("check_"))


def test_unresolved_value():
    first, same, other = rules.Unresolved("a"), rules.Unresolved("a"), rules.Unresolved("b")
    assert first == same
    assert (first != same) is False
    assert first != other and first != "a"
    assert hash(first) == hash(same)
    assert repr(first) == "Unresolved('a')"
