# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where containerd and CRI-O keep the settings this collection manages, and how a TOML file is edited.

containerd writes its configuration in two layouts: ``version = 2`` (containerd 1.6 and 1.7, the CRI plugin
``io.containerd.grpc.v1.cri``) and ``version = 3`` (containerd 2.x, the CRI plugin split into
``io.containerd.cri.v1.runtime`` and ``io.containerd.cri.v1.images``). A file without a version is version 1,
which containerd 2.x no longer reads and which this collection refuses. CRI-O reads drop-ins from
``/etc/crio/crio.conf.d``; the collection writes drop-ins of its own there and leaves ``crio.conf`` alone.

``TomlConfig`` reads a file, applies settings and removals with ``_toml.TomlDocument`` (every other line kept),
and writes it atomically; modules report ``changes`` (one line per key) and the before/after diff.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.gpulab.cluster.plugins.module_utils._fstab import FstabError, read_text, write_text_atomic
from ansible_collections.gpulab.cluster.plugins.module_utils._toml import TomlDocument, TomlError, dumps_value

CONTAINERD_CONFIG = "/etc/containerd/config.toml"
CRIO_DROPIN_DIR = "/etc/crio/crio.conf.d"
RUNC_RUNTIME_TYPE = "io.containerd.runc.v2"

_V2_CRI = ("plugins", "io.containerd.grpc.v1.cri")
_V3_RUNTIME = ("plugins", "io.containerd.cri.v1.runtime")
_V3_IMAGES = ("plugins", "io.containerd.cri.v1.images")

# Per containerd configuration version: the TOML path of each setting.
CONTAINERD_PATHS = {
    2: dict(
        runtimes=_V2_CRI + ("containerd", "runtimes"),
        default_runtime=_V2_CRI + ("containerd", "default_runtime_name"),
        sandbox_image=_V2_CRI + ("sandbox_image",),
        registry_config_path=_V2_CRI + ("registry", "config_path"),
        cri_plugin_names=("cri", "io.containerd.grpc.v1.cri"),
    ),
    3: dict(
        runtimes=_V3_RUNTIME + ("containerd", "runtimes"),
        default_runtime=_V3_RUNTIME + ("containerd", "default_runtime_name"),
        sandbox_image=_V3_IMAGES + ("pinned_images", "sandbox"),
        registry_config_path=_V3_IMAGES + ("registry", "config_path"),
        cri_plugin_names=("cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images",
                          "io.containerd.grpc.v1.cri"),
    ),
}

# CRI-O: the keys of crio.conf (and its drop-ins) this collection sets.
CRIO_PATHS = dict(
    cgroup_manager=("crio", "runtime", "cgroup_manager"),
    conmon_cgroup=("crio", "runtime", "conmon_cgroup"),
    default_runtime=("crio", "runtime", "default_runtime"),
    runtimes=("crio", "runtime", "runtimes"),
    pause_image=("crio", "image", "pause_image"),
)


class RuntimeConfigError(Exception):
    """A configuration the modules cannot use: the message names the file and what to do."""


def dotted(path):
    """A TOML path as a reader would write it: plugins."io.containerd.grpc.v1.cri".sandbox_image."""
    return ".".join(key if key.replace("_", "").replace("-", "").isalnum() else '"%s"' % key for key in path)


def containerd_version(data, path):
    """2 or 3, from the file's top-level ``version``; anything else is refused with the file named."""
    version = data.get("version", 1)
    if version in (2, 3) and not isinstance(version, bool):
        return version
    raise RuntimeConfigError(
        "%s: containerd configuration version %r is not supported: write a version 2 (containerd 1.6/1.7) or 3 "
        "(containerd 2.x) file, e.g. `containerd config migrate` or `containerd config default`, or remove the "
        "file and let the module start from `containerd config default`" % (path, version))


