# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The inventory rules of gpulab.cluster, as pure functions.

The input is a plain description of the inventory::

    {"groups": {"all": ["lb01", ...], "loadbalancer": ["lb01"], ...},
     "hostvars": {"lb01": {"ansible_host": "192.168.50.10", "gpulab_domain": "gpulab.lan", ...}, ...}}

``validate(inventory)`` returns every problem as a sentence that names the group, host, variable or
address at fault and what fixes it; an empty list means the inventory is fine. Each ``check_*`` function
is one rule and takes the ``InventoryView`` that ``validate`` builds. Rules look only at values that the
earlier rules accept (a malformed network is reported once, not again by every rule that uses it).

Cluster-wide variables (``gpulab_*``) are read from every host: the value most hosts share is the one the
rules use, and hosts that disagree are reported. A value the caller could not resolve (a template error)
is passed as ``Unresolved(reason)`` and reported as such.
"""

from __future__ import absolute_import, division, print_function

import difflib
import ipaddress
import re

from ansible_collections.gpulab.cluster.plugins.module_utils import _platform, _rollout, _schedule, _tenants

__metaclass__ = type

ROLE_GROUPS = ("loadbalancer", "control_plane", "workers")

# The layers of site.yml, in the order it runs them.
KNOWN_LAYERS = (
    "preflight",
    "node",
    "container_runtime",
    "nvidia",
    "loadbalancer",
    "kubernetes",
    "cni",
    "storage",
    "gpu",
    "kubeflow",
    "platform",
    "tenants",
    "schedule",
)

TEXT = "text"
PORT = "port"
LIST = "list"
BOOL = "bool"
DICT = "dict"
ANY = "any"  # checked by its own rule

# Cluster-wide variables: name -> (kind, required).
CLUSTER_VARIABLES = (
    ("gpulab_cluster_name", TEXT, True),
    ("gpulab_domain", TEXT, True),
    ("gpulab_node_network", TEXT, True),
    ("gpulab_control_plane_endpoint", TEXT, True),
    ("gpulab_control_plane_port", PORT, True),
    ("gpulab_pod_subnet", TEXT, True),
    ("gpulab_service_subnet", TEXT, True),
    ("gpulab_admin_user", TEXT, True),
    ("gpulab_kubernetes_version", TEXT, True),
    ("gpulab_layers", LIST, True),
    ("gpulab_control_plane_vip", TEXT, False),
    ("gpulab_allow_single_control_plane", BOOL, False),
    ("gpulab_rollout_workers", ANY, False),
    ("gpulab_tenants", LIST, False),
    ("gpulab_timezone", TEXT, False),
    ("gpulab_metallb_pool", LIST, False),
    ("gpulab_registry_address", TEXT, False),
    ("gpulab_grafana_address", TEXT, False),
    ("gpulab_kubeflow_address", TEXT, False),
    ("gpulab_day_use", LIST, False),
    ("gpulab_tenant_limits", DICT, False),
)
# Per-host variables: ansible_host, and the OSD devices of the storage layer (group storage_osd).
HOST_VARIABLES = ("ansible_host", "storage_osd_devices", "storage_osd_force_devices", "gpulab_day_use_node")
# Every variable the rules read: what a caller has to put into "hostvars".
VARIABLES = tuple(name for name, _kind, _required in CLUSTER_VARIABLES) + HOST_VARIABLES

NETWORK_VARIABLES = ("gpulab_node_network", "gpulab_pod_subnet", "gpulab_service_subnet")

KUBERNETES_VERSION = re.compile(r"^1\.[0-9]{1,3}\.[0-9]{1,3}$")

# kube-controller-manager gives every node a /24 of the pod subnet (kubeadm's default node-cidr-mask-size).
NODE_CIDR_PREFIX = 24
# kube-apiserver refuses an IPv4 service range larger than a /12; kubeadm puts cluster DNS on its 10th address.
SERVICE_PREFIX_MIN = 12
SERVICE_PREFIX_MAX = 28

SPECIAL_RANGES = (
    (ipaddress.IPv4Network("0.0.0.0/8"), "'this network'"),
    (ipaddress.IPv4Network("127.0.0.0/8"), "loopback"),
    (ipaddress.IPv4Network("169.254.0.0/16"), "link-local"),
    (ipaddress.IPv4Network("224.0.0.0/4"), "multicast"),
    (ipaddress.IPv4Network("240.0.0.0/4"), "reserved"),
)

# The hosts whose devices become Ceph OSDs, and how many the pools' replication (size 3) needs.
OSD_GROUP = "storage_osd"
OSD_HOSTS_MIN = 3
DEVICE_PATH = re.compile(r"^/dev/[^\s]+$")

DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
USER_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
DIGITS = re.compile(r"^[0-9]+$")
TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")
FQDN_MAX = 253


class Unresolved(object):
    """A variable the caller could not resolve; ``reason`` says why (the template error)."""

    def __init__(self, reason):
        self.reason = reason

    def __eq__(self, other):
        return isinstance(other, Unresolved) and other.reason == self.reason

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash(self.reason)

    def __repr__(self):
        return "Unresolved(%r)" % (self.reason,)


_MISSING = object()


class InventoryView(object):
    """The inventory description, ordered and with one value per cluster-wide variable."""

    def __init__(self, inventory):
        self.groups = dict((name, list(members or [])) for name, members in (inventory.get("groups") or {}).items())
        self.hostvars = dict((host, dict(hvars or {})) for host, hvars in (inventory.get("hostvars") or {}).items())
        hosts = []
        seen = set()
        candidates = list(self.groups.get("all", []))
        for members in self.groups.values():
            candidates.extend(members)
        candidates.extend(self.hostvars)
        for host in candidates:
            if host not in seen:
                seen.add(host)
                hosts.append(host)
        self.hosts = hosts
        self.values = {}
        self.cluster = {}
        for name, _kind, _required in CLUSTER_VARIABLES:
            self.values[name] = self._values_of(name)
            self.cluster[name] = self._majority(self.values[name])

    def _values_of(self, name):
        """[(value, [hosts])] for a variable, in order of first appearance; _MISSING where a host lacks it."""
        found = []
        for host in self.hosts:
            value = self.hostvars.get(host, {}).get(name, _MISSING)
            for known, holders in found:
                if _same(known, value):
                    holders.append(host)
                    break
            else:
                found.append((value, [host]))
        return found

    @staticmethod
    def _majority(values):
        best = _MISSING
        count = 0
        for value, holders in values:
            if value is _MISSING or isinstance(value, Unresolved):
                continue
            if len(holders) > count:
                best, count = value, len(holders)
        return best

    def members(self, group):
        return self.groups.get(group, [])

    def role_hosts(self):
        """Hosts of the role groups, in inventory order."""
        in_roles = set()
        for group in ROLE_GROUPS:
            in_roles.update(self.members(group))
        return [host for host in self.hosts if host in in_roles]

    def host_var(self, host, name):
        return self.hostvars.get(host, {}).get(name, _MISSING)

    def value(self, name):
        return self.cluster.get(name, _MISSING)


def _same(left, right):
    """Equal values of the same kind: 6443 and '6443' differ, as do 1 and True; str subclasses do not."""
    if left is _MISSING or right is _MISSING:
        return left is right
    return repr(_plain(left)) == repr(_plain(right))


def _show(value):
    if value is _MISSING:
        return "not set"
    return repr(_plain(value))


def _plain(value):
    """Tagged or lazy subclasses of str/list/dict as their base type, for readable messages."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return dict((_plain(key), _plain(item)) for key, item in value.items())
    return value


