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
    an LVM physical volume whose logical volumes are in use, or whose volume group spans other devices; active swap;
    a running RAID member or any other holder; a mounted filesystem that holds files; a device a running process
    holds locked (a Ceph OSD locks its device); a device the kernel has open exclusively without a mount, swap or
    holder to show for it (a btrfs or ZFS member); a device smaller than Ceph's minimum OSD size (5 GiB).
  - Without O(wipe=true) it refuses any device carrying a signature (filesystem, swap, LVM, RAID, partition table, an
    old Ceph BlueStore label) and names it.
  - With O(wipe=true) it removes the signatures (C(wipefs --all), then the first MiB and the BlueStore label copies
    zeroed) of what holds no data; an empty filesystem (mounted, as the Ubuntu installer leaves C(/data), or not) is
    unmounted, its fstab line commented out with a marker (never deleted), and its signature removed.
  - With O(force=true) as well, it also destroys what holds data; an unmounted filesystem that holds files, an LVM
    volume group whose logical volumes are not in use, an old Ceph OSD (BlueStore label) that O(adopted) does not
    name, the member of a stopped RAID array, a LUKS or ZFS device.
  - A device with a BlueStore label that O(adopted) names is one of the cluster's own OSDs; it is reported ready
    and never touched, whatever the options.
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
  adopted:
    description:
      - The devices that are this cluster's OSDs already (the role passes the paths its CephCluster lists for this
        node). A device among them that carries a BlueStore label is left alone and reported ready, so that a second
        run neither fails nor wipes a live OSD.
    type: list
    elements: path
    default: []
notes:
  - Check mode predicts exactly what a real run would do, refusals included. Diff mode shows the fstab change and the
    signatures before and after.
  - A second run on a prepared device reports no change.
  - It reads the device with C(lsblk), C(wipefs --no-act), C(findmnt), C(pvs) and C(lvs) (when lvm2 is installed), and
    C(/proc/swaps); it looks into an unmounted filesystem by mounting it read-only (C(noload)/C(norecovery)) in a
    temporary folder, also in check mode, and unmounts it at once.
  - A wipe ends with C(udevadm settle), so that the C(/dev/disk) links Rook will use are current.
requirements:
  - util-linux 2.30 or later (C(lsblk), C(wipefs --json), C(findmnt --json)); lvm2 where LVM signatures may be found.
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
kernel_name:
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
    - wipefs --all /dev/sda4 (ext4 at 0x438)
    - zero the first MiB and the BlueStore label copies of /dev/sda4
adopted:
  description: Whether the device is one of the cluster's OSDs already (a BlueStore label, named in O(adopted)).
  returned: always
  type: bool
  sample: false
ready:
  description: Whether the device is ready for an OSD after the run (in check mode, would be), or is one already.
  returned: always
  type: bool
  sample: true
"""

import errno
import fcntl
import os
import shutil
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpulab.cluster.plugins.module_utils._blockdev import (
    BLUESTORE_LABEL_OFFSETS,
    BLUESTORE_MAGIC,
    DATA_SIGNATURES,
    LAYOUT_SIGNATURES,
    PROBE_MOUNT_OPTIONS,
    BlockdevError,
    Facts,
    Forest,
    describe_signature,
    inspect,
    meaningful_entries,
    parse_findmnt,
    parse_lvs,
    parse_proc_swaps,
    parse_pvs,
    parse_wipefs,
    stable_ids,
    zero_ranges,
)
from ansible_collections.gpulab.cluster.plugins.module_utils._fstab import (
    FstabError,
    FstabFile,
    comment_text,
    read_text,
    spec_device_path,
    write_text_atomic,
)

FSTAB = "/etc/fstab"
MARKER = "gpulab.cluster.ceph_osd_prep"
LSBLK_COLUMNS = "NAME,KNAME,MAJ:MIN,TYPE,SIZE,ROTA,PKNAME,SERIAL,WWN,PARTUUID,PARTLABEL,FSTYPE"
LINK_DIRS = ("/dev/disk/by-id", "/dev/disk/by-partuuid", "/dev/disk/by-path")
SYSTEMD_RUNNING = "/run/systemd/system"


class OsdPrepError(Exception):
    """Stops the module; the message names the device and, where one exists, the option that helps."""


def argument_spec():
    """The module's argument spec."""
    return dict(
        device=dict(type="path", required=True),
        wipe=dict(type="bool", default=False),
        force=dict(type="bool", default=False),
        adopted=dict(type="list", elements="path", default=[]),
    )


def build_module():
    """AnsibleModule with the full argument validation of this module."""
    return AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)


def check_arguments(module):
    """Rules between option values that required_if and friends cannot state (they test presence, not truth)."""
    if module.params["force"] and not module.params["wipe"]:
        module.fail_json(
            msg="force=true needs wipe=true for %s: force extends the permission to wipe to data, it does not replace "
            "it; set wipe=true as well" % module.params["device"],
            changed=False,
        )


