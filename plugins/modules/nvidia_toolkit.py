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
        default runtime.
    type: str
    choices: [present, absent]
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
      - V(false) leaves the default runtime as it is; if the module made nvidia the default on an earlier run, V(false)
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
  - This release (0.1.0) ships the interface only; the behaviour comes with issue 4 and the module fails without
    changing anything until then.
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
  description: The runtime's default runtime handler after the run.
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

from ansible.module_utils.basic import AnsibleModule

ISSUE = 4
ISSUE_SUMMARY = "GPU and driver detection, NVIDIA runtime wiring in containerd or CRI-O TOML"


def argument_spec():
    """The module's argument spec; the implementation of issue 4 reuses it as it is."""
    return dict(
        state=dict(type="str", default="present", choices=["present", "absent"]),
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


MODULE_RULES = dict()


def build_module():
    """AnsibleModule with the full argument validation of this module."""
    return AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True, **MODULE_RULES)


def check_arguments(module):
    """Rules between option values that required_if and friends cannot state (they test presence, not truth)."""
    params = module.params
    if params["state"] == "absent" and params["set_as_default"]:
        module.fail_json(
            msg="set_as_default=true contradicts state=absent: the nvidia runtime cannot be removed and made the "
            "default at once; drop set_as_default or use state=present",
            changed=False,
        )


def main():
    module = build_module()
    check_arguments(module)
    module.fail_json(
        msg="gpulab.cluster.nvidia_toolkit is not implemented in this release (0.1.0): its behaviour comes with issue #%d "
        "(%s). Nothing was changed." % (ISSUE, ISSUE_SUMMARY),
        changed=False,
    )


if __name__ == "__main__":
    main()