def _names(items, limit=6, last="and"):
    items = list(items)
    if len(items) > limit:
        return "%s and %d more" % (", ".join(items[:limit]), len(items) - limit)
    if len(items) > 1:
        return "%s %s %s" % (", ".join(items[:-1]), last, items[-1])
    return "".join(items)


def _count(number, word):
    return "%d %s%s" % (number, word, "" if number == 1 else "s")


# Typed accessors: the value when it is usable, None otherwise (its problem is reported by its own rule).

def _text(view, name):
    value = view.value(name)
    if isinstance(value, str) and value.strip():
        return str(value)
    return None


def _port(view):
    value = view.value("gpulab_control_plane_port")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str) and DIGITS.match(value):
        return int(value)
    return None


def _flag(view, name):
    value = view.value(name)
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.strip().lower() in TRUE_WORDS


def _layers(view):
    value = view.value("gpulab_layers")
    if isinstance(value, (list, tuple)):
        return list(value)
    return None


def _parse_address(value):
    if not isinstance(value, str):
        return None
    try:
        return ipaddress.IPv4Address(value.strip())
    except ValueError:
        return None


def _parse_network(value):
    """(network, None) or (None, why it is not a usable CIDR network and what to write instead)."""
    malformed = "is not an IPv4 network in CIDR form; write it as address/prefix, e.g. 10.244.0.0/16"
    if not isinstance(value, str) or "/" not in value:
        return None, malformed
    try:
        return ipaddress.IPv4Network(value.strip(), strict=True), None
    except ValueError as exc:
        if "host bits set" in str(exc):
            return None, "has host bits set; write %s" % ipaddress.IPv4Network(value.strip(), strict=False)
        return None, malformed


def _network(view, name):
    return _parse_network(view.value(name))[0]


def _domain(view):
    domain = _text(view, "gpulab_domain")
    if domain is None or _domain_problem(domain):
        return None
    return domain


def _domain_problem(domain):
    if domain.endswith("."):
        return "ends with a dot; write it without the trailing dot"
    if len(domain) > FQDN_MAX:
        return "is %d characters long, more than the %d a DNS name may have; shorten it" % (len(domain), FQDN_MAX)
    for label in domain.split("."):
        if not DNS_LABEL.match(label):
            return ("has the label %r, which is not a lowercase RFC 1123 label; use 1-63 of a-z, 0-9 and '-', "
                    "starting and ending with a letter or digit, in every label" % label)
    return None


