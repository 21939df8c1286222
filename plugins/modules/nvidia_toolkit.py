#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: nvidia_toolkit
short_description: Detect NVIDIA GPUs and wire the NVIDIA container runtime into containerd or CRI-O
version_added: 0.1.0
description:
  - Detects NVIDIA GPUs from PCI (vendor C(10de)) with their model names, and reads the loaded driver and its version
    (C(nvidia-smi), C(/proc/driver/nvidia/version)) and the NVIDIA Container Toolkit installed.
  - Ensures the container runtime is wired to the NVIDIA runtime; the nvidia runtime handler registered in containerd
    (C(config.toml), configuration versions 2 and 3, that is containerd 1.6, 1.7 and 2.x) or in a CRI-O drop-in,
    with the path of C(nvidia-container-runtime), the systemd cgroup driver, and, when asked, set as the default
    runtime.
  - The TOML file is edited, not templated over; the module merges its keys, keeps every other table and key
    (and the comments, where the format allows), writes to a temporary file and renames it, so a failure leaves
    the old file intact. A file that does not parse is refused with its path named.
  - Installs no packages; the driver and the toolkit are the C(nvidia) role's business. The module reports what it
    finds, including whether a reboot is needed for the installed driver to be the one loaded.
  - On a node without an NVIDIA GPU it changes nothing and says so, unless O(require_gpu=true).
options:
  state:
    description:
      - V(present) registers the NVIDIA runtime handler (and makes it the default with O(set_as_default=true)).
      - V(absent) removes the handler the module manages and, where it was the default, restores V(runc) as the
        default runtime. For CRI-O the drop-in of O(config_path) is the module's own and is removed.
      - V(query) changes nothing and reports what is found (GPUs, driver, toolkit, the runtime's wiring).
    type: str
    choices: [present, absent, query]
    default: present
  runtime:
    description:
      - The container runtime to wire.
    type: str
    choices: [containerd, crio]
    default: containerd
  config_path:
    description:
      - The runtime configuration file to edit.
      - When omitted, V(/etc/containerd/config.toml) for containerd, V(/etc/crio/crio.conf.d/99-nvidia.conf) (a drop-in
        the module owns) for CRI-O.
    type: path
  runtime_name:
    description:
      - Name of the runtime handler in the runtime's configuration, which the Kubernetes RuntimeClass refers to as its
        C(handler).
    type: str
    default: nvidia
  runtime_path:
    description:
      - Path of the NVIDIA container runtime binary.
      - When omitted, C(nvidia-container-runtime) found on the node's PATH; the module fails when it is not
        installed.
    type: path
  set_as_default:
    description:
      - Make the NVIDIA runtime the default runtime of containerd or CRI-O, so that every container, not only those
        of the RuntimeClass, sees the GPUs (needed by tools that do not set a RuntimeClass).
      - V(false) leaves the default runtime as it is; where O(runtime_name) is the default (an earlier run made it so), V(false)
        restores V(runc).
      - V(true) with O(state=absent) is refused.
    type: bool
    default: false
  systemd_cgroup:
    description:
      - Set C(SystemdCgroup = true) in the options of the nvidia runtime handler of containerd, matching the
        kubelet's systemd cgroup driver (a handler without it makes pods restart in a loop).
      - Ignored with O(runtime=crio), whose runtime handlers take the global C(cgroup_manager) that the
        C(container_runtime) role sets to V(systemd).
    type: bool
    default: true
  runtime_class:
    description:
      - Name of the Kubernetes RuntimeClass that will point to O(runtime_name). The module does not create it (the
        C(gpu) role does); it reports it so the role and the device plugin use the same name.
    type: str
    default: nvidia
  require_gpu:
    description:
      - Fail on a node without an NVIDIA GPU instead of reporting it and changing nothing.
    type: bool
    default: false
  backup:
    description:
      - Keep a timestamped copy of the configuration file before changing it.
    type: bool
    default: false
notes:
  - A changed configuration needs a restart of containerd or CRI-O to take effect; the module does not restart it
    (notify a handler when the task reports C(changed)).
  - RV(reboot_required) is true when the kernel module loaded is not the version of the installed driver packages
    (after an upgrade) or when a driver is installed but not loaded.
  - Check mode and diff are exact; diff shows the configuration file before and after.
  - GPUs are read with C(lspci -nn -D), or from C(/sys/bus/pci/devices) where pciutils is not installed; the loaded
    driver from C(/proc/driver/nvidia/version), the installed kernel module from C(modinfo -F version nvidia), the
    models and memory from C(nvidia-smi) when it answers.
  - In check mode on a node where the toolkit or the runtime's configuration is not installed yet (the same run
    installs them), the module reports C(changed), as the real run will wire them.
