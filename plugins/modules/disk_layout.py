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
    that are missing in the disk's free space, creates filesystems on the partitions it has just created (on an
    existing one only as a permitted destructive change), and manages the C(/etc/fstab) entries of the mounted partitions by filesystem UUID.
  - Existing partitions are matched to the layout by GPT partition name (PARTLABEL), or by O(partitions[].number)
    where that is given. Any change to a matched partition (shrink, grow, another type, another filesystem) is
    destructive and is refused unless O(allow_destructive=true) and the disk's identity matches O(disk_serial),
    O(disk_wwn) or O(disk_size_bytes); even then a partition that is mounted, active swap or held by another device
    is never changed. The module never deletes or moves a partition.
  - Partitions on the disk that the layout does not name are never touched, and their space is not free space.
  - A new partition gets a filesystem only when the free space it is made in carries no old signature (C(blkid -p)
    probes the area before any change); wiping an old signature there is destructive too. A new partition without
    O(partitions[].fs) is created over an old signature and the signature is left alone (a warning says so).
  - After a real run the module reads the disk again and fails unless the layout now holds with nothing left to do.
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
          - Or a percentage of the whole disk, for example V(25%), rounded down to a whole MiB.
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
          - Mount options of the fstab entry.
          - When omitted, a new entry gets V(defaults) and an existing entry for the same filesystem and mount point
            keeps its options (so adopting a node the installer made changes nothing, C(umask=0077) on C(/boot/efi)
            included).
          - Requires O(partitions[].mount).
        type: str
  allow_destructive:
    description:
      - Permission to shrink, grow, retype or reformat an existing partition of the layout, to wipe an old signature
        left in the free space where a new partition gets a filesystem, and to replace a partition table that is not
        GPT (or a filesystem on the whole disk) with a new GPT.
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
  fstab:
    description:
      - The fstab file to manage, for a system mounted elsewhere (a chroot) or for tests.
    type: path
    default: /etc/fstab