def _addresses(view):
    """[(host, IPv4Address)] for every host whose ansible_host is a valid IPv4 address."""
    result = []
    for host in view.hosts:
        address = _parse_address(view.host_var(host, "ansible_host"))
        if address is not None:
            result.append((host, address))
    return result


def _is_edge(address, network):
    """True when address is the network or broadcast address of a network that has both."""
    return network.prefixlen <= 30 and address in (network.network_address, network.broadcast_address)


# Groups

def check_required_groups(view):
    """Each of the three role groups exists and has hosts; so there is at least one worker."""
    problems = []
    for group in ROLE_GROUPS:
        if group not in view.groups:
            problems.append("group %s is missing from the inventory; add it with its hosts (the groups are %s)"
                            % (group, ", ".join(ROLE_GROUPS)))
        elif not view.members(group):
            problems.append("group %s has no hosts; add at least one host to it" % group)
    return problems


def check_loadbalancer_size(view):
    """One load balancer (HAProxy) or two (HAProxy + keepalived pair)."""
    hosts = view.members("loadbalancer")
    if len(hosts) > 2:
        return ["group loadbalancer has %d hosts (%s); use 1 (HAProxy) or 2 (HAProxy with a keepalived pair)"
                % (len(hosts), _names(hosts))]
    return []


def check_control_plane_size(view):
    """An odd number of control planes, at least 3 unless gpulab_allow_single_control_plane is true."""
    hosts = view.members("control_plane")
    if not hosts:
        return []
    single_ok = _flag(view, "gpulab_allow_single_control_plane")
    if len(hosts) % 2 == 0:
        return ["group control_plane has %d hosts (%s): etcd needs an odd number of members to keep quorum; "
                "use %s control planes" % (len(hosts), _names(hosts), "1, 3 or 5" if single_ok else "3 or 5")]
    if len(hosts) < 3 and not single_ok:
        return ["group control_plane has 1 host (%s): a highly available control plane needs at least 3; "
                "add control planes, or set gpulab_allow_single_control_plane: true to accept a single one "
                "(no redundancy)" % hosts[0]]
    return []


def check_role_overlap(view):
    """A host belongs to exactly one role group."""
    problems = []
    for host in view.hosts:
        roles = [group for group in ROLE_GROUPS if host in view.members(group)]
        if len(roles) > 1:
            problems.append("host %s is in %s: a host has exactly one role; remove it from all but one of them"
                            % (host, _names(roles)))
    return problems


def check_hosts_without_role(view):
    """Every host of the inventory is in one of the role groups."""
    roles = set(view.role_hosts())
    return ["host %s is in none of the groups %s; add it to one of them or remove it from the inventory"
            % (host, ", ".join(ROLE_GROUPS)) for host in view.hosts if host not in roles]


# Names

def check_host_names(view):
    """Host names are lowercase RFC 1123 labels: they become hostnames and Kubernetes node names."""
    problems = []
    for host in view.hosts:
        if DNS_LABEL.match(host):
            continue
        if "." in host:
            hint = "use the short name (the FQDN is <host>.gpulab_domain)"
        elif DNS_LABEL.match(host.lower()):
            hint = "use %r" % host.lower()
        else:
            hint = "use only a-z, 0-9 and '-', starting and ending with a letter or digit, at most 63 characters"
        problems.append("host name %r is not a valid DNS label (RFC 1123, lowercase); rename the host: %s"
                        % (host, hint))
    return problems


def check_cluster_name(view):
    """gpulab_cluster_name is a lowercase RFC 1123 label (kubeadm clusterName, kubeconfig names)."""
    name = _text(view, "gpulab_cluster_name")
    if name is None or DNS_LABEL.match(name):
        return []
    return ["gpulab_cluster_name %r is not a lowercase RFC 1123 label; use 1-63 of a-z, 0-9 and '-', "
            "starting and ending with a letter or digit" % name]


def check_kubernetes_version(view):
    """gpulab_kubernetes_version is an exact release, 1.MINOR.PATCH: packages are pinned to it."""
    version = _text(view, "gpulab_kubernetes_version")
    if version is None or KUBERNETES_VERSION.match(version):
        return []
    return ["gpulab_kubernetes_version %r is not an exact Kubernetes release such as 1.33.5 (MAJOR.MINOR.PATCH, "
            "no leading v): packages and images are pinned to it" % version]


def check_domain(view):
    """gpulab_domain is a valid DNS domain."""
    domain = _text(view, "gpulab_domain")
    if domain is None:
        return []
    problem = _domain_problem(domain)
    if problem is None:
        return []
    return ["gpulab_domain %r %s" % (domain, problem)]