seealso:
  - name: NVIDIA Container Toolkit, configuring containerd and CRI-O
    description: The upstream installation guide, whose nvidia-ctk edits this module performs idempotently.
    link: https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/install-guide.html
author:
  - gpulab.cluster developers (@gpulab)
extends_documentation_fragment:
  - gpulab.cluster.attributes
  - gpulab.cluster.attributes.FULL
"""

EXAMPLES = r"""
- name: Wire the NVIDIA runtime into containerd on the GPU workers, as the default runtime
  gpulab.cluster.nvidia_toolkit:
    runtime: containerd
    set_as_default: true
    runtime_class: nvidia
  register: gpulab_nvidia
  notify: Restart containerd
  when: inventory_hostname in groups['workers']

- name: Reboot only when the driver of the T400 needs it
  ansible.builtin.reboot:
    reboot_timeout: 900
  throttle: 2
  when: gpulab_nvidia.reboot_required

- name: Wire CRI-O through its own drop-in, leaving runc the default runtime
  gpulab.cluster.nvidia_toolkit:
    runtime: crio
    config_path: /etc/crio/crio.conf.d/99-nvidia.conf
    runtime_path: /usr/bin/nvidia-container-runtime

- name: Fail on a worker whose GPU is missing (reseated card, dead riser)
  gpulab.cluster.nvidia_toolkit:
    require_gpu: true
  check_mode: true

- name: Remove the NVIDIA runtime from containerd on a node that lost its GPU (gpu07)
  gpulab.cluster.nvidia_toolkit:
    state: absent
    backup: true
"""

RETURN = r"""
gpu_count:
  description: Number of NVIDIA GPUs found on the PCI bus.
  returned: always
  type: int
  sample: 1
gpus:
  description: The NVIDIA GPUs found on the PCI bus.
  returned: always
  type: list
  elements: dict
  contains:
    pci_address:
      description: PCI address.
      type: str
      sample: "0000:01:00.0"
    pci_id:
      description: Vendor and device ID.
      type: str
      sample: "10de:1ff2"
    model:
      description: Model name, from nvidia-smi when the driver is loaded, else from the PCI ID database.
      type: str
      sample: NVIDIA T400 4GB
    memory_mib:
      description: GPU memory in MiB, or null when the driver is not loaded.
      type: int
      sample: 4096
  sample:
    - pci_address: "0000:01:00.0"
      pci_id: "10de:1ff2"
      model: NVIDIA T400 4GB
      memory_mib: 4096
models:
  description: The distinct GPU model names found.
  returned: always
  type: list
  elements: str
  sample: [NVIDIA T400 4GB]
driver_loaded:
  description: Whether the nvidia kernel module is loaded.
  returned: always
  type: bool
  sample: true
driver_version:
  description: Version of the loaded driver, or null when none is loaded.
  returned: always
  type: str
  sample: "550.127.05"
driver_installed_version:
  description: Version of the installed driver user-space libraries, or null when none is installed.
  returned: always
  type: str
  sample: "550.127.05"
reboot_required:
  description: Whether the node must reboot for the installed driver to be the one loaded.
  returned: always
  type: bool
  sample: false
reboot_reason:
  description: Why a reboot is needed, or null.
  returned: always
  type: str
  sample: "loaded driver 550.120 differs from installed 550.127.05"
toolkit_version:
  description: Version of the NVIDIA Container Toolkit installed, or null when it is not installed.
  returned: always
  type: str
  sample: "1.17.3"
runtime:
  description: The container runtime wired, as in O(runtime).
  returned: always
  type: str
  sample: containerd
config_path:
  description: The configuration file read and edited.
  returned: always
  type: str
  sample: /etc/containerd/config.toml
config_version:
  description: The containerd configuration version found (2 or 3), or null for CRI-O.
  returned: always
  type: int
  sample: 2
runtime_name:
  description: The runtime handler name.
  returned: always
  type: str
  sample: nvidia
runtime_path:
  description: The NVIDIA runtime binary the handler points to, or null when the handler is absent.
  returned: always
  type: str
  sample: /usr/bin/nvidia-container-runtime
default_runtime:
  description:
    - The runtime's default runtime handler after the run.
    - For CRI-O, null when the module's drop-in sets no default (CRI-O's own default, crun or runc, applies).
  returned: always
  type: str
  sample: nvidia
