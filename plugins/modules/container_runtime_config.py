#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: container_runtime_config
short_description: Set the Kubernetes settings of containerd's config.toml or of a CRI-O drop-in, editing the TOML
version_added: 0.1.0
description:
  - Sets what a kubeadm node needs from its container runtime, and nothing else, by editing the runtime's TOML
    configuration in place; every other table, key and comment stays as it was (what the package, an operator or
    C(nvidia-ctk) wrote).
  - "containerd: the CRI plugin enabled (removed from C(disabled_plugins), where Docker's C(containerd.io) package
    puts it), C(SystemdCgroup) of the runc handler, the sandbox (pause) image and the registry hosts folder
    (C(config_path), read for C(hosts.toml) files of registry mirrors). Configuration versions 2 (containerd 1.6 and
    1.7) and 3 (containerd 2.x) are told apart by the file's C(version) and their own table paths used."
  - When C(config.toml) does not exist, the module starts from what C(containerd config default) prints on the node
    (the installed containerd's own defaults, not a template), then applies the settings. So it does when the file is
    the stub of Docker's C(containerd.io) package (no C(version), nothing set but C(disabled_plugins)); any other
    version 1 file is refused.
  - "CRI-O: a drop-in of the collection's own in C(/etc/crio/crio.conf.d) with C(cgroup_manager), C(conmon_cgroup) and
    C(pause_image); C(crio.conf) itself is left alone."
  - Writes through a temporary file and a rename, so a failure leaves the old file; a file that does not parse, or a
    containerd configuration of version 1, is refused with its path named and nothing is changed.
  - The module does not restart the runtime; notify a handler when it reports a change.
options:
  runtime:
    description: The container runtime whose configuration is edited.
    type: str
    choices: [containerd, crio]
    default: containerd
  config_path:
    description:
      - The file to edit. When omitted, V(/etc/containerd/config.toml) for containerd and
        V(/etc/crio/crio.conf.d/10-gpulab.conf) for CRI-O.
    type: path
  cgroup_driver:
    description:
      - The cgroup driver, which must match the kubelet's (kubeadm's default is V(systemd)).
      - "containerd: C(SystemdCgroup) of the runc handler. CRI-O: C(cgroup_manager), with C(conmon_cgroup = \"pod\")
        for V(systemd)."
    type: str
    choices: [systemd, cgroupfs]
    default: systemd
  sandbox_image:
    description:
      - The pause image kubelet's pods start with, pinned to the one of the cluster's Kubernetes version
        (C(kubeadm config images list) names it), for example V(registry.k8s.io/pause:3.10).
      - When omitted the file's value is left as it is.
    type: str
  registry_config_path:
    description:
      - containerd only; the folder of per-registry C(hosts.toml) files (registry mirrors).
      - When omitted the file's value is left as it is. Ignored for CRI-O, which reads
        C(/etc/containers/registries.conf.d).
    type: path
  default_config_command:
    description:
      - The command whose output is the starting configuration when O(config_path) does not exist (containerd only).
    type: list
    elements: str
    default: [containerd, config, default]
  backup:
    description: Keep a timestamped copy of the file before changing it.
    type: bool
    default: false
notes:
  - In check mode on a node where containerd is not installed yet (the package is installed by the same run), the
    module cannot read containerd's defaults; it then reports C(changed), as the real run will create the file.
author:
  - gpulab.cluster developers (@gpulab)
extends_documentation_fragment:
  - gpulab.cluster.attributes
  - gpulab.cluster.attributes.FULL
"""

EXAMPLES = r"""
- name: Configure containerd for kubeadm 1.33 with a local registry mirror folder
  gpulab.cluster.container_runtime_config:
    runtime: containerd
    sandbox_image: registry.k8s.io/pause:3.10
    registry_config_path: /etc/containerd/certs.d
  notify: Restart containerd

- name: Configure CRI-O through a drop-in of its own
  gpulab.cluster.container_runtime_config:
    runtime: crio
    sandbox_image: registry.k8s.io/pause:3.10
"""

RETURN = r"""
config_path:
  description: The file read and edited.
  returned: always
  type: str
  sample: /etc/containerd/config.toml
config_version:
  description: The containerd configuration version (2 or 3), or null for CRI-O.
  returned: always
  type: int
  sample: 2
created:
  description: Whether the file did not exist before (it is, or in check mode would be, created).
  returned: always
  type: bool
  sample: false