def check_fqdns(view):
    """Every <host>.<gpulab_domain> fits in a DNS name (253 characters)."""
    domain = _domain(view)
    if domain is None:
        return []
    problems = []
    for host in view.hosts:
        fqdn = "%s.%s" % (host, domain)
        if DNS_LABEL.match(host) and len(fqdn) > FQDN_MAX:
            problems.append("FQDN of host %s (%s.<gpulab_domain>) is %d characters long, more than %d; shorten "
                            "the host name or gpulab_domain" % (host, host, len(fqdn), FQDN_MAX))
    return problems


def check_admin_user(view):
    """gpulab_admin_user is a valid Linux user name."""
    user = _text(view, "gpulab_admin_user")
    if user is None or USER_NAME.match(user):
        return []
    return ["gpulab_admin_user %r is not a valid Linux user name; use a lowercase letter or '_' followed by "
            "at most 31 of a-z, 0-9, '_' and '-'" % user]


# Variables

def check_unresolved_variables(view):
    """Variables whose value could not be resolved (template errors), one problem per variable and error."""
    problems = []
    for name in VARIABLES:
        grouped = []
        for host in view.hosts:
            value = view.host_var(host, name)
            if not isinstance(value, Unresolved):
                continue
            for reason, hosts in grouped:
                if reason == value.reason:
                    hosts.append(host)
                    break
            else:
                grouped.append((value.reason, [host]))
        for reason, hosts in grouped:
            problems.append("%s cannot be resolved on %s: %s; fix the expression or the variable it uses"
                            % (name, "every host" if hosts == view.hosts else _names(hosts), reason))
    return problems


def check_required_variables(view):
    """Every required cluster-wide variable is set."""
    if not view.hosts:
        return []
    problems = []
    for name, _kind, required in CLUSTER_VARIABLES:
        if not required:
            continue
        values = [value for value, _hosts in view.values[name] if value is not _MISSING]
        if not values:
            problems.append("required variable %s is not set; define it in group_vars/all of the inventory"
                            % name)
    return problems


def _type_problem(kind, value):
    if kind == TEXT:
        if not isinstance(value, str):
            return "a string"
        if not value.strip():
            return "a non-empty string"
    elif kind == PORT:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and DIGITS.match(value))):
            return "an integer (a TCP port)"
    elif kind == LIST:
        if not isinstance(value, (list, tuple)):
            return "a list"
    elif kind == ANY:
        return None
    elif kind == DICT:
        if not isinstance(value, dict):
            return "a mapping"
    elif not isinstance(value, bool) and not (
            isinstance(value, str) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS):  # BOOL
        return "true or false"
    return None


def check_variable_types(view):
    """Cluster-wide variables have the type the roles expect."""
    problems = []
    for name, kind, _required in CLUSTER_VARIABLES:
        value = view.value(name)
        if value is _MISSING:
            continue
        problem = _type_problem(kind, value)
        if problem:
            problems.append("%s is %s (%s); it must be %s" % (name, _show(value), type(value).__name__, problem))
    return problems


def check_consistent_variables(view):
    """A cluster-wide variable has the same value on every host (set it once, in group_vars/all)."""
    problems = []
    for name, _kind, _required in CLUSTER_VARIABLES:
        values = [(value, hosts) for value, hosts in view.values[name] if not isinstance(value, Unresolved)]
        if len(values) < 2:
            continue
        listed = "; ".join("%s on %s" % (_show(value), _names(hosts)) for value, hosts in values)
        problems.append("%s differs between hosts: %s; it is cluster-wide: set it once for all hosts "
                        "(group_vars/all)" % (name, listed))
    return problems


# Networks

def check_networks(view):
    """Node network, pod and service subnets are IPv4 CIDR networks outside special-purpose ranges."""
    problems = []
    for name in NETWORK_VARIABLES:
        value = view.value(name)
        if not isinstance(value, str):
            continue
        network, problem = _parse_network(value)
        if problem:
            problems.append("%s %r %s" % (name, str(value), problem))
            continue
        for special, what in SPECIAL_RANGES:
            if network.overlaps(special):
                problems.append("%s %s overlaps %s (%s addresses); use a private range such as 10.0.0.0/8, "
                                "172.16.0.0/12 or 192.168.0.0/16" % (name, network, special, what))
                break
    return problems


def check_network_overlaps(view):
    """Node network, pod subnet and service subnet share no address."""
    problems = []
    for index, first in enumerate(NETWORK_VARIABLES):
        for second in NETWORK_VARIABLES[index + 1:]:
            left, right = _network(view, first), _network(view, second)
            if left is not None and right is not None and left.overlaps(right):
                problems.append("%s %s overlaps %s %s; the node network, pod subnet and service subnet must not "
                                "share addresses: change one of them" % (first, left, second, right))
    return problems


