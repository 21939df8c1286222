#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: ceph_osd_prep
short_description: Make one partition or disk ready to become a Ceph OSD, or refuse with the reason
version_added: 0.1.0
description:
  - Checks one partition or whole disk (C(lsblk), C(blkid), C(wipefs), C(pvs), C(findmnt), C(/proc/swaps)) and makes it
    a clean device that Rook's OSD preparation accepts; no signature, not mounted, not in fstab.
  - It always refuses, whatever the options; a device that is not a block device; the disk or partition holding
    C(/), C(/boot), C(/usr), C(/var) or C(/home); a whole disk with a partition in use (mounted, active swap, holder);
    an LVM physical volume whose logical volumes are in use; active swap; a mounted filesystem that holds files; a
    device smaller than Ceph's minimum OSD size (5 GiB).
  - Without O(wipe=true) it refuses any device carrying a signature (filesystem, swap, LVM, RAID, partition table, an
    old Ceph BlueStore label) and names it.
  - With O(wipe=true) it removes the signatures (C(wipefs --all), BlueStore label and the first and last MiB zeroed)
    of what holds no data; an empty filesystem (mounted, as the Ubuntu installer leaves C(/data), or not) is
    unmounted, its fstab line commented out with a marker (never deleted), and its signature removed.
  - With O(force=true) as well, it also destroys an unmounted filesystem that holds files and an LVM volume group
    whose logical volumes are not in use.
  - Every refusal names the device, what was found on it and the option that would allow it (where one would), and
    comes before any change.
  - A device already clean is reported unchanged, with the stable identifiers the Rook configuration needs.
options:
  device:
    description:
      - The partition or whole disk, as a kernel name (V(/dev/sda4)) or, better, a stable link
        (V(/dev/disk/by-id/ata-ST1000DM010-2EP102_Z9A1B2C3-part4), V(/dev/disk/by-partuuid/...)); kernel names can move
        between boots.
    type: path
    required: true
  wipe:
    description:
      - Permission to remove existing signatures from a device that holds no data, and to unmount an empty filesystem
        and comment out its fstab line.
    type: bool
    default: false
  force:
    description:
      - Permission to destroy data; an unmounted filesystem that holds files, or an LVM volume group whose logical
        volumes are not in use.
      - Requires O(wipe=true); V(true) without it is refused.
      - Never overrides the refusals that apply whatever the options.
    type: bool
    default: false
notes:
  - Check mode predicts exactly what a real run would do, refusals included. Diff mode shows the fstab change and the
    signatures before and after.
  - A second run on a prepared device reports no change.
  - This release (0.1.0) ships the interface only; the behaviour comes with issue 6 and the module fails without
    changing anything until then.
seealso:
  - module: gpulab.cluster.disk_layout
  - name: Rook CephCluster storage selection
    description: How Rook selects OSD devices, including partitions and C(/dev/disk/by-id) paths.
    link: https://rook.io/docs/rook/latest/CRDs/Cluster/ceph-cluster-crd/#storage-selection-settings
author:
  - gpulab.cluster developers (@gpulab)
extends_documentation_fragment:
  - gpulab.cluster.attributes
  - gpulab.cluster.attributes.FULL
"""

EXAMPLES = r"""
- name: Check the 512 GB /data partition of each worker, changing nothing
  gpulab.cluster.ceph_osd_prep:
    device: /dev/sda4
  check_mode: true
  register: gpulab_osd_check
  when: inventory_hostname in groups['workers']

- name: Turn the installer's empty /data (mounted, in fstab) into a clean OSD partition
  gpulab.cluster.ceph_osd_prep:
    device: /dev/sda4
    wipe: true
  register: gpulab_osd
  when: inventory_hostname in groups['workers']

- name: Collect the stable device path of each worker for the Rook CephCluster
  ansible.builtin.set_fact:
    gpulab_rook_osd_device: "{{ gpulab_osd.rook_device }}"
  when: gpulab_osd is not skipped

- name: Reuse gpu07's /data, which still holds an old dataset (destroyed), by its stable name
  gpulab.cluster.ceph_osd_prep:
    device: /dev/disk/by-id/ata-ST1000DM010-2EP102_Z9A1B2C3-part4
    wipe: true
    force: true
  when: inventory_hostname == 'gpu07'
"""

RETURN = r"""
device:
  description: The device as given in O(device).
  returned: always
  type: str
  sample: /dev/sda4
path:
  description: The device's kernel name.
  returned: always
  type: str
  sample: /dev/sda4
kind:
  description: V(part) for a partition, V(disk) for a whole disk.
  returned: always
  type: str
  sample: part
parent:
  description: The disk holding the partition, or null for a whole disk.
  returned: always
  type: str
  sample: /dev/sda