wired:
  description: Whether the nvidia handler is registered with the settings asked for, after the run.
  returned: always
  type: bool
  sample: true
runtime_class:
  description: The RuntimeClass name to create for the handler, as in O(runtime_class).
  returned: always
  type: str
  sample: nvidia
backup_file:
  description: Path of the backup copy.
  returned: when O(backup=true) and the file was changed
  type: str
  sample: /etc/containerd/config.toml.12345.2026-11-23@18:30:12~
msg:
  description: What the module found and did, in one sentence; on a node without a GPU it says so.
  returned: always
  type: str
  sample: "1 NVIDIA GPU (NVIDIA T400 4GB), driver 550.127.05; nvidia runtime registered in containerd and set as default"
"""


import glob
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpulab.cluster.plugins.module_utils import _nvidia
from ansible_collections.gpulab.cluster.plugins.module_utils._runtime_config import (
    CONTAINERD_CONFIG,
    CONTAINERD_PATHS,
    CRIO_DROPIN_DIR,
    CRIO_PATHS,
    RUNC_RUNTIME_TYPE,
    RuntimeConfigError,
    TomlConfig,
    containerd_handler_settings,
    containerd_version,
    crio_handler_settings,
    lookup,
)

PCI_DEVICES = "/sys/bus/pci/devices"
PROC_VERSION = "/proc/driver/nvidia/version"
CRIO_DROPIN = CRIO_DROPIN_DIR + "/99-nvidia.conf"
TOOLKIT_PACKAGE = "nvidia-container-toolkit"


def argument_spec():
    return dict(
        state=dict(type="str", default="present", choices=["present", "absent", "query"]),
        runtime=dict(type="str", default="containerd", choices=["containerd", "crio"]),
        config_path=dict(type="path"),
        runtime_name=dict(type="str", default="nvidia"),
        runtime_path=dict(type="path"),
        set_as_default=dict(type="bool", default=False),
        systemd_cgroup=dict(type="bool", default=True),
        runtime_class=dict(type="str", default="nvidia"),
        require_gpu=dict(type="bool", default=False),
        backup=dict(type="bool", default=False),
    )


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def _command(module, argv):
    """(rc, stdout, stderr) of argv, or None when its program is not installed."""
    binary = module.get_bin_path(argv[0])
    if binary is None:
        return None
    return module.run_command([binary] + list(argv[1:]))


def find_gpus(module):
    """NVIDIA GPUs on the PCI bus, from lspci or, without pciutils, from sysfs."""
    lspci = _command(module, _nvidia.LSPCI_COMMAND)
    if lspci is not None and lspci[0] == 0:
        return [dict(pci_address=gpu["address"], pci_id=gpu["pci_id"],
                     model=gpu["model"] or "NVIDIA device %s" % gpu["pci_id"], memory_mib=None)
                for gpu in _nvidia.parse_lspci(lspci[1])]
    devices = {}
    for folder in sorted(glob.glob(os.path.join(PCI_DEVICES, "*"))):
        devices[os.path.basename(folder)] = dict(
            (name, _read(os.path.join(folder, name)) or "") for name in ("vendor", "device", "class"))
    return [dict(pci_address=gpu["address"], pci_id=gpu["pci_id"], model="NVIDIA device %s" % gpu["pci_id"],
                 memory_mib=None) for gpu in _nvidia.gpus_from_sysfs(devices)]


def read_driver(module, gpus):
    """Loaded and installed driver versions, nvidia-smi's view, and whether a reboot is needed."""
    loaded = _nvidia.parse_driver_version_file(_read(PROC_VERSION) or "")
    loaded_version = loaded["version"] if loaded else None
    modinfo = _command(module, ["modinfo", "-F", "version", "nvidia"])
    installed = modinfo[1].strip() if modinfo is not None and modinfo[0] == 0 and modinfo[1].strip() else None
    smi_state = None
    if gpus and loaded_version:
        smi = _command(module, _nvidia.NVIDIA_SMI_QUERY)
        rows = None
        if smi is not None and smi[0] == 0:
            try:
                rows = _nvidia.parse_nvidia_smi_query(smi[1])
            except ValueError as exc:
                module.warn("nvidia-smi answered in an unexpected form (%s); models from the PCI ID list" % exc)
                rows = []
        if rows is not None:
            by_bus = dict((row["pci_address"], row) for row in rows)
            for gpu in gpus:
                row = by_bus.get(_nvidia.normalize_pci_address(gpu["pci_address"]))
                if row:
                    gpu["model"], gpu["memory_mib"] = row["name"], row["memory_total_mib"]
        else:
            smi_state = _nvidia.classify_nvidia_smi_failure(*(smi if smi is not None else (127, "", "not installed")))
    reason = None
    if installed and not loaded_version and gpus:
        reason = "driver %s is installed but not loaded" % installed
    elif installed and loaded_version and _nvidia.reboot_needed(loaded_version, installed):
        reason = "loaded driver %s differs from installed %s" % (loaded_version, installed)
    elif smi_state and smi_state["reboot_needed"]:
        reason = smi_state["message"]
    return dict(driver_loaded=loaded_version is not None, driver_version=loaded_version,
                driver_installed_version=installed, reboot_required=reason is not None, reboot_reason=reason)