def check_subnet_sizes(view):
    """The pod subnet holds a /24 per Kubernetes node; the service subnet is /12 to /28 (kube-apiserver)."""
    problems = []
    pods = _network(view, "gpulab_pod_subnet")
    nodes = len(set(view.members("control_plane")) | set(view.members("workers")))
    if pods is not None:
        needed = NODE_CIDR_PREFIX - max(nodes - 1, 0).bit_length()
        if pods.prefixlen > needed:
            problems.append("gpulab_pod_subnet %s is too small: every Kubernetes node gets a /%d of it, so %s "
                            "need a /%d or larger; use a larger pod subnet such as 10.244.0.0/16"
                            % (pods, NODE_CIDR_PREFIX, _count(max(nodes, 1), "node"), needed))
    services = _network(view, "gpulab_service_subnet")
    if services is not None and not SERVICE_PREFIX_MIN <= services.prefixlen <= SERVICE_PREFIX_MAX:
        problems.append("gpulab_service_subnet %s has a /%d prefix; kube-apiserver needs /%d to /%d "
                        "(e.g. 10.96.0.0/12)" % (services, services.prefixlen, SERVICE_PREFIX_MIN, SERVICE_PREFIX_MAX))
    return problems


# Addresses

def check_ansible_host(view):
    """Every host has an ansible_host that is an IPv4 address."""
    network = _network(view, "gpulab_node_network")
    where = " in gpulab_node_network %s" % network if network is not None else ""
    problems = []
    for host in view.hosts:
        value = view.host_var(host, "ansible_host")
        if isinstance(value, Unresolved):
            continue
        if value is _MISSING or value is None or (isinstance(value, str) and not value.strip()):
            problems.append("host %s has no ansible_host; set it to the host's IPv4 address%s" % (host, where))
        elif _parse_address(value) is None:
            problems.append("host %s: ansible_host %s is not an IPv4 address; set it to the host's IPv4 address%s"
                            % (host, _show(value), where))
    return problems


def check_duplicate_addresses(view):
    """No two hosts share an address."""
    holders = []
    for host, address in _addresses(view):
        for known, hosts in holders:
            if known == address:
                hosts.append(host)
                break
        else:
            holders.append((address, [host]))
    return ["address %s is the ansible_host of %s; give every host its own address" % (address, _names(hosts))
            for address, hosts in holders if len(hosts) > 1]


def check_addresses_in_network(view):
    """Every address is a usable host address of gpulab_node_network."""
    network = _network(view, "gpulab_node_network")
    if network is None:
        return []
    problems = []
    for host, address in _addresses(view):
        if address not in network:
            problems.append("host %s: ansible_host %s is outside gpulab_node_network %s; correct the address or "
                            "the network" % (host, address, network))
        elif _is_edge(address, network):
            which = "network" if address == network.network_address else "broadcast"
            problems.append("host %s: ansible_host %s is the %s address of gpulab_node_network %s; give the host "
                            "a usable address" % (host, address, which, network))
    return problems


# Control-plane endpoint

def check_control_plane_vip(view):
    """gpulab_control_plane_vip, when set, is a free usable address of the node network; a pair needs one."""
    value = view.value("gpulab_control_plane_vip")
    network = _network(view, "gpulab_node_network")
    if value is _MISSING:
        if len(view.members("loadbalancer")) == 2:
            return ["group loadbalancer has 2 hosts (%s), a keepalived pair, but gpulab_control_plane_vip is not "
                    "set; set it to a free address of the node network and point gpulab_control_plane_endpoint "
                    "at it" % _names(view.members("loadbalancer"))]
        return []
    if not isinstance(value, str):
        return []
    vip = _parse_address(value)
    if vip is None:
        return ["gpulab_control_plane_vip %r is not an IPv4 address; set it to a free address of the node network"
                % str(value)]
    problems = []
    if network is not None and vip not in network:
        problems.append("gpulab_control_plane_vip %s is outside gpulab_node_network %s; choose a free address "
                        "inside it" % (vip, network))
    elif network is not None and _is_edge(vip, network):
        problems.append("gpulab_control_plane_vip %s is the %s address of gpulab_node_network %s; choose a free "
                        "address inside it" % (vip, "network" if vip == network.network_address else "broadcast",
                                               network))
    taken = [host for host, address in _addresses(view) if address == vip]
    if taken:
        problems.append("gpulab_control_plane_vip %s is already the ansible_host of %s; choose an address no "
                        "host uses" % (vip, _names(taken)))
    return problems


def _identities(view, host, domain):
    names = [host.lower()]
    if domain is not None:
        names.append("%s.%s" % (host.lower(), domain))
    address = _parse_address(view.host_var(host, "ansible_host"))
    if address is not None:
        names.append(str(address))
    return names