size_bytes:
  description: Size of the device in bytes.
  returned: always
  type: int
  sample: 549755813888
rotational:
  description: Whether the device is on a spinning disk (Rook and Ceph tune HDD OSDs differently).
  returned: always
  type: bool
  sample: true
by_id:
  description: The C(/dev/disk/by-id) links of the device.
  returned: always
  type: list
  elements: str
  sample:
    - /dev/disk/by-id/ata-ST1000DM010-2EP102_Z9A1B2C3-part4
    - /dev/disk/by-id/wwn-0x5000c500a1b2c3d4-part4
partuuid:
  description: GPT partition UUID, or null for a whole disk.
  returned: always
  type: str
  sample: 6a1b7c0e-93f4-4d59-8f1e-2c5d7e9a0b11
partlabel:
  description: GPT partition name, or null.
  returned: always
  type: str
  sample: data
serial:
  description: Serial number of the disk.
  returned: always
  type: str
  sample: Z9A1B2C3
wwn:
  description: World Wide Name of the disk, or null.
  returned: always
  type: str
  sample: "0x5000c500a1b2c3d4"
rook_device:
  description:
    - The stable path to list for this node in the Rook CephCluster C(storage.nodes[].devices[].name); a
      C(/dev/disk/by-id) link when the device has one, else its C(/dev/disk/by-partuuid) link.
  returned: always
  type: str
  sample: /dev/disk/by-id/ata-ST1000DM010-2EP102_Z9A1B2C3-part4
signatures:
  description: The signatures found on the device before the run.
  returned: always
  type: list
  elements: dict
  contains:
    type:
      description: What the signature is, as C(wipefs) or the BlueStore label check names it.
      type: str
      sample: ext4
    offset:
      description: Byte offset of the signature.
      type: int
      sample: 1080
    uuid:
      description: UUID the signature carries, or null.
      type: str
      sample: 0b7e3a52-5f0c-4a9e-8f61-2d0d2b5c7a10
  sample:
    - type: ext4
      offset: 1080
      uuid: 0b7e3a52-5f0c-4a9e-8f61-2d0d2b5c7a10
removed_signatures:
  description: The signatures removed (in check mode, that would be removed), as in RV(signatures).
  returned: always
  type: list
  elements: dict
  sample:
    - type: ext4
      offset: 1080
      uuid: 0b7e3a52-5f0c-4a9e-8f61-2d0d2b5c7a10
unmounted:
  description: The mount point unmounted, or null.
  returned: always
  type: str
  sample: /data
fstab_commented:
  description: The fstab lines commented out, as they were.
  returned: always
  type: list
  elements: str
  sample:
    - /dev/disk/by-uuid/0b7e3a52-5f0c-4a9e-8f61-2d0d2b5c7a10 /data ext4 defaults 0 1
actions:
  description: What the run did (in check mode, would do), in order, as readable sentences.
  returned: always
  type: list
  elements: str
  sample:
    - umount /data
    - "comment out fstab line 7: /dev/disk/by-uuid/0b7e3a52-5f0c-4a9e-8f61-2d0d2b5c7a10 /data ext4 defaults 0 1"
    - wipefs --all /dev/sda4 (ext4 at 1080)
    - zero first and last MiB of /dev/sda4
ready:
  description: Whether the device is ready for an OSD after the run (in check mode, would be).
  returned: always
  type: bool
  sample: true
"""

from ansible.module_utils.basic import AnsibleModule

ISSUE = 6
ISSUE_SUMMARY = "OSD device checks, refusal rules, signature wipe, stable identifiers for Rook"


def argument_spec():
    """The module's argument spec; the implementation of issue 6 reuses it as it is."""
    return dict(
        device=dict(type="path", required=True),
        wipe=dict(type="bool", default=False),
        force=dict(type="bool", default=False),
    )


MODULE_RULES = dict()


def build_module():
    """AnsibleModule with the full argument validation of this module."""
    return AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True, **MODULE_RULES)


def check_arguments(module):
    """Rules between option values that required_if and friends cannot state (they test presence, not truth)."""
    if module.params["force"] and not module.params["wipe"]:
        module.fail_json(
            msg="force=true needs wipe=true for %s: force extends the permission to wipe to data, it does not replace "
            "it; set wipe=true as well" % module.params["device"],
            changed=False,
        )


def main():
    module = build_module()
    check_arguments(module)
    module.fail_json(
        msg="gpulab.cluster.ceph_osd_prep is not implemented in this release (0.1.0): its behaviour comes with issue #%d "
        "(%s). Nothing was changed." % (ISSUE, ISSUE_SUMMARY),
        changed=False,
    )


if __name__ == "__main__":
    main()