notes:
  - Only GPT. An empty disk (no partition table and no signature on the whole disk) gets a new GPT; a disk with
    another table (MBR/dos) or a filesystem on the whole disk is refused unless O(allow_destructive=true) with a
    matching identity, and even then never while anything on it is mounted or in use.
  - Sizes of existing partitions are compared with a tolerance of the 1 MiB alignment.
  - Check mode computes the same plan as a real run and reports exactly the changes the real run would make; diff
    mode shows the partition table before and after (C(sfdisk --dump) form) and the fstab change. In check mode
    the UUIDs of filesystems not made yet show as C(<new>).
  - New partitions are written with C(sfdisk --append --no-reread), so a disk whose other partitions are mounted
    (the system disk) can get new ones; the kernel learns about them through C(partx --update) and C(udevadm settle).
  - Needs C(lsblk), C(sfdisk), C(partx) and C(blkid) (util-linux), C(wipefs) when something is wiped, and the
    C(mkfs) tool of each filesystem made (e2fsprogs, xfsprogs, btrfs-progs, dosfstools).
  - The storage section of an Ubuntu autoinstall file for the same layout comes from the filter
    P(gpulab.cluster.autoinstall_storage#filter), which reads sizes and types with the same code.
seealso:
  - module: gpulab.cluster.swap
  - module: gpulab.cluster.ceph_osd_prep
  - plugin: gpulab.cluster.autoinstall_storage
    plugin_type: filter
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
      - {name: esp, number: 1, size: 1GiB, type: esp, fs: vfat, mount: /boot/efi}
      - {name: root, number: 2, size: 50GiB, fs: ext4, mount: /}
      - {name: home, number: 3, size: 50GiB, fs: ext4, mount: /home}
      - {name: swap, number: 4, size: 16GiB, type: swap, fs: swap}
      - {name: data, number: 5, size: 512GiB}
      - {name: var, number: 6, size: 34GiB, fs: ext4, mount: /var}

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

- name: Shrink the unmounted /data partition of gpu07 to 512 GiB, only on the disk with this serial and size
  gpulab.cluster.disk_layout:
    device: /dev/sda
    partitions:
      - {name: esp, number: 1, size: 1GiB, type: esp, fs: vfat, mount: /boot/efi}
      - {name: root, number: 2, size: 50GiB, fs: ext4, mount: /}
      - {name: home, number: 3, size: 50GiB, fs: ext4, mount: /home}
      - {name: swap, number: 4, size: 16GiB, type: swap, fs: swap}
      - {name: data, number: 5, size: 512GiB}
      - {name: var, number: 6, size: 34GiB, fs: ext4, mount: /var}
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
    changes:
      description: The destructive changes to an existing partition (V(change)), one phrase each.
      type: list
      elements: str
      sample: ["shrink from 600000 MiB to 524288 MiB"]
actions:
  description: The changes made (or, in check mode, that would be made), in order, as readable sentences.
  returned: always
  type: list
  elements: str
  sample:
    - create an empty GPT on /dev/sdb
    - "create partition 1 'scratch' on /dev/sdb: start 1 MiB, size 102400 MiB, type linux"
    - "create partition 2 'data' on /dev/sdb: start 102401 MiB, size 851367 MiB, type linux"
    - mkfs.xfs /dev/sdb1
    - "fstab: add /scratch (xfs on /dev/sdb1, by UUID) to /etc/fstab"
    - mount /dev/sdb1 at /scratch
layout:
  description:
    - The partitions of the whole disk after the run, including those the layout does not name, as read from the disk
      after the changes.
    - In check mode, the prediction; what is not known before the change (a new partition's C(partuuid), a new
      filesystem's C(uuid)) is null.
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
  description: Unpartitioned space left on the disk after the run, in whole MiB pieces.
  returned: always
  type: int
  sample: 289397186048
notes:
  description:
    - What the run noticed and left alone, also given as warnings, for example a partition of size V(rest) with free
      space after it (an existing partition is never grown to take it).
  returned: always
  type: list
  elements: str
  sample: []
fstab:
  description: The fstab file managed.
  returned: always
  type: str
  sample: /etc/fstab
"""

import os
import stat
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.gpulab.cluster.plugins.module_utils import _disk_layout as dl
from ansible_collections.gpulab.cluster.plugins.module_utils._fstab import (
    FstabError,
    FstabFile,
    read_text,
    write_text_atomic,
)

LSBLK_COLUMNS = "NAME,PATH,PKNAME,SIZE,TYPE,FSTYPE,UUID,PARTUUID,PARTLABEL,PARTTYPE,LABEL,MOUNTPOINTS,SERIAL,WWN,MODEL,ROTA,LOG-SEC,PTTYPE"
NO_TABLE = "does not contain a recognized partition table"
MKFS = {
    "ext4": ("mkfs.ext4", ["-q"]),
    "xfs": ("mkfs.xfs", ["-q"]),
    "btrfs": ("mkfs.btrfs", ["-q"]),
    "vfat": ("mkfs.vfat", ["-F", "32"]),
    "swap": ("mkswap", []),
}
# How long to wait for udev to create the node of a new partition.
NODE_WAIT_S = 20


def argument_spec():
    """The module's argument spec; a partition's options come from module_utils, which the filter shares."""
    return dict(
        device=dict(type="path", required=True),
        partitions=dict(
            type="list",
            elements="dict",
            required=True,
            options=dict((key, dict(value)) for key, value in dl.PARTITION_OPTIONS.items()),
            required_by=dict(dl.PARTITION_REQUIRED_BY),
        ),
        allow_destructive=dict(type="bool", default=False),
        disk_serial=dict(type="str"),
        disk_wwn=dict(type="str"),
        disk_size_bytes=dict(type="int"),
        mount_state=dict(type="str", default="present", choices=["present", "mounted"]),
        fstab=dict(type="path", default="/etc/fstab"),
    )


MODULE_RULES = dict(
    required_if=[
        ("allow_destructive", True, ("disk_serial", "disk_wwn", "disk_size_bytes"), True),
    ],
)


def build_module():
    """AnsibleModule with the full argument validation of this module."""
    return AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True, **MODULE_RULES)


# Host access the unit tests replace (they run without block devices and must not mount anything).
def block_device(path):
    """(kernel path, problem): problem is None for a block device, else why path is not one."""
    if not os.path.lexists(path):
        return path, "does not exist"
    real = os.path.realpath(path)
    try:
        mode = os.stat(real).st_mode
    except OSError as exc:
        return real, "cannot be read (%s)" % exc.strerror
    if not stat.S_ISBLK(mode):
        return real, "is not a block device"
    return real, None


def dir_state(path):
    """None when path does not exist, 'not a directory', or the number of entries of the directory."""
    if not os.path.lexists(path):
        return None
    if not os.path.isdir(path):
        return "not a directory"
    return len(os.listdir(path))


def is_mount(path):
    return os.path.ismount(path)


def make_dir(path):
    os.makedirs(path, 0o755)


def node_exists(path):
    return os.path.exists(path)


class DiskLayoutError(Exception):
    """A failure that becomes fail_json; details go into the result."""

    def __init__(self, msg, **details):
        super(DiskLayoutError, self).__init__(msg)
        self.details = details


class DiskLayout(object):
    """Read the disk, plan the layout, check permission, then apply (unless check mode) and verify."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.layout = module.params["partitions"]
        self.fstab_path = module.params["fstab"]
        self.actions = []
        self.ops = []
        self.notes = []
        self.done = []

    # ------------------------------------------------------------------ commands
    def _bin(self, name):
        return self.module.get_bin_path(name, required=True)

    def _run(self, args, what, ok_rcs=(0,), data=None):
        rc, out, err = self.module.run_command(args, data=data, binary_data=data is not None)
        if rc not in ok_rcs:
            command = " ".join([os.path.basename(args[0])] + list(args[1:]))
            raise DiskLayoutError(
                "%s failed for %s (rc %d): %s" % (command, what, rc, (err or out).strip()),
                rc=rc, stdout=out, stderr=err, cmd=args,
            )
        return rc, out, err

    # ------------------------------------------------------------------ reading
    def read(self):
        device = self.params["device"]
        self.device, problem = block_device(device)
        if problem:
            raise DiskLayoutError(
                "device %s %s; set device to a whole disk (lsblk -d -o NAME,SIZE,SERIAL,WWN lists them), "
                "nothing was changed" % (device, problem)
            )
        self.disk = self._read_disk()
        mismatches = dl.check_identity(
            self.disk, self.params["disk_serial"], self.params["disk_wwn"], self.params["disk_size_bytes"]
        )
        if mismatches:
            raise DiskLayoutError(
                "%s is not the disk the identity options describe: %s; nothing was changed. Check that device "
                "names the disk you mean (kernel names can move between disks at boot), or correct the "
                "disk_serial, disk_wwn or disk_size_bytes option" % (self.device, "; ".join(mismatches)),
                disk=self._identity(),
            )
        try:
            text = read_text(self.fstab_path)
        except FstabError as exc:
            raise DiskLayoutError("%s; set the fstab option to a readable file" % exc)
        self.fstab_text = text or ""
        self.fstab = FstabFile.from_text(self.fstab_text)

    def _read_disk(self):
        dummy, lsblk_out, dummy2 = self._run(
            [self._bin("lsblk"), "--json", "--bytes", "-o", LSBLK_COLUMNS, self.device], "the disk %s" % self.device
        )
        try:
            self.lsblk_device = dl.parse_lsblk_json(lsblk_out)
        except ValueError as exc:
            raise DiskLayoutError("cannot read %s: %s" % (self.device, exc), stdout=lsblk_out)
        kind = self.lsblk_device.get("type")
        if kind == "part":
            parent = self.lsblk_device.get("pkname")
            raise DiskLayoutError(
                "device %s is a partition, not a whole disk; set device to the disk it belongs to%s; nothing was "
                "changed" % (self.params["device"], ", /dev/%s" % parent if parent else "")
            )
        if kind != "disk":
            raise DiskLayoutError(
                "device %s is a %s device (lsblk TYPE), not a whole disk; set device to a disk; nothing was changed"
                % (self.params["device"], kind)
            )
        rc, sfdisk_out, sfdisk_err = self._run(
            [self._bin("sfdisk"), "--json", self.device], "the partition table of %s" % self.device, ok_rcs=(0, 1)
        )
        if rc != 0 and NO_TABLE not in sfdisk_err:
            raise DiskLayoutError(
                "sfdisk --json failed for %s (rc %d): %s" % (self.device, rc, sfdisk_err.strip()),
                rc=rc, stdout=sfdisk_out, stderr=sfdisk_err,
            )
        try:
            disk = dl.read_disk(lsblk_out, sfdisk_out if rc == 0 else None)
        except ValueError as exc:
            raise DiskLayoutError("cannot read %s: %s" % (self.device, exc), stdout=sfdisk_out)
        if disk["table"] == "none" and not disk["signature"]:
            found = self._probe(self.device)
            if found:
                disk["signature"] = found.get("TYPE") or found.get("PTTYPE")
        return disk

    def _probe(self, device, offset=None, size=None):
        """blkid's low-level probe of a device (or of the area at offset): the signature found, or {}."""
        args = [self._bin("blkid"), "-p", "-o", "export"]
        if offset is not None:
            args += ["-O", str(offset), "-S", str(size)]
        rc, out, dummy = self._run(args + [device], "signatures on %s" % device, ok_rcs=(0, 2))
        if rc == 2:
            return {}
        found = dl.parse_blkid_export(out)
        return found if (found.get("TYPE") or found.get("PTTYPE")) else {}

    def _identity(self):
        disk = self.disk
        return {
            "model": disk["model"],
            "serial": disk["serial"],
            "wwn": disk["wwn"],
            "size_bytes": disk["size_bytes"],
            "sector_size": disk["sector_size"],
            "rotational": disk["rotational"],
            "table": disk["table"],
        }

    # ------------------------------------------------------------------ planning
    def plan(self):
        try:
            self.layout_plan = dl.compute_plan(self.layout, self.disk)
        except dl.LayoutError as exc:
            raise DiskLayoutError("%s; nothing was changed" % exc, problems=exc.problems, disk=self._identity())
        self.notes.extend(self.layout_plan["notes"])
        self.wipes = {}
        self._probe_new_areas()
        self._check_permission()
        self.after = dl.apply_plan_to_disk(self.disk, self.layout_plan)
        self._plan_partition_ops()
        self.new_fstab, fstab_actions = dl.plan_fstab(self.fstab, self._mounts(self.after), self.fstab_path)
        self.new_fstab_text = self.new_fstab.render()
        if fstab_actions:
            self.actions.extend(fstab_actions)
            self.ops.append(("write " + self.fstab_path, self._write_fstab, ()))
        if self.params["mount_state"] == "mounted":
            self._plan_mounts()

    def _probe_new_areas(self):
        for step in self.layout_plan["steps"]:
            if step["op"] != "create":
                continue
            for create in step["partitions"]:
                found = self._probe(self.device, create["start"], create["size"])
                if not found:
                    continue
                what = found.get("TYPE") or found.get("PTTYPE")
                where = "partition %d %r of %s (%s at %s)" % (
                    create["number"], create["name"], self.device, dl.mib(create["size"]), dl.mib(create["start"]))
                if create["fs"]:
                    self.layout_plan["destructive"].append(
                        "wipe the old %s signature found in the free space where new %s goes, to make %s there"
                        % (what, where, create["fs"])
                    )
                    self.wipes[create["path"]] = what
                else:
                    self.notes.append(
                        "the free space where new %s goes holds an old %s signature; the partition is created "
                        "without a filesystem and the signature is left as it is (wipefs would remove it)"
                        % (where, what)
                    )

    def _check_permission(self):
        destructive = self.layout_plan["destructive"]
        if not destructive:
            return
        if not self.params["allow_destructive"]:
            identity = []
            if self.disk["serial"]:
                identity.append("serial %s" % self.disk["serial"])
            if self.disk["wwn"]:
                identity.append("WWN %s" % self.disk["wwn"])
            identity.append("size %d bytes" % self.disk["size_bytes"])
            identity = ", ".join(identity)
            raise DiskLayoutError(
                "refusing to %s: destructive; set allow_destructive=true together with disk_serial, disk_wwn or "
                "disk_size_bytes matching %s (%s) to allow it, or change the layout to match the disk; nothing was "
                "changed" % ("; ".join(destructive), self.device, identity),
                destructive=destructive, disk=self._identity(), plan=self._plan_result(),
            )
        # allow_destructive needs at least one identity option (argument spec) and every one given matched (read).

    def _mounts(self, disk):
        by_number = dict((part["number"], part) for part in disk["partitions"])
        out = []
        for entry, want in zip(self.layout_plan["entries"], self.layout):
            if not want.get("mount") or entry["number"] not in by_number:
                continue
            out.append({
                "mount": want["mount"],
                "fs": want["fs"],
                "opts": want.get("mount_opts"),
                "part": by_number[entry["number"]],
            })
        return out

    def _plan_partition_ops(self):
        dev = self.device
        for step in self.layout_plan["steps"]:
            op = step["op"]
            if op == "label":
                if step["what"] == "create":
                    action = "create an empty GPT on %s" % dev
                else:
                    action = "replace %s on %s with an empty GPT" % (step["found"], dev)
                self._op(action, self._make_label, step)
            elif op == "resize":
                part = step["part"]
                verb = "grow" if step["size"] > part["size"] else "shrink"
                self._op("%s partition %d %r on %s from %s to %s" % (
                    verb, part["number"], step["name"], dev, dl.mib(part["size"]), dl.mib(step["size"])),
                    self._resize, step)
            elif op == "type":
                part = step["part"]
                self._op("set the type of partition %d %r on %s to %s" % (
                    part["number"], step["name"], dev, dl.GUID_TYPES.get(step["guid"], step["guid"])),
                    self._set_type, step)
            elif op == "name":
                part = step["part"]
                was = ("named %r" % part["name"]) if part["name"] else "unnamed"
                self._op("name partition %d on %s %r (was %s)" % (part["number"], dev, step["name"], was),
                         self._set_name, step)
            elif op == "create":
                actions = [
                    "create partition %d %r on %s: start %s, size %s, type %s" % (
                        create["number"], create["name"], dev, dl.mib(create["start"]), dl.mib(create["size"]),
                        dl.GUID_TYPES[create["guid"]])
                    for create in step["partitions"]
                ]
                self.actions.extend(actions[:-1])
                self._op(actions[-1], self._create, step)
            elif op == "mkfs":
                wipe = self.wipes.get(step["path"])
                if step["existing"]:
                    wipe = True
                if wipe:
                    self._op("wipefs -a %s" % step["path"], self._wipe, step["path"])
                self._op("%s %s" % (MKFS[step["fs"]][0], step["path"]), self._mkfs, step)

    def _op(self, action, func, *args):
        self.actions.append(action)
        self.ops.append((action, func, args))

    def _plan_mounts(self):
        by_number = dict((part["number"], part) for part in self.after["partitions"])
        for entry, want in zip(self.layout_plan["entries"], self.layout):
            target = want.get("mount")
            if not target:
                continue
            part = by_number[entry["number"]]
            if target in part["mounts"]:
                continue
            if is_mount(target):
                raise DiskLayoutError(
                    "cannot mount %s at %s: another filesystem is mounted there; unmount it, or set mount_state "
                    "present to manage the fstab entry only; nothing was changed" % (part["path"], target)
                )
            state = dir_state(target)
            if state == "not a directory":
                raise DiskLayoutError(
                    "cannot mount %s at %s: it exists and is not a directory; nothing was changed"
                    % (part["path"], target)
                )
            if state:
                raise DiskLayoutError(
                    "refusing to mount %s over %s: the directory is not empty (%d entries would be hidden); empty "
                    "it, or set mount_state present to mount it at the next boot; nothing was changed"
                    % (part["path"], target, state)
                )
            self._op("mount %s at %s" % (part["path"], target), self._mount, target, state is None)
            part["mounts"].append(target)  # the prediction

    # ------------------------------------------------------------------ writes
    def _settle(self):
        udevadm = self.module.get_bin_path("udevadm")
        if udevadm:
            self._run([udevadm, "settle", "--timeout=%d" % NODE_WAIT_S], "udev events", ok_rcs=(0, 1))

    def _tell_kernel(self, paths=()):
        self._run([self._bin("partx"), "--update", self.device], "the kernel's view of %s" % self.device)
        self._settle()
        deadline = time.time() + NODE_WAIT_S
        missing = [path for path in paths if not node_exists(path)]
        while missing and time.time() < deadline:
            time.sleep(0.5)
            missing = [path for path in missing if not node_exists(path)]
        if missing:
            raise DiskLayoutError(
                "the kernel shows no %s after the partition table of %s was written; run partx -u %s or reboot, "
                "then run again" % (", ".join(missing), self.device, self.device)
            )

    def _sfdisk(self, args, data, what):
        base = [self._bin("sfdisk"), "--wipe-partitions", "never"]
        return self._run(base + args, what, data=data)

    def _make_label(self, step):
        # Not --no-reread: sfdisk itself refuses a disk in use, a second guard behind the plan's.
        self._sfdisk(["--wipe", "always", self.device], "label: gpt\n", "a new GPT on %s" % self.device)
        self._settle()

    def _resize(self, step):
        part = step["part"]
        sector = self.disk["sector_size"]
        script = "start=%d, size=%d\n" % (part["start"] // sector, step["size"] // sector)
        self._sfdisk(["--no-reread", "-N", str(part["number"]), self.device], script, part["path"])
        self._tell_kernel([part["path"]])

    def _set_type(self, step):
        part = step["part"]
        self._run([self._bin("sfdisk"), "--part-type", self.device, str(part["number"]), step["guid"]], part["path"])
        self._settle()

    def _set_name(self, step):
        part = step["part"]
        self._run([self._bin("sfdisk"), "--part-label", self.device, str(part["number"]), step["name"]], part["path"])
        self._settle()

    def _create(self, step):
        script = dl.sfdisk_script(step["partitions"], self.disk["sector_size"])
        self._sfdisk(["--append", "--no-reread", self.device], script, "new partitions on %s" % self.device)
        self._tell_kernel([create["path"] for create in step["partitions"]])

    def _wipe(self, path):
        self._run([self._bin("wipefs"), "--all", path], path)

    def _mkfs(self, step):
        path = step["path"]
        if not step["existing"] and path not in self.wipes:
            found = self._probe(path)
            if found:  # the plan's probe of the free space saw nothing: never format over what is there now
                raise DiskLayoutError(
                    "new partition %s carries a %s signature the plan did not see; not formatted" % (
                        path, found.get("TYPE") or found.get("PTTYPE")),
                )
        name, options = MKFS[step["fs"]]
        self._run([self._bin(name)] + options + [path], path)

    def _write_fstab(self):
        # The UUIDs of the filesystems made in this run are known now: plan the fstab again on the real disk.
        self._settle()
        disk = self._read_disk()
        self._fill_uuids(disk)
        new, dummy = dl.plan_fstab(self.fstab, self._mounts(disk), self.fstab_path)
        self.new_fstab_text = new.render()
        try:
            write_text_atomic(self.module, os.path.realpath(self.fstab_path), self.new_fstab_text)
        except (IOError, OSError) as exc:
            raise DiskLayoutError("cannot write %s: %s" % (self.fstab_path, exc))

    def _fill_uuids(self, disk):
        """Ask blkid for the UUID of a mounted filesystem that udev has not reported yet."""
        for want in self._mounts(disk):
            part = want["part"]
            if not part["uuid"]:
                found = self._probe(part["path"])
                part["uuid"] = found.get("UUID")
                part["fs"] = found.get("TYPE")

    def _mount(self, target, create):
        if create:
            make_dir(target)
        self._run([self._bin("mount"), "--fstab", self.fstab_path, target], target)

    def apply(self):
        for action, func, args in self.ops:
            try:
                func(*args)
            except DiskLayoutError as exc:
                exc.details.setdefault("actions_done", list(self.done))
                exc.details.setdefault("action_failed", action)
                raise
            except (IOError, OSError) as exc:
                raise DiskLayoutError("%s failed: %s" % (action, exc), actions_done=list(self.done))
            self.done.append(action)

    def verify(self):
        """Read the disk again: the layout must now hold with nothing left to do."""
        self._settle()
        disk = self._read_disk()
        try:
            plan = dl.compute_plan(self.layout, disk)
        except dl.LayoutError as exc:
            plan = {"steps": [{"op": str(exc)}]}
        fstab = FstabFile.from_text(read_text(self.fstab_path) or "")
        dummy, fstab_actions = dl.plan_fstab(fstab, self._mounts(disk), self.fstab_path)
        left = [step["op"] for step in plan["steps"]] + fstab_actions
        if self.params["mount_state"] == "mounted":
            for want in self._mounts(disk):
                if want["mount"] not in want["part"]["mounts"]:
                    left.append("%s is not mounted at %s" % (want["part"]["path"], want["mount"]))
        if left:
            raise DiskLayoutError(
                "the changes were made but %s still differs from the layout (%s); run again or look at the disk "
                "with sfdisk --dump %s" % (self.device, ", ".join(left), self.device),
                actions_done=list(self.done),
            )
        self.final = disk
        self.final_plan = plan

    # ------------------------------------------------------------------ result
    def _plan_result(self, plan=None):
        plan = plan or self.layout_plan
        return [dict((key, value) for key, value in entry.items()) for entry in plan["entries"]]

    def result(self):
        changed = bool(self.ops)
        check = self.module.check_mode
        if not changed:
            final = self.disk
        elif check:
            final = self.after
        else:
            final = self.final
        result = {
            "changed": changed,
            "device": self.device,
            "disk": self._identity(),
            "plan": self._plan_result(),
            "actions": self.actions,
            "layout": dl.layout_of(final),
            "free_bytes": dl.free_bytes(final),
            "notes": self.notes,
            "fstab": self.fstab_path,
        }
        if changed:
            result["msg"] = "%s %s to the layout: %d action(s)" % (
                "would bring" if check else "brought", self.device, len(self.actions))
        else:
            result["msg"] = "%s matches the layout; nothing to do" % self.device
        for note in self.notes:
            self.module.warn(note)
        if self.module._diff:
            result["diff"] = [
                {
                    "before_header": "%s (partition table, sfdisk --dump)" % self.device,
                    "after_header": "%s (partition table, sfdisk --dump)" % self.device,
                    "before": dl.render_dump(self.disk),
                    "after": dl.render_dump(final),
                },
                {
                    "before_header": self.fstab_path,
                    "after_header": self.fstab_path,
                    "before": self.fstab_text,
                    "after": self.new_fstab_text,
                },
            ]
        return result

    def run(self):
        self.read()
        self.plan()
        if self.ops and not self.module.check_mode:
            self.apply()
            self.verify()
        return self.result()


def main():
    module = build_module()
    module.run_command_environ_update = dict(LANG="C", LC_ALL="C", LC_MESSAGES="C", LC_CTYPE="C")
    try:
        result = DiskLayout(module).run()
    except DiskLayoutError as exc:
        module.fail_json(msg=str(exc), changed=bool(exc.details.get("actions_done")), **exc.details)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
