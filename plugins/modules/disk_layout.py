#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: disk_layout
short_description: Bring one disk to a declared GPT partition layout
version_added: 0.1.0
description:
  - Declares the GPT partition layout of one disk as a list of partitions, each with a GPT name, a size, a partition
    type, an optional filesystem and an optional mount point.
  - Reads the current partition table (C(sfdisk --json), C(lsblk --json)), computes a plan, creates the partitions
    that are missing in the disk's free space, creates filesystems on the partitions it has just created (never on
    existing ones), and manages the C(/etc/fstab) entries of the mounted partitions by filesystem UUID.
  - Existing partitions are matched to the layout by GPT partition name (PARTLABEL), or by O(partitions[].number)
    where that is given. Any change to a matched partition (delete, shrink, grow, move, another type or another
    filesystem) is destructive and is refused unless O(allow_destructive=true) and the disk's identity matches
    O(disk_serial), O(disk_wwn) or O(disk_size_bytes).
  - Partitions on the disk that the layout does not name are never touched, and their space is not free space.
  - The whole plan is checked before the first change. A layout that does not fit the disk, partitions that overlap,
    a device that does not exist or is not a whole disk, an identity that does not match, or a destructive change
    without permission fail with the partition and the numbers named, and nothing is changed.
options:
  device:
    description:
      - The disk, as a kernel name such as V(/dev/sda) or a stable link such as V(/dev/disk/by-id/wwn-0x5000c500a1b2c3d4).
      - A partition, a device that is not a block device or a path that does not exist is refused.
    type: path
    required: true
  partitions:
    description:
      - The layout, in disk order. New partitions are placed, in this order, in the free space after the last
        existing partition, aligned to 1 MiB.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - GPT partition name (PARTLABEL), unique within the layout. The module finds the partition by this name on
            later runs.
        type: str
        required: true
      number:
        description:
          - Partition number.
          - With it, an existing partition that carries no GPT name (as the Ubuntu installer leaves them) is adopted
            into the layout; the module then writes O(partitions[].name) as its GPT name, which is not destructive.
          - Without it, a new partition takes the lowest free number.
        type: int
      size:
        description:
          - Size as a whole number with a binary unit, V(MiB), V(GiB) or V(TiB) (V(M), V(G) and V(T) mean the same
            units, as sfdisk and the Ubuntu installer read them), for example V(512GiB) or V(16G).
          - Or a percentage of the whole disk, for example V(25%).
          - Or V(rest) for all the free space left once the other partitions are placed; at most one partition of the
            layout may use it.
          - Decimal units (V(GB), V(MB)) are refused, being a common source of partitions 7% smaller than planned.
        type: str
        required: true
      type:
        description:
          - GPT partition type.
        type: str
        choices: [linux, swap, esp, bios_grub, lvm, raid]
        default: linux
      fs:
        description:
          - Filesystem created on the partition when the module creates the partition.
          - Omit for a partition without a filesystem, such as the reference site's C(/data) handed to Ceph.
          - V(swap) writes a swap signature only; the module never adds a swap line to fstab and never activates swap
            (that is M(gpulab.cluster.swap)'s business, which keeps it off on Kubernetes nodes).
        type: str
        choices: [ext4, xfs, btrfs, vfat, swap]
      mount:
        description:
          - Mount point. The module keeps one C(/etc/fstab) entry for it, C(UUID=<fs uuid>), and comments out (never
            deletes) any other line for the same mount point.
          - Requires O(partitions[].fs).
        type: path
      mount_opts:
        description:
          - Mount options of the fstab entry. When omitted, V(defaults).
          - Requires O(partitions[].mount).
        type: str
  allow_destructive:
    description:
      - Permission to delete, shrink, grow, move, retype or reformat an existing partition of the layout.
      - Requires at least one of O(disk_serial), O(disk_wwn), O(disk_size_bytes), and every one given must match the
        disk, so that a device name that moved to another disk cannot destroy the wrong data.
    type: bool
    default: false
  disk_serial:
    description:
      - Expected serial number of the disk, as C(lsblk -o SERIAL) shows it.
      - Checked on every run when set, destructive or not; a mismatch fails before any change.
    type: str
  disk_wwn:
    description:
      - Expected World Wide Name of the disk, as C(lsblk -o WWN) shows it, for example V(0x5000c500a1b2c3d4).
      - Checked on every run when set; a mismatch fails before any change.
    type: str
  disk_size_bytes:
    description:
      - Expected size of the disk in bytes, exactly as C(lsblk --bytes -o SIZE) shows it.
      - Checked on every run when set; a mismatch fails before any change.
    type: int
  mount_state:
    description:
      - V(present) keeps the fstab entries only; the filesystems are mounted at the next boot.
      - V(mounted) also mounts them now, and refuses to mount over a directory that is not empty (a new C(/var) over
        the running system's C(/var) would hide it).
    type: str
    choices: [present, mounted]
    default: present
notes:
  - Only GPT. A disk without a partition table gets a new GPT; a disk with another table (MBR) is refused unless
    O(allow_destructive=true) with a matching identity.
  - Sizes of existing partitions are compared with a tolerance of the 1 MiB alignment.
  - Check mode computes the same plan as a real run and reports exactly the changes the real run would make; diff
    mode shows the partition table before and after (C(sfdisk --dump) form) and the fstab change.
  - The storage section of an Ubuntu autoinstall file for the same layout is generated by the collection's roles
    from the same variables, not by this module.
  - This release (0.1.0) ships the interface only; the behaviour comes with issue 3 and the module fails without
    changing anything until then.
seealso:
  - module: gpulab.cluster.swap
  - module: gpulab.cluster.ceph_osd_prep
  - module: community.general.parted
  - module: ansible.posix.mount
author:
  - gpulab.cluster developers (@gpulab)
extends_documentation_fragment:
  - gpulab.cluster.attributes
  - gpulab.cluster.attributes.FULL
"""

EXAMPLES = r"""
- name: Adopt the reference layout the Ubuntu installer made on a 1 TB node (names it, changes nothing else)
  gpulab.cluster.disk_layout:
    device: /dev/sda
    partitions:
      - {name: root, number: 1, size: 50GiB, fs: ext4, mount: /}
      - {name: home, number: 2, size: 50GiB, fs: ext4, mount: /home}
      - {name: swap, number: 3, size: 16GiB, type: swap, fs: swap}
      - {name: data, number: 4, size: 512GiB}
      - {name: var, number: 5, size: 34GiB, fs: ext4, mount: /var}

- name: Preview the plan for gpu07 without touching the disk
  gpulab.cluster.disk_layout:
    device: /dev/disk/by-id/ata-ST1000DM010-2EP102_Z9A1B2C3
    partitions: "{{ gpulab_disk_layout }}"
  check_mode: true
  diff: true
  register: gpu07_disk

- name: Show what a real run would do
  ansible.builtin.debug:
    var: gpu07_disk.actions

- name: Lay out an empty second disk and mount its filesystems now
  gpulab.cluster.disk_layout:
    device: /dev/sdb
    partitions:
      - {name: scratch, size: 100GiB, fs: xfs, mount: /scratch, mount_opts: "defaults,noatime"}
      - {name: data, size: rest}
    mount_state: mounted

- name: Recreate the /data partition of gpu07 at 512 GiB, only on the disk with this serial
  gpulab.cluster.disk_layout:
    device: /dev/sda
    partitions:
      - {name: root, number: 1, size: 50GiB, fs: ext4, mount: /}
      - {name: home, number: 2, size: 50GiB, fs: ext4, mount: /home}
      - {name: swap, number: 3, size: 16GiB, type: swap, fs: swap}
      - {name: data, number: 4, size: 512GiB}
      - {name: var, number: 5, size: 34GiB, fs: ext4, mount: /var}
    allow_destructive: true
    disk_serial: Z9A1B2C3
    disk_size_bytes: 1000204886016
"""

RETURN = r"""
device:
  description: The disk the layout was applied to, resolved to its kernel name.
  returned: always
  type: str
  sample: /dev/sda
disk:
  description: Identity and geometry of the disk as read before any change.
  returned: always
  type: dict
  contains:
    model:
      description: Model name.
      type: str
      sample: ST1000DM010-2EP102
    serial:
      description: Serial number.
      type: str
      sample: Z9A1B2C3
    wwn:
      description: World Wide Name, or null when the disk has none.
      type: str
      sample: "0x5000c500a1b2c3d4"
    size_bytes:
      description: Size in bytes.
      type: int
      sample: 1000204886016
    sector_size:
      description: Logical sector size in bytes.
      type: int
      sample: 512
    rotational:
      description: Whether the disk is a spinning disk.
      type: bool
      sample: true
    table:
      description: Partition table found, V(gpt), V(dos) or V(none).
      type: str
      sample: gpt
  sample:
    model: ST1000DM010-2EP102
    serial: Z9A1B2C3
    wwn: "0x5000c500a1b2c3d4"
    size_bytes: 1000204886016
    sector_size: 512
    rotational: true
    table: gpt
plan:
  description:
    - One entry per partition of the layout, in layout order, with where it lies or will lie and what the run does
      to it.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: GPT partition name.
      type: str
      sample: data
    number:
      description: Partition number, existing or planned.
      type: int
      sample: 4
    path:
      description: Partition device path, existing or planned.
      type: str
      sample: /dev/sda4
    start_bytes:
      description: Offset of the partition's first byte.
      type: int
      sample: 124555100160
    size_bytes:
      description: Size in bytes after the run.
      type: int
      sample: 549755813888
    type:
      description: GPT partition type, as in O(partitions[].type).
      type: str
      sample: linux
    fs:
      description: Filesystem, or null for none.
      type: str
      sample: null
    mount:
      description: Mount point, or null.
      type: str
      sample: null
    status:
      description:
        - V(ok) when the partition already matches, V(adopt) when an unnamed partition receives its GPT name,
          V(create) when it is created, V(change) when an existing partition is changed destructively.
      type: str
      sample: ok
actions:
  description: The changes made (or, in check mode, that would be made), in order, as readable sentences.
  returned: always
  type: list
  elements: str
  sample:
    - create partition 1 'scratch' on /dev/sdb at 1048576, 107374182400 bytes
    - mkfs.xfs /dev/sdb1
    - fstab add UUID=3b2f6a1e-0c1d-4c55-9a57-1f0f1e2d3c4b /scratch xfs defaults,noatime 0 0
    - mount /scratch
layout:
  description: The partitions of the whole disk after the run (before, in check mode), including those the layout does
    not name.
  returned: always
  type: list
  elements: dict
  contains:
    number:
      description: Partition number.
      type: int
      sample: 4
    name:
      description: GPT partition name, or null.
      type: str
      sample: data
    path:
      description: Device path.
      type: str
      sample: /dev/sda4
    partuuid:
      description: GPT partition UUID.
      type: str
      sample: 6a1b7c0e-93f4-4d59-8f1e-2c5d7e9a0b11
    type_guid:
      description: GPT partition type GUID.
      type: str
      sample: 0FC63DAF-8483-4772-8E79-3D69D8477DE4
    start_bytes:
      description: Offset of the first byte.
      type: int
      sample: 124555100160
    size_bytes:
      description: Size in bytes.
      type: int
      sample: 549755813888
    fs:
      description: Filesystem found on it, or null.
      type: str
      sample: null
    uuid:
      description: Filesystem UUID, or null.
      type: str
      sample: null
    mount:
      description: Where it is mounted now, or null.
      type: str
      sample: null
free_bytes:
  description: Unpartitioned space left on the disk after the run.
  returned: always
  type: int
  sample: 289397186048
"""

from ansible.module_utils.basic import AnsibleModule

ISSUE = 3
ISSUE_SUMMARY = "plan vs current GPT layout, create missing partitions, filesystems and fstab entries"


def argument_spec():
    """The module's argument spec; the implementation of issue 3 reuses it as it is."""
    return dict(
        device=dict(type="path", required=True),
        partitions=dict(
            type="list",
            elements="dict",
            required=True,
            options=dict(
                name=dict(type="str", required=True),
                number=dict(type="int"),
                size=dict(type="str", required=True),
                type=dict(type="str", default="linux", choices=["linux", "swap", "esp", "bios_grub", "lvm", "raid"]),
                fs=dict(type="str", choices=["ext4", "xfs", "btrfs", "vfat", "swap"]),
                mount=dict(type="path"),
                mount_opts=dict(type="str"),
            ),
            required_by=dict(mount="fs", mount_opts="mount"),
        ),
        allow_destructive=dict(type="bool", default=False),
        disk_serial=dict(type="str"),
        disk_wwn=dict(type="str"),
        disk_size_bytes=dict(type="int"),
        mount_state=dict(type="str", default="present", choices=["present", "mounted"]),
    )


MODULE_RULES = dict(
    required_if=[
        ("allow_destructive", True, ("disk_serial", "disk_wwn", "disk_size_bytes"), True),
    ],
)


def build_module():
    """AnsibleModule with the full argument validation of this module."""
    return AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True, **MODULE_RULES)


def main():
    module = build_module()
    module.fail_json(
        msg="gpulab.cluster.disk_layout is not implemented in this release (0.1.0): its behaviour comes with issue #%d "
        "(%s). Nothing was changed." % (ISSUE, ISSUE_SUMMARY),
        changed=False,
    )


if __name__ == "__main__":
    main()