def check_control_plane_endpoint(view):
    """The endpoint is the load balancer (its name, FQDN or address) or the VIP, never another node."""
    endpoint = _text(view, "gpulab_control_plane_endpoint")
    if endpoint is None:
        return []
    wanted = endpoint.strip().lower().rstrip(".")
    if ":" in wanted or "/" in wanted:
        return ["gpulab_control_plane_endpoint %r must be a host name or address only, without a scheme or port; "
                "the port goes in gpulab_control_plane_port" % endpoint]
    domain = _domain(view)
    vip = _parse_address(view.value("gpulab_control_plane_vip"))
    balancers = view.members("loadbalancer")
    if vip is not None and wanted == str(vip):
        return []
    choices = []
    if len(balancers) == 2:
        choices.append("gpulab_control_plane_vip%s" % (" (%s)" % vip if vip is not None else ""))
    else:
        for host in balancers:
            choices.append("load balancer %s (%s)" % (host, _names(_identities(view, host, domain), last="or")))
        if vip is not None:
            choices.append("gpulab_control_plane_vip %s" % vip)
    target = " or ".join(choices) if choices else "a host of group loadbalancer"
    candidates = [wanted]
    if domain is None and _parse_address(wanted) is None:
        # gpulab_domain is unusable (reported by check_domain): judge the endpoint by its host label.
        candidates.append(wanted.split(".", 1)[0])
    for group, role in (("control_plane", "control-plane host"), ("workers", "worker"),
                        ("loadbalancer", "load balancer")):
        for host in view.members(group):
            if not set(candidates) & set(_identities(view, host, domain)):
                continue
            if group != "loadbalancer":
                return ["gpulab_control_plane_endpoint %r is %s %s, not the load balancer: the API would depend on "
                        "that one node; point it at %s" % (endpoint, role, host, target)]
            if len(balancers) == 2:
                return ["gpulab_control_plane_endpoint %r is %s, one of the two load balancers: the API would "
                        "depend on that one node; point it at %s" % (endpoint, host, target)]
            return []
    return ["gpulab_control_plane_endpoint %r is neither a load balancer nor the control-plane VIP; point it at %s"
            % (endpoint, target)]


def check_control_plane_port(view):
    """gpulab_control_plane_port is a TCP port, 1-65535."""
    port = _port(view)
    if port is None or 1 <= port <= 65535:
        return []
    return ["gpulab_control_plane_port %d is out of range; use a TCP port from 1 to 65535 (usually 6443)" % port]


# Layers

def check_layers(view):
    """gpulab_layers names known layers, each once, in the order site.yml runs them."""
    layers = _layers(view)
    if layers is None:
        return []
    problems = []
    seen = []
    for position, layer in enumerate(layers, start=1):
        if not isinstance(layer, str):
            problems.append("gpulab_layers item %d (%s) is not a layer name; the layers are: %s"
                            % (position, _show(layer), ", ".join(KNOWN_LAYERS)))
        elif layer not in KNOWN_LAYERS:
            close = difflib.get_close_matches(layer, KNOWN_LAYERS, n=1)
            hint = "did you mean %r? " % close[0] if close else ""
            problems.append("gpulab_layers item %d %r is not a known layer; %sthe layers are: %s"
                            % (position, str(layer), hint, ", ".join(KNOWN_LAYERS)))
        elif layer in seen:
            problems.append("gpulab_layers lists %r more than once (item %d); list each layer once"
                            % (str(layer), position))
        else:
            seen.append(layer)
    ordered = sorted(seen, key=KNOWN_LAYERS.index)
    if seen != ordered:
        problems.append("gpulab_layers is not in the order site.yml runs the layers (%s); list them as: %s"
                        % (", ".join(KNOWN_LAYERS), ", ".join(ordered)))
    return problems


# Storage (Ceph OSDs)

def _storage_enabled(view):
    layers = _layers(view)
    return layers is not None and "storage" in layers


def check_storage_osd_hosts(view):
    """With the storage layer: group storage_osd holds at least 3 workers (replication 3 puts copies on 3 hosts)."""
    if not _storage_enabled(view):
        return []
    hosts = view.members(OSD_GROUP)
    if not hosts:
        return ["gpulab_layers has 'storage' but group %s has no hosts; list the workers whose devices become Ceph "
                "OSDs in it (children: workers), at least %d" % (OSD_GROUP, OSD_HOSTS_MIN)]
    problems = []
    workers = set(view.members("workers"))
    others = [host for host in hosts if host not in workers]
    if others:
        problems.append("host%s %s %s in group %s but not in workers: OSDs run on workers only; remove %s from %s"
                        % ("s" if len(others) > 1 else "", _names(others), "are" if len(others) > 1 else "is",
                           OSD_GROUP, "them" if len(others) > 1 else "it", OSD_GROUP))
    if len(hosts) < OSD_HOSTS_MIN:
        problems.append("group %s has %s (%s): pools keep 3 copies on 3 different hosts, so at least %d are needed; "
                        "add workers to it" % (OSD_GROUP, _count(len(hosts), "host"), _names(hosts), OSD_HOSTS_MIN))
    return problems


def _device_list_problem(value):
    """Why a device list is unusable, or None: a list of absolute /dev/ paths, each once."""
    if not isinstance(value, (list, tuple)):
        return "is %s (%s); it must be a list of device paths" % (_show(value), type(value).__name__)
    for item in value:
        if not isinstance(item, str) or not DEVICE_PATH.match(item):
            return ("has the entry %s, which is not an absolute /dev/ path; use a stable path such as "
                    "/dev/disk/by-partlabel/data or /dev/disk/by-id/..." % _show(item))
    seen = set()
    for item in value:
        if item in seen:
            return "lists %s twice; list each device once" % _show(item)
        seen.add(item)
    return None