def containerd_base_settings(data, version, systemd_cgroup=None, sandbox_image=None, registry_config_path=None):
    """(settings, removals) for the CRI plugin: enabled, runc's cgroup driver, sandbox image, registry hosts."""
    paths = CONTAINERD_PATHS[version]
    settings = []
    disabled = data.get("disabled_plugins")
    if isinstance(disabled, list):
        kept = [name for name in disabled if name not in paths["cri_plugin_names"]]
        if kept != disabled:  # Docker's containerd.io package ships with the CRI plugin disabled
            settings.append((("disabled_plugins",), kept))
    if systemd_cgroup is not None:
        runc = paths["runtimes"] + ("runc",)
        if not lookup(data, runc + ("runtime_type",)):  # a file without a runc handler (nvidia-ctk's, EKS's) gets one
            settings.append((runc + ("runtime_type",), RUNC_RUNTIME_TYPE))
        settings.append((runc + ("options", "SystemdCgroup"), systemd_cgroup))
    if sandbox_image:
        settings.append((paths["sandbox_image"], sandbox_image))
    if registry_config_path:
        settings.append((paths["registry_config_path"], registry_config_path))
    return settings, []


def containerd_handler_settings(version, name, binary, systemd_cgroup):
    """Settings that register runtime handler ``name`` running ``binary`` through the runc shim."""
    base = CONTAINERD_PATHS[version]["runtimes"] + (name,)
    settings = [
        (base + ("runtime_type",), RUNC_RUNTIME_TYPE),
        (base + ("options", "BinaryName"), binary),
    ]
    if systemd_cgroup is not None:
        settings.append((base + ("options", "SystemdCgroup"), systemd_cgroup))
    return settings


def crio_handler_settings(name, binary):
    base = CRIO_PATHS["runtimes"] + (name,)
    return [(base + ("runtime_path",), binary), (base + ("runtime_type",), "oci")]


def lookup(data, path, default=None):
    node = data
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return node


class TomlConfig(object):
    """One TOML configuration file: read, edited with settings and removals, written atomically."""

    def __init__(self, path, initial_text=None):
        self.path = path
        try:
            text = read_text(path)
        except FstabError as exc:
            raise RuntimeConfigError(str(exc))
        self.existed = text is not None
        self.before = text if text is not None else (initial_text or "")
        try:
            self.doc = TomlDocument(self.before)
        except TomlError as exc:
            what = path if self.existed else "the starting configuration for %s" % path
            raise RuntimeConfigError("%s does not parse as TOML (%s): fix or remove it, nothing was changed" % (what, exc))
        self.changes = []

    @property
    def data(self):
        return self.doc.data

    @property
    def text(self):
        return self.doc.text

    def apply(self, settings=(), removals=()):
        """Set each (path, value) and remove each path; record one line per changed key."""
        for path, value in settings:
            old = self.doc.get(path)
            try:
                if self.doc.set(path, value):
                    self.changes.append("%s: %s -> %s" % (
                        dotted(path), "(unset)" if old is None else dumps_value(old), dumps_value(value)))
            except TomlError as exc:
                raise RuntimeConfigError("%s: cannot set %s (%s), nothing was changed" % (self.path, dotted(path), exc))
        for path in removals:
            old = self.doc.get(path)
            try:
                if self.doc.remove(path):
                    self.changes.append("%s: %s -> (removed)" % (dotted(path), dumps_value(old)))
            except TomlError as exc:
                raise RuntimeConfigError("%s: cannot remove %s (%s), nothing was changed" % (self.path, dotted(path), exc))

    def replace(self, text, why):
        """Start over from ``text`` (the file's old text stays the diff's "before")."""
        try:
            self.doc = TomlDocument(text)
        except TomlError as exc:
            raise RuntimeConfigError("the new starting configuration for %s does not parse as TOML (%s), nothing was changed"
                                     % (self.path, exc))
        self.changes.append(why)

    def remove_table(self, path):
        """Remove a table with its sub-tables (a runtime handler and its options)."""
        try:
            if self.doc.remove_table(path):
                self.changes.append("%s: (table removed)" % dotted(path))
        except TomlError as exc:
            raise RuntimeConfigError("%s: cannot remove %s (%s), nothing was changed" % (self.path, dotted(path), exc))

    @property
    def changed(self):
        return not self.existed or self.text != self.before

    def diff(self):
        return dict(before=self.before if self.existed else "", after=self.text,
                    before_header=self.path if self.existed else "%s (absent)" % self.path, after_header=self.path)

    def write(self, module, backup=False):
        """Write the new text (not in check mode); returns the backup file's path or None."""
        backup_file = None
        if module.check_mode or not self.changed:
            return backup_file
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            os.makedirs(folder, 0o755)
        if backup and self.existed:
            backup_file = module.backup_local(self.path)
        write_text_atomic(module, os.path.realpath(self.path), self.text, mode=0o644)
        return backup_file
