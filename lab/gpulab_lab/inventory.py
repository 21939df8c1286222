"""The lab topology, read from an Ansible inventory and nothing else."""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .ssh import Access
from .util import ROOT, LabError, run

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-]{0,62}$")
DEFAULT_INVENTORY = "inventories/lab"
# Where the key pair and known_hosts live when the inventory does not say (it normally does).
DEFAULT_KEY = "~/.ssh/gpulab-lab/id_ed25519"


@dataclass(frozen=True)
class Node:
    name: str
    ip: ipaddress.IPv4Address
    group: str


@dataclass(frozen=True)
class Topology:
    inventory: Path
    nodes: tuple
    network: ipaddress.IPv4Network
    domain: str
    admin_user: str
    access: Access

    def fqdn(self, node: Node) -> str:
        return f"{node.name}.{self.domain}"


def _ansible_inventory() -> str:
    found = shutil.which("ansible-inventory")
    if found:
        return found
    venv = ROOT / ".venv" / "bin" / "ansible-inventory"
    if venv.is_file():
        return str(venv)
    raise LabError("ansible-inventory not found on PATH: put the project's venv first "
                   "(`export PATH=$PWD/.venv/bin:$PATH`, as the Makefile does) or install ansible-core")


def _groups_of(data: dict) -> dict:
    """host -> the first group (depth first from `all`) that lists it directly."""
    owner = {}

    def walk(group: str, seen: set):
        if group in seen:
            return
        seen.add(group)
        for host in data.get(group, {}).get("hosts", []):
            owner.setdefault(host, group)
        for child in data.get(group, {}).get("children", []):
            walk(child, seen)

    walk("all", set())
    return owner


def _one_var(hostvars: dict, key: str, inventory: Path, required: bool = True):
    values = {json.dumps(v.get(key), sort_keys=True) for v in hostvars.values()}
    if values == {"null"}:
        if not required:
            return None
        raise LabError(f"{inventory}: variable {key} is not set (put it in group_vars/all)")
    if len(values) > 1:
        raise LabError(f"{inventory}: variable {key} differs between hosts; the lab needs one value for all")
    return next(iter(hostvars.values())).get(key)


def _path(value: str, inventory: Path, variable: str) -> Path:
    """A path as Ansible and ssh would read it: {{ inventory_dir }} and ~ expanded, relative to the project."""
    inventory_dir = inventory if inventory.is_dir() else inventory.parent
    value = re.sub(r"\{\{\s*inventory_dir\s*\}\}", str(inventory_dir), value)
    if "{{" in value:
        raise LabError(f"{inventory}: {variable} uses a template the lab cannot resolve: {value}")
    path = Path(value).expanduser()
    return path if path.is_absolute() else ROOT / path


def _access(hostvars: dict, inventory: Path) -> Access:
    """The lab key and known_hosts: ansible_ssh_private_key_file and UserKnownHostsFile= in
    ansible_ssh_common_args, as the inventory gives them to Ansible."""
    key = _path(str(_one_var(hostvars, "ansible_ssh_private_key_file", inventory, False) or DEFAULT_KEY),
                inventory, "ansible_ssh_private_key_file")
    args = str(_one_var(hostvars, "ansible_ssh_common_args", inventory, False) or "")
    match = re.search(r"UserKnownHostsFile[= ]\s*(\S+)", args)
    known_hosts = _path(match.group(1), inventory, "UserKnownHostsFile") if match else key.parent / "known_hosts"
    return Access(key=key, known_hosts=known_hosts)


def parse(data: dict, inventory: Path) -> Topology:
    """Check and turn `ansible-inventory --list` output into a Topology; errors name the host or variable."""
    hostvars = data.get("_meta", {}).get("hostvars", {})
    if not hostvars:
        raise LabError(f"{inventory} has no hosts")
    groups = _groups_of(data)
    try:
        network = ipaddress.IPv4Network(str(_one_var(hostvars, "gpulab_node_network", inventory)))
    except ValueError as exc:
        raise LabError(f"{inventory}: gpulab_node_network is not an IPv4 network: {exc}") from None
    domain = str(_one_var(hostvars, "gpulab_domain", inventory)).strip(".")
    admin_user = str(_one_var(hostvars, "gpulab_admin_user", inventory))
    if "{{" in domain or "{{" in admin_user:
        raise LabError(f"{inventory}: gpulab_domain and gpulab_admin_user must be plain values for the lab")
    gateway = next(network.hosts())
    nodes, seen = [], {}
    for name, hvars in hostvars.items():
        if not NAME_RE.match(name):
            raise LabError(f"{inventory}: host name {name!r} is not a valid host/container name")
        raw = hvars.get("ansible_host")
        if raw is None:
            raise LabError(f"{inventory}: host {name} has no ansible_host (its address on the lab network)")
        try:
            ip = ipaddress.IPv4Address(str(raw))
        except ValueError:
            raise LabError(f"{inventory}: host {name}: ansible_host {raw!r} is not an IPv4 address") from None
        if ip not in network or ip in (network.network_address, network.broadcast_address):
            raise LabError(f"{inventory}: host {name}: {ip} is not a host address of gpulab_node_network {network}")
        if ip == gateway:
            raise LabError(f"{inventory}: host {name}: {ip} is the lab network's gateway (the podman bridge); "
                           "use another address")
        if ip in seen:
            raise LabError(f"{inventory}: hosts {seen[ip]} and {name} share the address {ip}")
        seen[ip] = name
        nodes.append(Node(name, ip, groups.get(name, "ungrouped")))
    nodes.sort(key=lambda n: n.ip)
    return Topology(inventory, tuple(nodes), network, domain, admin_user, _access(hostvars, inventory))


def load(inventory: str = DEFAULT_INVENTORY) -> Topology:
    path = Path(inventory)
    if not path.is_absolute():
        path = (Path.cwd() / path) if (Path.cwd() / path).exists() else ROOT / path
    if not path.exists():
        raise LabError(f"inventory {inventory} not found (relative paths are tried from here and from {ROOT})")
    out = run([_ansible_inventory(), "-i", path, "--list"], cwd=ROOT).stdout
    try:
        data = json.loads(out)
    except json.JSONDecodeError as exc:
        raise LabError(f"ansible-inventory -i {path} --list did not print JSON: {exc}") from None
    return parse(data, path)