def toolkit_version(module):
    result = _command(module, ["dpkg-query", "-W", "-f=${Version}", TOOLKIT_PACKAGE])
    if result is None or result[0] != 0 or not result[1].strip():
        return None
    return result[1].strip().split("-")[0]


class Wiring(object):
    """The runtime's configuration and the edits that register (or remove) the nvidia handler."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.runtime = self.params["runtime"]
        default_path = CONTAINERD_CONFIG if self.runtime == "containerd" else CRIO_DROPIN
        self.path = self.params["config_path"] or default_path
        self.name = self.params["runtime_name"]
        self.config = None
        self.version = None
        self.remove_file = False
        self.acted = False

    def load(self):
        """Read the configuration; False when the file does not exist.

        containerd's config.toml must exist (the container_runtime layer writes it); CRI-O's drop-in is the
        module's own and starts empty.
        """
        exists = os.path.exists(self.path)
        if self.runtime == "containerd":
            if not exists:
                return False
            self.config = TomlConfig(self.path)
            self.version = containerd_version(self.config.data, self.path)
        else:
            self.config = TomlConfig(self.path, "# Managed by gpulab.cluster.nvidia_toolkit: the nvidia runtime of CRI-O.\n")
        return exists

    def _default_path(self):
        return CONTAINERD_PATHS[self.version]["default_runtime"] if self.runtime == "containerd" else CRIO_PATHS["default_runtime"]

    def _handler_path(self):
        base = CONTAINERD_PATHS[self.version]["runtimes"] if self.runtime == "containerd" else CRIO_PATHS["runtimes"]
        return base + (self.name,)

    def present(self, binary):
        self.acted = True
        if self.runtime == "containerd":
            settings = containerd_handler_settings(self.version, self.name, binary,
                                                   True if self.params["systemd_cgroup"] else None)
        else:
            settings = crio_handler_settings(self.name, binary)
        default = lookup(self.config.data, self._default_path())
        removals = []
        if self.params["set_as_default"]:
            settings.append((self._default_path(), self.name))
        elif default == self.name and self.runtime == "crio":
            removals.append(self._default_path())  # the drop-in is ours: CRI-O's own default (crun or runc) applies
        elif default == self.name:
            settings.append((self._default_path(), "runc"))
        self.config.apply(settings, removals)

    def absent(self):
        self.acted = True
        if self.runtime == "crio":
            self.remove_file = self.config.existed
            return
        if lookup(self.config.data, self._default_path()) == self.name:
            self.config.apply([(self._default_path(), "runc")])
        if isinstance(lookup(self.config.data, self._handler_path()), dict):
            self.config.remove_table(self._handler_path())

    def changed(self):
        if not self.acted:
            return False
        return self.remove_file or (self.config.changed and not (self.runtime == "crio" and self.params["state"] == "absent"))

    def report(self, wanted_binary):
        """runtime_path, default_runtime and wired, as the file will be after the run."""
        data = self.config.data if self.config is not None else {}
        if self.remove_file:
            data = {}
        handler = lookup(data, self._handler_path()) if self.config is not None else None
        if self.runtime == "containerd":
            binary = lookup(handler or {}, ("options", "BinaryName"))
            ok = bool(handler) and handler.get("runtime_type") == RUNC_RUNTIME_TYPE and binary == wanted_binary
            if ok and self.params["systemd_cgroup"]:
                ok = lookup(handler, ("options", "SystemdCgroup")) is True
        else:
            binary = (handler or {}).get("runtime_path")
            ok = bool(handler) and binary == wanted_binary
        default = lookup(data, self._default_path()) if self.config is not None else None
        if default is None:
            default = "runc" if self.runtime == "containerd" else None
        if self.params["set_as_default"]:
            ok = ok and default == self.name
        return dict(runtime_path=binary, default_runtime=default, wired=bool(ok))

    def write(self):
        if self.remove_file:
            if not self.module.check_mode:
                if self.params["backup"]:
                    self.backup_file = self.module.backup_local(self.path)
                os.unlink(self.path)
            return getattr(self, "backup_file", None)
        return self.config.write(self.module, self.params["backup"])


def summary(gpus, driver):
    if not gpus:
        return "no NVIDIA GPU on the PCI bus"
    models = sorted(set(gpu["model"] for gpu in gpus))
    plural = "" if len(gpus) == 1 else "s"
    return "%d NVIDIA GPU%s (%s), driver %s" % (len(gpus), plural, ", ".join(models), driver["driver_version"] or "not loaded")


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    if params["state"] == "absent" and params["set_as_default"]:
        module.fail_json(
            msg="set_as_default=true contradicts state=absent: the nvidia runtime cannot be removed and made the "
            "default at once; drop set_as_default or use state=present",
            changed=False,
        )
    gpus = find_gpus(module)
    driver = read_driver(module, gpus)
    result = dict(changed=False, gpu_count=len(gpus), gpus=gpus, models=sorted(set(g["model"] for g in gpus)),
                  toolkit_version=toolkit_version(module), runtime=params["runtime"],
                  runtime_name=params["runtime_name"], runtime_class=params["runtime_class"], **driver)
    found = summary(gpus, driver)
    if not gpus and params["require_gpu"]:
        module.fail_json(msg="%s: require_gpu is set and this node has no NVIDIA GPU (vendor 10de) on its PCI bus: "
                         "check the card and its seating, nothing was changed" % found, **result)
    wiring = Wiring(module)
    binary = params["runtime_path"] or module.get_bin_path("nvidia-container-runtime")
    result.update(config_path=wiring.path, config_version=None, runtime_path=None, default_runtime=None, wired=False)
    try:
        exists = wiring.load()
    except RuntimeConfigError as exc:
        if params["state"] == "query" or (params["state"] == "present" and not gpus):
            result["msg"] = "%s; %s" % (found, exc)  # nothing to wire here: the configuration is the runtime layer's
            module.exit_json(**result)
        module.fail_json(msg=str(exc), **result)
    try:
        result["config_version"] = wiring.version
        if params["state"] == "present" and gpus:
            if binary is None or wiring.config is None:
                missing = "nvidia-container-runtime" if binary is None else wiring.path
                if module.check_mode:  # the same run installs it first: the real run will wire it
                    result.update(changed=True, msg="%s; %s is not installed yet, the nvidia runtime would be "
                                  "registered in %s once it is (check mode)" % (found, missing, params["runtime"]))
                    module.exit_json(**result)
                module.fail_json(msg="%s; cannot wire %s: %s is missing (the nvidia role installs the toolkit, the "
                                 "container_runtime role the runtime's configuration; or set runtime_path/config_path), "
                                 "nothing was changed" % (found, params["runtime"], missing), **result)
            wiring.present(binary)
        elif params["state"] == "absent" and exists:
            wiring.absent()
        if wiring.acted:
            backup_file = wiring.write()
            if backup_file:
                result["backup_file"] = backup_file
    except RuntimeConfigError as exc:
        module.fail_json(msg=str(exc), **result)
    if wiring.config is not None:
        result.update(wiring.report(binary))
    result["changed"] = wiring.changed()
    if module._diff and result["changed"]:
        result["diff"] = wiring.config.diff() if not wiring.remove_file else dict(
            before=wiring.config.before, after="", before_header=wiring.path, after_header="%s (removed)" % wiring.path)
    if params["state"] == "query":
        done = "wired" if result["wired"] else "not wired"
        result["msg"] = "%s; nvidia runtime %s in %s" % (found, done, params["runtime"])
    elif params["state"] == "present" and not gpus:
        result["msg"] = "%s: nothing to wire, nothing was changed" % found
    elif params["state"] == "present":
        result["msg"] = "%s; nvidia runtime %s in %s%s" % (
            found, "registered" if result["changed"] else "already registered", params["runtime"],
            " and set as default" if params["set_as_default"] else "")
    else:
        result["msg"] = "%s; nvidia runtime %s from %s" % (
            found, "removed" if result["changed"] else "not present", params["runtime"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
