"""The checkout the commands run in, its inventory, and which layer runs on which hosts.

Everything here is read from the collection itself: the layers and their host groups from playbooks/layers.yml
(the plays site.yml runs), the hosts, groups and gpulab_layers from `ansible-inventory --list`.
"""
import json
import os
import pathlib
import subprocess
import sys

import yaml

LAYER_GROUP_PREFIX = "gpulab_layer_"


class UsageError(Exception):
    """A command that cannot run as asked: the message says why and lists the valid choices."""


def find_project(explicit=None):
    """The collection checkout: --project, $GPULAB_PROJECT, the checkout this package lives in, or the cwd."""
    candidates = [explicit, os.environ.get("GPULAB_PROJECT"), pathlib.Path(__file__).resolve().parents[2],
                  pathlib.Path.cwd()]
    for candidate in candidates:
        if candidate and (pathlib.Path(candidate) / "playbooks" / "site.yml").is_file():
            return pathlib.Path(candidate).resolve()
    raise UsageError("no gpulab.cluster checkout found (a folder with playbooks/site.yml): give --project DIR "
                     "or set GPULAB_PROJECT")


def ansible_overrides(project):
    """What every ansible command of the CLI runs with on top of the caller's environment."""
    return {
        # the checkout's configuration and collections
        "ANSIBLE_CONFIG": str(project / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(project / "collections"),
        # An inventory Ansible cannot parse is an error, not an empty inventory that every run passes over.
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
        # The ansible commands of the environment the CLI itself runs in (a venv need not be activated).
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
    }


def ansible_env(project):
    """The whole environment for a subprocess: the caller's, with ansible_overrides."""
    env = dict(os.environ)
    env.update(ansible_overrides(project))
    return env


def layer_groups(project):
    """{layer: [groups it runs on] or None for every host}, in site.yml's order, from playbooks/layers.yml."""
    plays = yaml.safe_load((project / "playbooks" / "layers.yml").read_text())
    layers = {}
    for play in plays:
        parts = str(play.get("hosts", "")).split(":")
        layer = [p.lstrip("&")[len(LAYER_GROUP_PREFIX):] for p in parts if p.lstrip("&").startswith(LAYER_GROUP_PREFIX)]
        if len(layer) != 1:
            continue
        groups = [p for p in parts if p and not p.lstrip("&").startswith(LAYER_GROUP_PREFIX)]
        layers[layer[0]] = groups or None
    return layers


class Inventory:
    """Hosts, their groups and variables as `ansible-inventory --list` reports them."""

    def __init__(self, listing):
        self.hostvars = listing.get("_meta", {}).get("hostvars", {})
        self.groups = {}
        self._collect(listing, "all", [])
        self.hosts = sorted(self.hostvars, key=self._order)

    def _collect(self, listing, group, parents):
        entry = listing.get(group, {})
        for host in entry.get("hosts", []):
            self.hostvars.setdefault(host, {})
            for name in parents + [group]:
                self.groups.setdefault(name, [])
                if host not in self.groups[name]:
                    self.groups[name].append(host)
        for child in entry.get("children", []):
            self._collect(listing, child, parents + [group])

    def _order(self, host):
        return self.groups.get("all", []).index(host) if host in self.groups.get("all", []) else len(self.hostvars)

    @classmethod
    def load(cls, project, inventory=None):
        argv = ["ansible-inventory", "--list"] + (["-i", str(inventory)] if inventory else [])
        done = subprocess.run(argv, cwd=str(project), env=ansible_env(project), capture_output=True, text=True,
                              check=False)
        if done.returncode != 0:
            raise UsageError("ansible-inventory could not read the inventory: %s" % done.stderr.strip())
        return cls(json.loads(done.stdout))

    def groups_of(self, host):
        return sorted(name for name, members in self.groups.items() if host in members and name != "all")

    def enabled_layers(self, host):
        layers = self.hostvars.get(host, {}).get("gpulab_layers", [])
        return list(layers) if isinstance(layers, list) else []

    def layers_for(self, host, layer_map):
        """The enabled layers whose plays include this host, in site.yml's order."""
        enabled = self.enabled_layers(host)
        mine = set(self.groups_of(host))
        return [layer for layer, groups in layer_map.items()
                if layer in enabled and (groups is None or mine.intersection(groups))]


def check_hosts(inventory, names, what):
    """Refuse names that are not inventory hosts, listing those that are."""
    unknown = [name for name in names if name not in inventory.hostvars]
    if not names:
        raise UsageError("%s: name at least one host; inventory hosts: %s" % (what, ", ".join(inventory.hosts)))
    if unknown:
        raise UsageError("%s: %s not in the inventory; inventory hosts: %s" % (
            what, ", ".join(unknown), ", ".join(inventory.hosts)))


def check_repair(inventory, layer_map, layer, node):
    """Refuse a layer that does not exist, is not enabled, or does not run on the node; the choices are listed."""
    check_hosts(inventory, [node], "repair")
    if layer not in layer_map:
        raise UsageError("repair: no layer %r; layers: %s" % (layer, ", ".join(layer_map)))
    enabled = inventory.enabled_layers(node)
    if layer not in enabled:
        raise UsageError("repair: layer %s is not enabled for %s (gpulab_layers); enabled: %s" % (
            layer, node, ", ".join(enabled) or "none"))
    choices = inventory.layers_for(node, layer_map)
    if layer not in choices:
        runs_on = sorted(h for h in inventory.hosts if layer in inventory.layers_for(h, layer_map))
        raise UsageError("repair: layer %s does not run on %s (it runs on %s); layers of %s: %s" % (
            layer, node, ", ".join(runs_on) or "no host", node, ", ".join(choices) or "none"))