changes:
  description: One line per key set or removed, with the old and the new value.
  returned: always
  type: list
  elements: str
  sample: ['plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options.SystemdCgroup: false -> true']
backup_file:
  description: Path of the backup copy.
  returned: when O(backup=true) and the file was changed
  type: str
  sample: /etc/containerd/config.toml.12345.2026-11-30@09:30:12~
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpulab.cluster.plugins.module_utils._runtime_config import (
    CONTAINERD_CONFIG,
    CRIO_DROPIN_DIR,
    CRIO_PATHS,
    RuntimeConfigError,
    TomlConfig,
    containerd_base_settings,
    containerd_version,
)

CRIO_DROPIN = CRIO_DROPIN_DIR + "/10-gpulab.conf"


def argument_spec():
    return dict(
        runtime=dict(type="str", default="containerd", choices=["containerd", "crio"]),
        config_path=dict(type="path"),
        cgroup_driver=dict(type="str", default="systemd", choices=["systemd", "cgroupfs"]),
        sandbox_image=dict(type="str"),
        registry_config_path=dict(type="path"),
        default_config_command=dict(type="list", elements="str", default=["containerd", "config", "default"]),
        backup=dict(type="bool", default=False),
    )


def is_package_stub(data):
    """Docker's containerd.io ships a version 1 config.toml that sets only ``disabled_plugins = ["cri"]``."""
    return "version" not in data and set(data) <= set(["disabled_plugins"])


def containerd_default_config(module, path):
    """The text `containerd config default` prints, or None in check mode when containerd is not installed yet."""
    command = list(module.params["default_config_command"])
    binary = module.get_bin_path(command[0])
    if binary is None:
        if module.check_mode:
            return None
        module.fail_json(msg="%s does not exist and %s is not installed to print its defaults: install containerd "
                         "first (the container_runtime role does) or set default_config_command" % (path, command[0]),
                         changed=False)
    rc, out, err = module.run_command([binary] + command[1:])
    if rc != 0:
        module.fail_json(msg="%s failed (rc=%d): %s" % (" ".join(command), rc, err.strip()), changed=False)
    return out


def edit_containerd(module, path):
    params = module.params
    config = TomlConfig(path) if os.path.exists(path) else None
    if config is None or is_package_stub(config.data):
        initial = containerd_default_config(module, path)
        if initial is None:
            module.exit_json(changed=True, config_path=path, config_version=None, created=config is None, changes=[],
                             msg="%s would be written from `containerd config default` once containerd is "
                             "installed (check mode)" % path)
        if config is None:
            config = TomlConfig(path, initial)
        else:
            config.replace(initial, "the package's stub (version 1, only disabled_plugins) replaced by `containerd config default`")
    version = containerd_version(config.data, path)
    settings, removals = containerd_base_settings(
        config.data, version, systemd_cgroup=params["cgroup_driver"] == "systemd",
        sandbox_image=params["sandbox_image"], registry_config_path=params["registry_config_path"])
    config.apply(settings, removals)
    return config, version


def edit_crio(module, path):
    params = module.params
    config = TomlConfig(path, "# Managed by gpulab.cluster.container_runtime_config: CRI-O settings for kubeadm.\n")
    settings = [(CRIO_PATHS["cgroup_manager"], params["cgroup_driver"])]
    if params["cgroup_driver"] == "systemd":
        settings.append((CRIO_PATHS["conmon_cgroup"], "pod"))
    if params["sandbox_image"]:
        settings.append((CRIO_PATHS["pause_image"], params["sandbox_image"]))
    config.apply(settings)
    return config, None


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    runtime = params["runtime"]
    path = params["config_path"] or (CONTAINERD_CONFIG if runtime == "containerd" else CRIO_DROPIN)
    try:
        config, version = edit_containerd(module, path) if runtime == "containerd" else edit_crio(module, path)
        backup_file = config.write(module, params["backup"])
    except RuntimeConfigError as exc:
        module.fail_json(msg=str(exc), changed=False, config_path=path)
    result = dict(changed=config.changed, config_path=path, config_version=version, created=not config.existed,
                  changes=config.changes)
    if backup_file:
        result["backup_file"] = backup_file
    if module._diff and config.changed:
        result["diff"] = config.diff()
    what = "; ".join(config.changes) if config.changes else "nothing to set"
    result["msg"] = "%s %s: %s" % (path, "created" if not config.existed else
                                   ("changed" if config.changed else "already as asked"), what)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
