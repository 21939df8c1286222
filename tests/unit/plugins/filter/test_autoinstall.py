# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""gpulab.cluster.autoinstall_storage: the Ubuntu autoinstall storage section of a disk_layout layout."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.gpulab.cluster.plugins.filter import autoinstall
from ansible_collections.gpulab.cluster.plugins.filter.autoinstall import autoinstall_storage
from ansible_collections.gpulab.cluster.plugins.module_utils import _disk_layout as dl

GIB = 1024 ** 3
TB_DISK = 1000204886016  # the reference site's 1 TB HDD
REFERENCE = [
    {"name": "esp", "number": 1, "size": "1GiB", "type": "esp", "fs": "vfat", "mount": "/boot/efi"},
    {"name": "root", "number": 2, "size": "50GiB", "fs": "ext4", "mount": "/"},
    {"name": "home", "number": 3, "size": "50GiB", "fs": "ext4", "mount": "/home"},
    {"name": "swap", "number": 4, "size": "16GiB", "type": "swap", "fs": "swap"},
    {"name": "data", "number": 5, "size": "512GiB"},
    {"name": "var", "number": 6, "size": "34GiB", "fs": "ext4", "mount": "/var", "mount_opts": "defaults,noatime"},
]

# The reference layout without its ESP, numbered from 1.
RENUMBERED = [dict(p, number=p["number"] - 1) for p in REFERENCE[1:]]


def by_type(storage, kind):
    return [item for item in storage["config"] if item["type"] == kind]


def test_reference_layout():
    storage = autoinstall_storage(REFERENCE, disk_match={"serial": "Z9A1B2C3"})
    assert storage["swap"] == {"size": 0}
    assert storage["config"][0] == {"type": "disk", "id": "disk0", "ptable": "gpt", "wipe": "superblock-recursive",
                                    "preserve": False, "match": {"serial": "Z9A1B2C3"}, "grub_device": False}
    parts = by_type(storage, "partition")
    assert [(p["number"], p["size"], p.get("flag")) for p in parts] == [
        (1, GIB, "boot"), (2, 50 * GIB, None), (3, 50 * GIB, None), (4, 16 * GIB, "swap"), (5, 512 * GIB, None),
        (6, 34 * GIB, None)]
    assert parts[0]["grub_device"] is True
    assert all(p["device"] == "disk0" and p["preserve"] is False and p["wipe"] == "superblock" for p in parts)
    formats = by_type(storage, "format")
    # /data (Ceph) gets no format; swap is formatted.
    assert [(f["volume"], f["fstype"]) for f in formats] == [
        ("disk0-part1", "fat32"), ("disk0-part2", "ext4"), ("disk0-part3", "ext4"), ("disk0-part4", "swap"),
        ("disk0-part6", "ext4")]
    mounts = by_type(storage, "mount")
    # Parents first; swap and /data not mounted.
    assert [(m["path"], m["device"]) for m in mounts] == [
        ("/", "disk0-part2-fs"), ("/home", "disk0-part3-fs"), ("/var", "disk0-part6-fs"),
        ("/boot/efi", "disk0-part1-fs")]
    assert mounts[2]["options"] == "defaults,noatime"
    assert "options" not in mounts[0]
    # Every reference to an id points at an earlier action.
    seen = set()
    for item in storage["config"]:
        for key in ("device", "volume"):
            if key in item:
                assert item[key] in seen
        seen.add(item["id"])