def _rollout_members(view):
    """The workers in the cluster at the roll-out stage; all of them when the stage is unusable (reported)."""
    stage = view.value("gpulab_rollout_workers")
    workers = view.members("workers")
    if stage is _MISSING or isinstance(stage, Unresolved) or _rollout.stage_problem(stage, workers):
        return workers
    return _rollout.members(workers, stage)


def check_rollout(view):
    """gpulab_rollout_workers is 'all' or 1..len(workers); with storage, the roll-out holds 3 OSD hosts."""
    stage = view.value("gpulab_rollout_workers")
    if stage is _MISSING or isinstance(stage, Unresolved):
        return []
    problem = _rollout.stage_problem(stage, view.members("workers"))
    if problem:
        return [problem]
    if not _storage_enabled(view):
        return []
    hosts = [host for host in view.members(OSD_GROUP) if host in _rollout_members(view)]
    if len(view.members(OSD_GROUP)) >= OSD_HOSTS_MIN and len(hosts) < OSD_HOSTS_MIN:
        return ["gpulab_rollout_workers is %s: the cluster would hold %s of group %s (%s), but Ceph keeps 3 copies "
                "on 3 hosts; roll out at least the first %d OSD hosts, or leave 'storage' out of gpulab_layers "
                "until then" % (stage, _count(len(hosts), "host"), OSD_GROUP, _names(hosts) or "none", OSD_HOSTS_MIN)]
    return []


def check_storage_osd_devices(view):
    """Every OSD host names its devices in storage_osd_devices; storage_osd_force_devices is a subset of them."""
    if not _storage_enabled(view):
        return []
    problems = []
    for host in view.members(OSD_GROUP):
        devices = view.host_var(host, "storage_osd_devices")
        if isinstance(devices, Unresolved):
            continue
        if devices is _MISSING or devices is None or (isinstance(devices, (list, tuple)) and not devices):
            problems.append("host %s is in group %s but storage_osd_devices is %s; list the device(s) for its OSD "
                            "(e.g. [/dev/disk/by-partlabel/data]) or remove the host from %s"
                            % (host, OSD_GROUP, "empty" if devices not in (_MISSING, None) else "not set", OSD_GROUP))
            continue
        problem = _device_list_problem(devices)
        if problem:
            problems.append("host %s: storage_osd_devices %s" % (host, problem))
            continue
        force = view.host_var(host, "storage_osd_force_devices")
        if force is _MISSING or force is None or isinstance(force, Unresolved):
            continue
        problem = _device_list_problem(force)
        if problem:
            problems.append("host %s: storage_osd_force_devices %s" % (host, problem))
            continue
        strangers = [str(item) for item in force if item not in devices]
        if strangers:
            problems.append("host %s: storage_osd_force_devices names %s, not in its storage_osd_devices; the "
                            "permission to destroy data applies to the exact paths listed there"
                            % (host, _names(strangers)))
    return problems


# Tenants

def check_tenants(view):
    """gpulab_tenants: valid namespace names, each once, quotas that hold the LimitRange's largest container."""
    tenants = view.value("gpulab_tenants")
    limits = view.value("gpulab_tenant_limits")
    if not isinstance(tenants, (list, tuple)):
        tenants = None
    if not isinstance(limits, dict):
        limits = None
    return _tenants.problems(tenants, limits)


def _layer_list(view, name, layer, give):
    """(the list variable ``name``, problems): a layer that needs it reports it missing (``give`` says what to set);
    a value that is not a list is None here (check_variable_types reports it)."""
    value = view.value(name)
    if value is _MISSING or isinstance(value, Unresolved):
        if layer in (_layers(view) or []):
            return None, ["gpulab_layers has '%s' but %s is not set; %s, or leave '%s' out of gpulab_layers"
                          % (layer, name, give, layer)]
        return None, []
    return (value if isinstance(value, (list, tuple)) else None), []


# Platform: MetalLB's pool and the registry's address