class Host(object):
    """The node as this module reads and changes it: every command, file and device access goes through here."""

    def __init__(self, module):
        self.module = module

    def tool(self, name, required=True):
        path = self.module.get_bin_path(name, required=False)
        if path is None and required:
            raise OsdPrepError("%s is not installed on this node (util-linux or lvm2); install it first. Nothing was "
                               "changed." % name)
        return path

    def run(self, argv):
        rc, out, err = self.try_run(argv)
        if rc != 0:
            raise OsdPrepError("%s failed (exit %d): %s" % (" ".join(argv), rc, (err or out).strip()))
        return out

    def try_run(self, argv):
        return self.module.run_command(argv)

    def realpath(self, path):
        return os.path.realpath(path)

    def exists(self, path):
        return os.path.exists(path)

    def kind(self, path):
        mode = os.stat(path).st_mode
        if stat.S_ISBLK(mode):
            return "block"
        if stat.S_ISDIR(mode):
            return "folder"
        if stat.S_ISCHR(mode):
            return "character device"
        return "file"

    def listdir(self, path):
        try:
            return os.listdir(path)
        except OSError:
            return None

    def read_text(self, path):
        return read_text(path)

    def read_at(self, path, offset, length):
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read(length)

    def write_zeros(self, path, offset, length):
        with open(path, "r+b") as handle:
            handle.seek(offset)
            handle.write(b"\0" * length)
            handle.flush()
            os.fsync(handle.fileno())

    def write_fstab(self, text):
        write_text_atomic(self.module, FSTAB, text)

    def systemd(self):
        return os.path.isdir(SYSTEMD_RUNNING)

    def busy(self, path):
        """Whether the kernel has the device open exclusively (mounted, swap, a holder, a btrfs or ZFS member)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_EXCL)
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                return True
            raise
        os.close(fd)
        return False

    def locked(self, path):
        """Whether a process holds a lock on the device (a Ceph OSD takes one on its block device)."""
        fd = os.open(path, os.O_RDONLY)
        try:
            for lock, unlock in ((fcntl.lockf, fcntl.lockf), (fcntl.flock, fcntl.flock)):
                try:
                    lock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except (IOError, OSError) as exc:
                    if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                        return True
                    raise
                unlock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)

    def probe_mount(self, device, fstype):
        """The top-level entries of the filesystem on an unmounted device (mounted read-only for a moment), or
        None when it cannot be mounted."""
        folder = tempfile.mkdtemp(prefix="gpulab-osd-probe.")
        try:
            rc = self.try_run(["mount", "-o", PROBE_MOUNT_OPTIONS.get(fstype, "ro"), "-t", fstype, device, folder])[0]
            if rc != 0:
                return None
            try:
                return listing(self, folder)
            finally:
                self.run(["umount", folder])
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def listing(host, folder):
    entries = host.listdir(folder)
    if entries is None:
        return None
    return meaningful_entries(entries, host.listdir(os.path.join(folder, "lost+found")))


def read_signatures(host, wipefs, node):
    sigs = parse_wipefs(host.run([wipefs, "--no-act", "--json", node.name]))
    for offset in BLUESTORE_LABEL_OFFSETS:
        if offset + len(BLUESTORE_MAGIC) > node.size:
            continue
        if host.read_at(node.name, offset, len(BLUESTORE_MAGIC)) != BLUESTORE_MAGIC:
            continue
        if not any(s["type"] == "ceph_bluestore" and s["offset"] == offset for s in sigs):
            sigs.append(dict(type="ceph_bluestore", offset=offset, uuid=None, label=None))
    return sigs


def gather(host, node, forest, members, adopted_paths):
    wipefs = host.tool("wipefs")
    signatures = dict((m.kname, read_signatures(host, wipefs, m)) for m in members)
    mounts = parse_findmnt(host.run([host.tool("findmnt"), "--json", "--list", "--output",
                                     "SOURCE,TARGET,FSTYPE,MAJ:MIN,FSROOT"]))
    swaps = parse_proc_swaps(host.read_text("/proc/swaps") or "")
    pvs, lvs = [], []
    lvm = any(s["type"] == "LVM2_member" for sigs in signatures.values() for s in sigs) or any(
        h.type == "lvm" for m in members for h in m.children)
    if lvm:
        pvs = parse_pvs(host.run([host.tool("pvs"), "--reportformat", "json", "--options", "pv_name,vg_name,pv_uuid"]))
        lvs = parse_lvs(host.run([host.tool("lvs"), "--reportformat", "json", "--options",
                                  "lv_name,vg_name,lv_path,lv_attr,devices"]))
    busy = [m.kname for m in members if host.busy(m.name)]
    locked = [m.kname for m in members if host.locked(m.name)]
    adopted = [host.realpath(path) for path in adopted_paths]
    facts = Facts(forest, mounts, swaps, pvs, lvs, signatures, {}, [], busy=busy, locked=locked, adopted=adopted)
    for member in members:
        mounted = facts.mounts_of(member)
        if mounted:
            # the mount of the filesystem's root (a bind mount of a subfolder would hide the rest)
            roots = [m for m in mounted if m.get("fsroot", "/") == "/"]
            facts.contents[member.kname] = listing(host, roots[0]["target"]) if roots else None
            continue
        for sig in signatures[member.kname]:
            if sig["type"] not in LAYOUT_SIGNATURES and sig["type"] not in DATA_SIGNATURES:
                facts.contents[member.kname] = host.probe_mount(member.name, sig["type"])
                break
    fstab_text = host.read_text(FSTAB) or ""
    fstab = FstabFile.from_text(fstab_text)
    for line in fstab.entries():
        spec = spec_device_path(line.entry.spec)[1]
        resolved = host.realpath(spec) if spec.startswith("/dev/") and host.exists(spec) else None
        facts.fstab.append((line.lineno, line.text, line.entry.spec, resolved))
    return facts, fstab, fstab_text


def links_of(host):
    links = {}
    for folder in LINK_DIRS:
        for name in host.listdir(folder) or ():
            path = "%s/%s" % (folder, name)
            links[path] = host.realpath(path)
    return links


def commented(fstab, verdict):
    """The fstab with the verdict's lines commented out with the module's marker."""
    for action in verdict.actions:
        if action["kind"] == "fstab":
            fstab = fstab.replace(action["lineno"], comment_text(action["line"], MARKER))
    return fstab


def carry_out(module, host, verdict, new_fstab):
    fstab_written = False
    for action in verdict.actions:
        kind = action["kind"]
        if kind == "umount":
            host.run(["umount", action["target"]])
        elif kind == "fstab" and not fstab_written:
            host.write_fstab(new_fstab.render())
            fstab_written = True
            if host.systemd():
                host.run(["systemctl", "daemon-reload"])
        elif kind == "command":
            if action.get("optional"):
                rc, _out, err = host.try_run(action["argv"])
                if rc != 0:
                    module.warn("%s failed (%s); the kernel keeps the old partition table until the next boot"
                                % (" ".join(action["argv"]), err.strip()))
            else:
                host.run(action["argv"])
        elif kind == "zero":
            for offset, length in zero_ranges(action["size"]):
                host.write_zeros(action["path"], offset, length)


def prepare(module, host):
    device = module.params["device"]
    real = host.realpath(device)
    if not host.exists(real):
        raise OsdPrepError("no such device on this node; set device to the partition or disk (ls -l /dev/disk/by-id "
                           "lists the stable names). Nothing was changed.")
    kind = host.kind(real)
    if kind != "block":
        raise OsdPrepError("a %s, not a block device; set device to a partition or disk. Nothing was changed." % kind)
    forest = Forest.from_lsblk(host.run([host.tool("lsblk"), "--json", "--bytes", "--paths", "--output",
                                         LSBLK_COLUMNS]))
    node = forest.find(real)
    if node is None:
        raise OsdPrepError("lsblk does not list %s. Nothing was changed." % real)
    members = [c for c in node.children if c.type == "part"] + [node]
    facts, fstab, fstab_text = gather(host, node, forest, members, module.params["adopted"])
    verdict = inspect(facts, node, module.params["wipe"], module.params["force"])
    by_id, rook_device = stable_ids(node, links_of(host))
    disk = forest.disk_of(node)
    signatures = facts.signatures[node.kname]
    result = dict(
        device=device,
        kernel_name=node.kname,
        kind="part" if node.type == "part" else "disk",
        parent=disk.kname if disk is not node else None,
        size_bytes=node.size,
        rotational=node.rotational,
        by_id=by_id,
        partuuid=node.partuuid,
        partlabel=node.partlabel,
        serial=node.serial or disk.serial,
        wwn=node.wwn or disk.wwn,
        rook_device=rook_device,
        signatures=signatures,
        removed_signatures=[],
        unmounted=None,
        fstab_commented=[],
        actions=[],
        ready=False,
        adopted=verdict.adopted,
        changed=False,
    )
    if verdict.refusals:
        raise Refused("Refusing %s. %s. Nothing was changed." % (device, ". ".join(verdict.refusals)), result)
    result.update(
        removed_signatures=verdict.removed,
        unmounted=verdict.unmounted[0] if verdict.unmounted else None,
        fstab_commented=verdict.fstab_lines,
        actions=[a["text"] for a in verdict.actions],
        ready=True,
        changed=bool(verdict.actions),
    )
    if verdict.actions:
        new_fstab = commented(fstab, verdict)
        result["diff"] = [
            dict(before_header="%s signatures" % device, after_header="%s signatures" % device,
                 before="".join(describe_signature(s) + "\n" for s in signatures), after=""),
        ]
        if verdict.fstab_lines:
            result["diff"].insert(0, dict(before_header=FSTAB, after_header=FSTAB, before=fstab_text,
                                          after=new_fstab.render()))
        if not module.check_mode:
            carry_out(module, host, verdict, new_fstab)
    return result


class Refused(Exception):
    def __init__(self, msg, result):
        super(Refused, self).__init__(msg)
        self.result = result


def main():
    module = build_module()
    check_arguments(module)
    host = Host(module)
    try:
        result = prepare(module, host)
    except Refused as exc:
        module.fail_json(msg=str(exc), **exc.result)
    except (OsdPrepError, BlockdevError, FstabError) as exc:
        module.fail_json(msg="%s: %s" % (module.params["device"], exc), changed=False)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
