# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Filters for Ubuntu autoinstall files: gpulab.cluster.autoinstall_storage (documented in autoinstall_storage.yml).

The layout is the one gpulab.cluster.disk_layout takes; its options, sizes and types are read by the same code
(module_utils/_disk_layout.py), so a node reinstalled from the generated file and the module agree on every
partition.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.gpulab.cluster.plugins.module_utils import _disk_layout as dl

FIRMWARES = ("uefi", "bios")
# curtin format fstype for each filesystem of the layout.
CURTIN_FSTYPES = {"ext4": "ext4", "xfs": "xfs", "btrfs": "btrfs", "vfat": "fat32", "swap": "swap"}
# curtin partition flag for each partition type of the layout (a Linux filesystem partition has none).
CURTIN_FLAGS = {"esp": "boot", "bios_grub": "bios_grub", "swap": "swap", "lvm": "lvm", "raid": "raid"}
BIOS_GRUB_SIZE = "1MiB"
DISK_ID = "disk0"


def _validated(layout):
    """The layout as the module's argument spec normalizes it (defaults filled), or AnsibleFilterError."""
    if not isinstance(layout, (list, tuple)):
        raise AnsibleFilterError(
            "autoinstall_storage expects the layout (a list of partitions, as gpulab.cluster.disk_layout's partitions "
            "option takes it), got %s" % type(layout).__name__)
    spec = {
        "partitions": dict(type="list", elements="dict", required=True,
                           options=dict((key, dict(value)) for key, value in dl.PARTITION_OPTIONS.items()),
                           required_by=dict(dl.PARTITION_REQUIRED_BY)),
    }
    result = ArgumentSpecValidator(spec).validate({"partitions": [dict(part) if isinstance(part, Mapping) else part
                                                                  for part in layout]})
    if result.error_messages:
        raise AnsibleFilterError("autoinstall_storage: the layout is not valid: %s" % "; ".join(result.error_messages))
    return result.validated_parameters["partitions"]


def _boot_partition(layout, firmware, esp_size):
    """The partition the firmware needs, added as number 1 in front when the layout has none; or an error."""
    wanted = "esp" if firmware == "uefi" else "bios_grub"
    present = [part for part in layout if part["type"] == wanted]
    if firmware == "uefi":
        for part in present:
            if part["fs"] != "vfat" or part["mount"] != "/boot/efi":
                raise AnsibleFilterError(
                    "autoinstall_storage: EFI system partition %r needs fs vfat and mount /boot/efi for the Ubuntu "
                    "installer" % part["name"])
    if present:
        return layout
    if any(part["number"] == 1 for part in layout):
        example = ("{name: esp, number: 1, size: 1GiB, type: esp, fs: vfat, mount: /boot/efi}" if firmware == "uefi"
                   else "{name: bios_grub, number: 1, size: 1MiB, type: bios_grub}")
        raise AnsibleFilterError(
            "autoinstall_storage: firmware %s needs %s partition and the layout has none, and number 1 is taken; "
            "add one to the layout, for example %s, and renumber the others" % (
                firmware, "an EFI system" if firmware == "uefi" else "a bios_grub", example))
    if firmware == "uefi":
        boot = {"name": "esp", "number": 1, "size": esp_size, "type": "esp", "fs": "vfat", "mount": "/boot/efi",
                "mount_opts": "umask=0077"}
    else:
        boot = {"name": "bios_grub", "number": 1, "size": BIOS_GRUB_SIZE, "type": "bios_grub", "fs": None,
                "mount": None, "mount_opts": None}
    return [boot] + list(layout)