def test_sizes_agree_with_the_module_plan_on_the_reference_disk():
    storage = autoinstall_storage(REFERENCE, disk_size_bytes=TB_DISK)
    disk = {"path": "/dev/sda", "size_bytes": TB_DISK, "sector_size": 512, "table": "none", "signature": None,
            "in_use": [], "partitions": []}
    disk["first_lba"], disk["last_lba"] = dl.gpt_usable(TB_DISK // 512, 512)
    layout = [dict(p, mount_opts=p.get("mount_opts"), type=p.get("type", "linux"), fs=p.get("fs"),
                   mount=p.get("mount")) for p in REFERENCE]
    plan = dl.compute_plan(layout, disk)
    assert [p["size"] for p in by_type(storage, "partition")] == [e["size_bytes"] for e in plan["entries"]]


def test_rest_last_becomes_minus_one():
    layout = REFERENCE[:4] + [{"name": "data", "number": 5, "size": "rest"}]
    assert by_type(autoinstall_storage(layout), "partition")[-1]["size"] == -1


def test_rest_and_percent_with_the_disk_size():
    layout = [dict(REFERENCE[0]), {"name": "root", "number": 2, "size": "rest", "fs": "ext4", "mount": "/"},
              {"name": "data", "number": 3, "size": "10%"}]
    sizes = [p["size"] for p in by_type(autoinstall_storage(layout, disk_size_bytes=100 * GIB), "partition")]
    assert sizes == [GIB, 100 * GIB - GIB - 10 * GIB - 2 * 1024 * 1024, 10 * GIB]


def test_bios_gets_a_bios_grub_partition_in_front():
    layout = [dict(p, number=p["number"] + 1) for p in REFERENCE[1:]]
    storage = autoinstall_storage(layout, firmware="bios")
    parts = by_type(storage, "partition")
    assert parts[0] == {"type": "partition", "id": "disk0-part1", "device": "disk0", "number": 1, "size": 1024 * 1024,
                        "wipe": "superblock", "preserve": False, "flag": "bios_grub"}
    assert storage["config"][0]["grub_device"] is True


def test_uefi_gets_an_esp_in_front_when_number_1_is_free():
    layout = [dict(p, number=p["number"] + 1) for p in REFERENCE[1:]]
    storage = autoinstall_storage(layout, esp_size="512MiB")
    assert by_type(storage, "partition")[0]["size"] == 512 * 1024 * 1024
    assert by_type(storage, "mount")[-1] == {
        "type": "mount", "id": "disk0-part1-mount", "device": "disk0-part1-fs", "path": "/boot/efi",
        "options": "umask=0077"}


@pytest.mark.parametrize("layout, kwargs, words", [
    (RENUMBERED, {}, "firmware uefi needs an EFI system partition and the layout has none, and number 1 is taken"),
    (RENUMBERED, {"firmware": "bios"}, "{name: bios_grub, number: 1, size: 1MiB, type: bios_grub}"),
    ([dict(REFERENCE[0], mount="/efi")] + REFERENCE[1:], {}, "EFI system partition 'esp' needs fs vfat and mount"),
    ([dict(p, number=None) for p in REFERENCE], {}, "partition(s) 'esp', 'root', 'home', 'swap', 'data', 'var' have "
                                                    "no number"),
    (list(reversed(REFERENCE)), {}, "are not in disk order"),
    (REFERENCE[:2] + [{"name": "x", "number": 3, "size": "rest"}] + REFERENCE[3:], {},
     "partition 'x' has size rest and is not the last partition"),
    (REFERENCE[:2] + [{"name": "x", "number": 3, "size": "10%"}], {}, "give disk_size_bytes"),
    (REFERENCE, {"disk_size_bytes": 500 * GIB}, "partition 'data' (512GiB, 524288 MiB) does not fit on /dev/disk"),
    (REFERENCE + [{"name": "data", "number": 7, "size": "1GiB"}], {}, "'data' is used twice"),
    (REFERENCE[:1] + [{"name": "x", "number": 2, "size": "1GB"}], {}, "decimal unit"),
    ([{"name": "x", "number": 2, "size": "1GiB", "mount": "/x"}], {"firmware": "bios"},
     "missing parameter(s) required by 'mount': fs"),
    ([{"name": "x", "number": 2, "size": "1GiB", "colour": "red"}], {}, "colour"),
    (["root"], {}, "the layout is not valid"),
    ("root", {}, "expects the layout"),
    (REFERENCE, {"firmware": "coreboot"}, "firmware must be uefi or bios"),
    (REFERENCE, {"disk_match": "/dev/sda"}, "disk_match is the installer's match of the disk"),
    (REFERENCE, {"disk_match": {}}, "disk_match is the installer's match of the disk"),
    (REFERENCE, {"disk_size_bytes": "1TB"}, "disk_size_bytes must be a whole number"),
    (REFERENCE[1:], {"esp_size": "1GB"}, "esp_size: size '1GB' uses a decimal unit"),
])
def test_bad_input_names_the_problem(layout, kwargs, words):
    with pytest.raises(AnsibleFilterError) as info:
        autoinstall_storage(layout, **kwargs)
    assert words in str(info.value)


def test_filter_module_exports_the_filter():
    assert autoinstall.FilterModule().filters() == {"autoinstall_storage": autoinstall_storage}