def check_metallb_pool(view):
    """gpulab_metallb_pool: ranges or networks inside the node network, free of nodes, the VIP and each other."""
    pool, missing = _layer_list(view, "gpulab_metallb_pool", "platform",
                                "give MetalLB free addresses of the node network for the cluster's services "
                                "(e.g. [192.168.50.240-192.168.50.250])")
    if pool is None:
        return missing
    if not pool and "platform" in (_layers(view) or []):
        return ["gpulab_metallb_pool is empty; give MetalLB at least one free address of the node network"]
    problems = []
    network = _network(view, "gpulab_node_network")
    others = [(name, _network(view, name)) for name in ("gpulab_pod_subnet", "gpulab_service_subnet")]
    # A node network the network rules refuse (hosts outside it, overlapping subnets) is no yardstick: the pool is
    # then judged against the subnets only when the node network itself is unusable.
    doubtful = network is not None and (
        any(address not in network for _host, address in _addresses(view))
        or any(subnet is not None and subnet.overlaps(network) for _name, subnet in others))
    if doubtful:
        network, others = None, []
    vip = _parse_address(view.value("gpulab_control_plane_vip"))
    seen = []
    for position, entry in enumerate(pool, start=1):
        bounds, why = _platform.parse_entry(entry)
        where = "gpulab_metallb_pool item %d" % position
        if bounds is None:
            problems.append("%s %s" % (where, why))
            continue
        first, last = bounds
        shown = "%s (%s-%s)" % (entry, first, last) if "/" in entry else entry
        if network is not None and not (first in network and last in network):
            problems.append("%s %s is not inside gpulab_node_network %s: MetalLB announces its addresses on the node "
                            "network (layer 2); choose free addresses there" % (where, shown, network))
        elif network is not None and (_is_edge(first, network) or _is_edge(last, network)):
            problems.append("%s %s includes the network or broadcast address of gpulab_node_network %s"
                            % (where, shown, network))
        for name, subnet in others if network is None else []:  # inside the node network, no subnet is hit
            if subnet is not None and first <= subnet.broadcast_address and subnet.network_address <= last:
                problems.append("%s %s overlaps %s %s" % (where, shown, name, subnet))
        taken = [host for host, address in _addresses(view) if first <= address <= last]
        if taken:
            problems.append("%s %s holds the ansible_host of %s; MetalLB would answer for a node's address: leave "
                            "the nodes' addresses out of the pool" % (where, shown, _names(taken)))
        if vip is not None and first <= vip <= last:
            problems.append("%s %s holds gpulab_control_plane_vip %s; keepalived owns it: leave it out of the pool"
                            % (where, shown, vip))
        for other_position, (other_first, other_last) in seen:
            if first <= other_last and other_first <= last:
                problems.append("%s %s overlaps item %d; list each address once" % (where, shown, other_position))
        seen.append((position, bounds))
    if problems or not seen:
        return problems
    named = []
    for service in _platform.SERVICES:
        name = "gpulab_%s_address" % service
        value = view.value(name)
        if not isinstance(value, str):
            continue
        address = _parse_address(value)
        if address is None:
            problems.append("%s %r is not an IPv4 address; choose one of gpulab_metallb_pool" % (name, value))
        elif not any(first <= address <= last for _position, (first, last) in seen):
            problems.append("%s %s is not in gpulab_metallb_pool; the Service gets its address from MetalLB: choose "
                            "one of the pool" % (name, address))
        else:
            twin = [other for other, other_address in named if other_address == address]
            if twin:
                problems.append("%s %s is also %s; give each Service its own address" % (name, address, twin[0]))
            named.append((name, address))
    return problems


# After-hours schedule

def check_schedule(view):
    """gpulab_day_use: valid, non-overlapping windows in a real gpulab_timezone; required by the schedule layer."""
    windows, missing = _layer_list(view, "gpulab_day_use", "schedule",
                                   "give the hours the machines belong to their day users (e.g. [{days: [mon, tue, "
                                   "wed, thu, fri], from: \"08:00\", to: \"18:00\"}]) and gpulab_timezone")
    if windows is None:
        return missing
    timezone = view.value("gpulab_timezone")
    problems = _schedule.problems(windows, None if timezone is _MISSING else timezone)
    for host in view.members("workers"):
        flag = view.host_var(host, "gpulab_day_use_node")
        if flag is not _MISSING and not isinstance(flag, (bool, Unresolved)):
            problems.append("host %s: gpulab_day_use_node is %s (%s); write true or false (unquoted)"
                            % (host, _show(flag), type(flag).__name__))
    return problems


RULES = (
    check_required_groups,
    check_loadbalancer_size,
    check_control_plane_size,
    check_role_overlap,
    check_hosts_without_role,
    check_host_names,
    check_unresolved_variables,
    check_required_variables,
    check_variable_types,
    check_consistent_variables,
    check_cluster_name,
    check_kubernetes_version,
    check_domain,
    check_fqdns,
    check_admin_user,
    check_networks,
    check_network_overlaps,
    check_subnet_sizes,
    check_ansible_host,
    check_duplicate_addresses,
    check_addresses_in_network,
    check_control_plane_vip,
    check_control_plane_endpoint,
    check_control_plane_port,
    check_layers,
    check_storage_osd_hosts,
    check_storage_osd_devices,
    check_rollout,
    check_tenants,
    check_schedule,
    check_metallb_pool,
)


def validate(inventory):
    """Every problem of the inventory description, in rule order and inventory order, each once."""
    view = InventoryView(inventory)
    problems = []
    for rule in RULES:
        for problem in rule(view):
            if problem not in problems:
                problems.append(problem)
    return problems