def _sizes(layout, disk_size_bytes):
    """Bytes per partition (-1 for the rest when the disk size is not known), checked to fit when it is."""
    if disk_size_bytes is not None:
        empty = {
            "path": "/dev/disk", "size_bytes": disk_size_bytes, "sector_size": 512, "table": "none",
            "signature": None, "in_use": [], "partitions": [],
        }
        empty["first_lba"], empty["last_lba"] = dl.gpt_usable(disk_size_bytes // 512, 512)
        try:
            plan = dl.compute_plan(layout, empty)
        except dl.LayoutError as exc:
            raise AnsibleFilterError("autoinstall_storage: %s" % exc)
        return [entry["size_bytes"] for entry in plan["entries"]]
    problems = dl.validate_layout(layout)
    if problems:
        raise AnsibleFilterError("autoinstall_storage: %s" % "; ".join(problems))
    sizes = []
    for index, part in enumerate(layout):
        kind, dummy = dl.parse_size(part["size"])
        if kind == "percent":
            raise AnsibleFilterError(
                "autoinstall_storage: partition %r has size %s, a share of the disk; give disk_size_bytes so that it "
                "can be turned into bytes" % (part["name"], part["size"]))
        if kind == "rest":
            if index != len(layout) - 1:
                raise AnsibleFilterError(
                    "autoinstall_storage: partition %r has size rest and is not the last partition; the installer "
                    "fills the rest only with the last one: move it last or give disk_size_bytes" % part["name"])
            sizes.append(-1)
        else:
            sizes.append(dl.size_bytes(part["size"]))
    return sizes


def _order(layout):
    numbers = [part["number"] for part in layout]
    if None in numbers:
        missing = [part["name"] for part in layout if part["number"] is None]
        raise AnsibleFilterError(
            "autoinstall_storage: partition(s) %s have no number; the installer leaves partitions without GPT names, "
            "so gpulab.cluster.disk_layout finds them again after the installation by number only: give every "
            "partition of the layout a number" % ", ".join(repr(name) for name in missing))
    if numbers != sorted(numbers):
        raise AnsibleFilterError(
            "autoinstall_storage: the layout's partition numbers %s are not in disk order; the installer creates "
            "partitions in order, so list them by increasing number" % numbers)


def autoinstall_storage(layout, disk_match=None, firmware="uefi", disk_size_bytes=None, esp_size="1GiB"):
    """The storage section (curtin action list) of an Ubuntu autoinstall file for the layout."""
    if firmware not in FIRMWARES:
        raise AnsibleFilterError("autoinstall_storage: firmware must be uefi or bios, not %r" % (firmware,))
    if disk_match is None:
        disk_match = {"size": "largest"}
    if not isinstance(disk_match, Mapping) or not disk_match:
        raise AnsibleFilterError(
            "autoinstall_storage: disk_match is the installer's match of the disk, a mapping such as {serial: "
            "Z9A1B2C3} or {size: largest}, not %r" % (disk_match,))
    if disk_size_bytes is not None and (isinstance(disk_size_bytes, bool) or not isinstance(disk_size_bytes, int)):
        raise AnsibleFilterError("autoinstall_storage: disk_size_bytes must be a whole number of bytes")
    try:
        dl.parse_size(esp_size)
    except ValueError as exc:
        raise AnsibleFilterError("autoinstall_storage: esp_size: %s" % exc)
    layout = _boot_partition(_validated(layout), firmware, esp_size)
    _order(layout)
    sizes = _sizes(layout, disk_size_bytes)

    disk = {"type": "disk", "id": DISK_ID, "ptable": "gpt", "wipe": "superblock-recursive", "preserve": False,
            "match": dict(disk_match), "grub_device": firmware == "bios"}
    partitions, formats, mounts = [], [], []
    for part, size in zip(layout, sizes):
        pid = "%s-part%d" % (DISK_ID, part["number"])
        item = {"type": "partition", "id": pid, "device": DISK_ID, "number": part["number"], "size": size,
                "wipe": "superblock", "preserve": False}
        if part["type"] in CURTIN_FLAGS:
            item["flag"] = CURTIN_FLAGS[part["type"]]
        if part["type"] == "esp":
            item["grub_device"] = firmware == "uefi"
        partitions.append(item)
        if not part["fs"]:
            continue
        formats.append({"type": "format", "id": pid + "-fs", "volume": pid, "fstype": CURTIN_FSTYPES[part["fs"]],
                        "preserve": False})
        if part["mount"]:
            mount = {"type": "mount", "id": pid + "-mount", "device": pid + "-fs", "path": part["mount"]}
            if part["mount_opts"]:
                mount["options"] = part["mount_opts"]
            mounts.append(mount)
    # Parents before children: / before /home, whatever the layout's order.
    mounts.sort(key=lambda mount: (mount["path"].rstrip("/").count("/"), mount["path"]))
    return {
        # No swap file: swap on Kubernetes nodes is gpulab.cluster.swap's business (off).
        "swap": {"size": 0},
        "config": [disk] + partitions + formats + mounts,
    }


class FilterModule(object):
    """gpulab.cluster autoinstall filters."""

    def filters(self):
        return {
            "autoinstall_storage": autoinstall_storage,
        }
