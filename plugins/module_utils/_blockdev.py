# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Block devices as the tools describe them: parsers for lsblk, wipefs, findmnt, LVM and /proc/swaps, and the
judgement of gpulab.cluster.ceph_osd_prep (which device may become an OSD, what it takes) as pure functions.

Nothing here runs a command: the module gathers the outputs, ``inspect`` turns them into a ``Verdict`` with the
refusals and the ordered actions, and the module carries the actions out. Every parser takes the text a real
tool prints (util-linux 2.34 to 2.40, LVM 2.03) and raises ``BlockdevError`` naming the tool when it cannot read it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

# ceph-volume refuses devices under 5 GB (its inventory reports "Insufficient space (<5GB)").
CEPH_MIN_BYTES = 5 * 1024 ** 3
# The mount points whose disk and partition are never an OSD.
PROTECTED_MOUNTS = ("/", "/boot", "/usr", "/var", "/home")
# BlueStore writes its label at the start of the device; newer Ceph releases keep copies at these offsets too.
BLUESTORE_MAGIC = b"bluestore block device"
BLUESTORE_LABEL_OFFSETS = (0, 1024 ** 3, 10 * 1024 ** 3, 100 * 1024 ** 3, 1000 * 1024 ** 3)
BLUESTORE_LABEL_BYTES = 4096
ZERO_BYTES = 1024 * 1024

# Signatures a wipe may remove on its own: they describe a layout, not data (the data cases are checked apart).
PARTITION_TABLES = ("gpt", "PMBR", "dos", "atari")
LAYOUT_SIGNATURES = PARTITION_TABLES + ("swap", "LVM2_member")
# Signatures of devices whose content is data by nature: only force removes them (and never while in use).
DATA_SIGNATURES = {
    "ceph_bluestore": "a Ceph OSD (BlueStore label): its objects are the cluster's data",
    "linux_raid_member": "a member of a RAID array: it holds the array's data",
    "crypto_LUKS": "a LUKS-encrypted volume",
    "zfs_member": "a member of a ZFS pool",
    "bcache": "a bcache device",
}
# Filesystems the module can look into read-only, with the options that keep the mount from writing.
PROBE_MOUNT_OPTIONS = {
    "ext2": "ro",
    "ext3": "ro,noload",
    "ext4": "ro,noload",
    "xfs": "ro,norecovery",
    "vfat": "ro",
    "btrfs": "ro,nologreplay",
}
EMPTY_FS_ENTRIES = ("lost+found",)


class BlockdevError(ValueError):
    """A tool's output could not be read."""


def load_json(text, what):
    """The JSON object a tool printed; ``what`` names the output in the error (``"lsblk --json output"``)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BlockdevError("%s is not JSON: %s" % (what, exc))
    if not isinstance(data, dict):
        raise BlockdevError("%s is not a JSON object" % what)
    return data


def _load(text, tool):
    return load_json(text, "%s --json output" % tool)


def _flag(value):
    """lsblk prints booleans as true/false (2.37+) or "0"/"1" (older)."""
    if isinstance(value, bool):
        return value
    return str(value).strip() in ("1", "true")


def _size(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BlockdevError("lsblk printed a size that is not a number of bytes: %r (was --bytes given?)" % (value,))


class Node(object):
    """One block device of the lsblk forest."""

    def __init__(self, raw):
        self.name = raw.get("name")
        self.kname = raw.get("kname") or self.name
        self.majmin = (raw.get("maj:min") or "").strip()
        self.type = raw.get("type")
        self.size = _size(raw.get("size"))
        self.rotational = _flag(raw.get("rota"))
        self.pkname = raw.get("pkname")
        self.serial = raw.get("serial")
        self.wwn = raw.get("wwn")
        self.partuuid = raw.get("partuuid")
        self.partlabel = raw.get("partlabel")
        self.fstype = raw.get("fstype")
        self.children = []
        self.parents = []

    @property
    def paths(self):
        return sorted(set(p for p in (self.name, self.kname) if p))


class Forest(object):
    """The block devices of a host and how they stack (``lsblk --json --paths`` without a device argument)."""

    def __init__(self, nodes):
        self.nodes = nodes

    @classmethod
    def from_lsblk(cls, text):
        data = _load(text, "lsblk")
        if "blockdevices" not in data:
            raise BlockdevError("the output of lsblk has no 'blockdevices' list")
        nodes = {}

        def walk(raw, parent):
            if not isinstance(raw, dict) or not raw.get("kname") and not raw.get("name"):
                raise BlockdevError("lsblk listed a device without a name: %r" % (raw,))
            node = Node(raw)
            node = nodes.setdefault(node.kname, node)
            if parent is not None:
                if node not in parent.children:
                    parent.children.append(node)
                if parent not in node.parents:
                    node.parents.append(parent)
            for child in raw.get("children") or ():
                walk(child, node)

        for raw in data["blockdevices"] or ():
            walk(raw, None)
        return cls(nodes)

    def find(self, path):
        """The node whose kernel or lsblk name is ``path`` (a resolved path), or None."""
        for node in self.nodes.values():
            if path in node.paths:
                return node
        return None

    def by_majmin(self, majmin):
        return [node for node in self.nodes.values() if node.majmin == majmin]

    def ancestors(self, node):
        """Every device ``node`` stands on (partitions, disks, PVs), nearest first."""
        seen = []
        todo = list(node.parents)
        while todo:
            current = todo.pop(0)
            if current not in seen:
                seen.append(current)
                todo.extend(current.parents)
        return seen

    def disk_of(self, node):
        """The whole disk of a partition (the partition's parent), or the node itself."""
        if node.type == "part":
            for parent in node.parents:
                if parent.type != "part":
                    return parent
        return node


def parse_wipefs(text):
    """``wipefs --no-act --json DEVICE``: [{"type", "offset" (int), "uuid", "label"}]."""
    if not text.strip():
        return []
    data = _load(text, "wipefs")
    found = []
    for raw in data.get("signatures") or ():
        try:
            offset = int(str(raw.get("offset")), 0)
        except ValueError:
            raise BlockdevError("wipefs printed an offset that is not a number: %r" % (raw.get("offset"),))
        found.append(dict(type=raw.get("type"), offset=offset, uuid=raw.get("uuid"), label=raw.get("label")))
    return found


def parse_findmnt(text):
    """``findmnt --json --list --output SOURCE,TARGET,FSTYPE,MAJ:MIN``: [{"source", "target", "fstype", "majmin"}]."""
    data = _load(text, "findmnt")
    mounts = []
    for raw in data.get("filesystems") or ():
        mounts.append(dict(source=raw.get("source"), target=raw.get("target"), fstype=raw.get("fstype"),
                           majmin=(raw.get("maj:min") or "").strip(), fsroot=raw.get("fsroot") or "/"))
    return mounts


def _lvm_report(text, tool, key):
    if not text.strip():
        return []
    data = _load(text, tool)
    rows = []
    for report in data.get("report") or ():
        rows.extend(report.get(key) or ())
    return rows


def parse_pvs(text):
    """``pvs --reportformat json --options pv_name,vg_name,pv_uuid``: [{"pv_name", "vg_name", "pv_uuid"}]."""
    return [dict(pv_name=row.get("pv_name"), vg_name=row.get("vg_name") or "", pv_uuid=row.get("pv_uuid"))
            for row in _lvm_report(text, "pvs", "pv")]


def parse_lvs(text):
    """``lvs --reportformat json --options lv_name,vg_name,lv_path,lv_attr,devices``, with active/open decoded
    from lv_attr (fifth character "a": active, sixth "o": open, see lvs(8))."""
    rows = []
    for row in _lvm_report(text, "lvs", "lv"):
        attr = row.get("lv_attr") or ""
        rows.append(dict(lv_name=row.get("lv_name"), vg_name=row.get("vg_name"), lv_path=row.get("lv_path"),
                         active=len(attr) > 4 and attr[4] == "a", open=len(attr) > 5 and attr[5] == "o"))
    return rows


def parse_proc_swaps(text):
    """The device or file of each active swap area in /proc/swaps (octal escapes decoded)."""
    areas = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if fields:
            areas.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[0]))
    return areas


def human_bytes(size):
    for unit, factor in (("TiB", 1024 ** 4), ("GiB", 1024 ** 3), ("MiB", 1024 ** 2), ("KiB", 1024)):
        if size >= factor:
            return "%.1f %s" % (size / float(factor), unit)
    return "%d B" % size


def describe_signature(sig):
    text = "%s at %s" % (sig["type"], hex(sig["offset"]))
    if sig.get("label"):
        text += " labelled %r" % sig["label"]
    if sig.get("uuid"):
        text += " (UUID %s)" % sig["uuid"]
    return text


class Facts(object):
    """What the module read from the host, ready for ``inspect``.

    ``signatures`` maps a kernel name to the signatures found on it; ``contents`` maps a kernel name to the entries
    of its filesystem's top folder (None when the filesystem could not be looked into); ``fstab`` is a list of
    (line number, text, spec, resolved path or None) for the active lines.
    """

    def __init__(self, forest, mounts, swaps, pvs, lvs, signatures, contents, fstab, busy=(), locked=(), adopted=()):
        self.busy = set(busy)
        self.locked = set(locked)
        self.adopted = set(adopted)
        self.forest = forest
        self.mounts = mounts
        self.swaps = swaps
        self.pvs = pvs
        self.lvs = lvs
        self.signatures = signatures
        self.contents = contents
        self.fstab = fstab

    def mounts_of(self, node):
        return [m for m in self.mounts if node.majmin and m["majmin"] == node.majmin]

    def swapping(self, node):
        return any(path in node.paths for path in self.swaps)

    def pv(self, node):
        for pv in self.pvs:
            if pv["pv_name"] in node.paths:
                return pv
        return None


class Verdict(object):
    """The outcome of ``inspect``: refusals (sentences), the actions in order, and what they remove."""

    def __init__(self):
        self.refusals = []
        self.actions = []
        self.removed = []
        self.unmounted = []
        self.fstab_lines = []
        self.adopted = False

    def refuse(self, text):
        if text not in self.refusals:
            self.refusals.append(text)

    def act(self, kind, text, **args):
        self.actions.append(dict(kind=kind, text=text, **args))


def protected_nodes(facts):
    """kernel name -> the protected mount point it holds (the device mounted there, and all it stands on)."""
    held = {}
    for mount in facts.mounts:
        if mount["target"] not in PROTECTED_MOUNTS:
            continue
        for node in facts.forest.by_majmin(mount["majmin"]):
            for each in [node] + facts.forest.ancestors(node):
                held.setdefault(each.kname, mount["target"])
    return held


def _in_use(facts, node, held):
    """Why ``node`` is in use, whatever the options (empty when it is not)."""
    reasons = []
    if node.kname in held:
        reasons.append("it holds %s" % held[node.kname])
    if facts.swapping(node):
        reasons.append("it is active swap (swapoff it and remove it from fstab first, or use another device)")
    for mount in facts.mounts_of(node):
        entries = facts.contents.get(node.kname)
        if entries is None or entries:
            reasons.append("it is mounted at %s and holds files (%s)" % (
                mount["target"], _some(entries) if entries else "contents unknown"))
    pv = facts.pv(node)
    if pv is not None and pv["vg_name"]:
        others = sorted(p["pv_name"] for p in facts.pvs if p["vg_name"] == pv["vg_name"] and p is not pv)
        if others:
            reasons.append("it is an LVM physical volume of %s, which also spans %s (take the volume group apart "
                           "with vgreduce/vgremove yourself)" % (pv["vg_name"], ", ".join(others)))
    holders = [holder for holder in node.children if holder.type != "part"]
    for holder in holders:
        reasons.extend(_holder_in_use(facts, node, holder))
    if node.kname in facts.locked:
        reasons.append("a running process holds it locked (a Ceph OSD locks its device so); stop that process first")
    explained = node.kname in held or facts.swapping(node) or facts.mounts_of(node) or holders or any(
        child.type == "part" for child in node.children)
    if node.kname in facts.busy and not explained:
        reasons.append("the kernel has it open exclusively, yet lsblk and findmnt show no mount, swap or holder (a "
                       "btrfs or ZFS member, or a driver, has it); find what holds it first")
    return reasons


def _some(entries):
    shown = sorted(entries)[:5]
    return ", ".join(shown) + (", ..." if len(entries) > len(shown) else "")


def meaningful_entries(entries, lost_found_entries):
    """The top-level entries that make a filesystem hold files: all but an empty lost+found."""
    return sorted(e for e in entries if e not in EMPTY_FS_ENTRIES or lost_found_entries)


def _holder_in_use(facts, node, holder):
    pv = facts.pv(node)
    if holder.type == "lvm" and pv is not None:
        lv = _lv_of(facts, holder)
        if lv is not None and (lv["open"] or facts.mounts_of(holder)):
            where = ", ".join(m["target"] for m in facts.mounts_of(holder))
            return ["it is an LVM physical volume of %s whose logical volume %s is in use%s" % (
                pv["vg_name"], lv["lv_path"], " (mounted at %s)" % where if where else "")]
        return []
    if holder.type.startswith("raid"):
        return ["it is a member of the running RAID array %s (stop the array with mdadm --stop first)" % holder.kname]
    return ["%s (%s) is built on it" % (holder.kname, holder.type)]


def _lv_of(facts, holder):
    for lv in facts.lvs:
        names = (lv["lv_path"], "/dev/mapper/%s-%s" % (lv["vg_name"].replace("-", "--"), lv["lv_name"].replace("-", "--")))
        if any(name in holder.paths for name in names):
            return lv
    return None


def _fstab_matches(facts, nodes):
    """The active fstab lines that mount one of ``nodes`` (by any name the line may use)."""
    names = set()
    for node in nodes:
        names.update(node.paths)
        if node.partuuid:
            names.update(("PARTUUID=%s" % node.partuuid, "/dev/disk/by-partuuid/%s" % node.partuuid))
        if node.partlabel:
            names.update(("PARTLABEL=%s" % node.partlabel, "/dev/disk/by-partlabel/%s" % node.partlabel))
        for sig in facts.signatures.get(node.kname) or ():
            if sig.get("uuid"):
                names.update(("UUID=%s" % sig["uuid"], "/dev/disk/by-uuid/%s" % sig["uuid"]))
            if sig.get("label"):
                names.update(("LABEL=%s" % sig["label"], "/dev/disk/by-label/%s" % sig["label"]))
    knames = set(p for node in nodes for p in node.paths)
    return [line for line in facts.fstab if line[2] in names or line[3] in knames]


def inspect(facts, node, wipe, force):
    """Judge one device: a Verdict with every refusal, or the actions that make it a clean OSD device."""
    verdict = Verdict()
    forest = facts.forest
    held = protected_nodes(facts)
    parts = [child for child in node.children if child.type == "part"]
    label = node.name
    if node.kname in facts.adopted and any(
            sig["type"] == "ceph_bluestore" for sig in facts.signatures.get(node.kname) or ()):
        # one of this cluster's OSDs (the caller says so, from the CephCluster): its data is the cluster's
        verdict.adopted = True
        return verdict

    for reason in _in_use(facts, node, held):
        verdict.refuse("%s: %s" % (label, reason))
    for part in parts:
        for reason in _in_use(facts, part, held):
            verdict.refuse("%s is a whole disk and its partition %s is in use: %s" % (label, part.name, reason))
    if node.size < CEPH_MIN_BYTES:
        verdict.refuse("%s: its size, %s, is below Ceph's minimum OSD size of %s" % (
            label, human_bytes(node.size), human_bytes(CEPH_MIN_BYTES)))
    if verdict.refusals:
        return verdict

    members = parts + [node]
    needs_wipe = []
    needs_force = []
    for member in members:
        sigs = facts.signatures.get(member.kname) or []
        if sigs:
            needs_wipe.append("%s carries %s" % (member.name, "; ".join(describe_signature(s) for s in sigs)))
        _data_checks(facts, member, sigs, needs_force)

    if needs_wipe and not wipe:
        verdict.refuse("%s is not clean: %s. Set wipe=true to remove these signatures (only from what holds no data)"
                       % (label, "; ".join(needs_wipe)))
    if needs_force and not force:
        verdict.refuse("%s holds data: %s. Set force=true (with wipe=true) to destroy it, once you are sure this is "
                       "the device you mean" % (label, "; ".join(needs_force)))
    if verdict.refusals:
        return verdict
    _plan(facts, node, parts, verdict)
    return verdict


def _data_checks(facts, member, sigs, needs_force):
    pv = facts.pv(member)
    if pv is not None and pv["vg_name"]:
        lvs = [lv for lv in facts.lvs if lv["vg_name"] == pv["vg_name"]]
        if lvs:
            needs_force.append("volume group %s holds the logical volume(s) %s" % (
                pv["vg_name"], ", ".join(lv["lv_path"] for lv in lvs)))
    for sig in sigs:
        kind = sig["type"]
        if kind in LAYOUT_SIGNATURES:
            continue
        if kind in DATA_SIGNATURES:
            needs_force.append("%s is %s" % (member.name, DATA_SIGNATURES[kind]))
            continue
        entries = facts.contents.get(member.kname)
        if entries is None:
            needs_force.append("%s has a %s signature whose contents cannot be looked into" % (member.name, kind))
        elif entries:
            needs_force.append("%s's %s filesystem holds files (%s)" % (member.name, kind, _some(entries)))


def _plan(facts, node, parts, verdict):
    members = parts + [node]
    for member in members:
        for mount in facts.mounts_of(member):
            verdict.act("umount", "umount %s" % mount["target"], target=mount["target"])
            verdict.unmounted.append(mount["target"])
    lv_nodes = [h for m in members for h in m.children if h.type == "lvm"]
    for lineno, text, _spec, _path in _fstab_matches(facts, members + lv_nodes):
        verdict.act("fstab", "comment out fstab line %d: %s" % (lineno, text), lineno=lineno, line=text)
        verdict.fstab_lines.append(text)
    for member in members:
        pv = facts.pv(member)
        if pv is None:
            continue
        if pv["vg_name"]:
            if any(lv["active"] for lv in facts.lvs if lv["vg_name"] == pv["vg_name"]):
                verdict.act("command", "vgchange --activate n %s" % pv["vg_name"],
                            argv=["vgchange", "--activate", "n", pv["vg_name"]])
            verdict.act("command", "vgremove --force %s" % pv["vg_name"], argv=["vgremove", "--force", pv["vg_name"]])
        verdict.act("command", "pvremove --yes %s" % member.name, argv=["pvremove", "--yes", member.name])
    for member in members:
        sigs = facts.signatures.get(member.kname) or []
        if sigs:
            verdict.act("command", "wipefs --all %s (%s)" % (member.name, ", ".join(
                "%s at %s" % (s["type"], hex(s["offset"])) for s in sigs)), argv=["wipefs", "--all", member.name])
            verdict.removed.extend(sigs)
    if verdict.actions:
        for member in members:
            verdict.act("zero", "zero the first MiB and the BlueStore label copies of %s" % member.name,
                        path=member.name, size=member.size)
        if parts or node.type == "disk":
            verdict.act("command", "blockdev --rereadpt %s" % node.name, argv=["blockdev", "--rereadpt", node.name],
                        optional=True)
        verdict.act("command", "udevadm settle", argv=["udevadm", "settle"], quiet=True)


def zero_ranges(size):
    """(offset, length) pairs a wipe zeroes: the first MiB and each BlueStore label copy inside the device."""
    ranges = [(0, min(ZERO_BYTES, size))]
    for offset in BLUESTORE_LABEL_OFFSETS[1:]:
        if offset + BLUESTORE_LABEL_BYTES <= size:
            ranges.append((offset, BLUESTORE_LABEL_BYTES))
    return ranges


def stable_ids(node, links):
    """The stable names of ``node``: ``links`` maps a /dev/disk/by-* link to the kernel path it points to.

    Returns (by_id links sorted, rook_device): a by-id link named after the disk's model and serial when there is
    one, else a wwn-/other by-id link, else the by-partuuid link, else a by-path link, else the kernel name.
    """
    mine = sorted(link for link, target in links.items() if target in node.paths)
    by_id = [link for link in mine if link.startswith("/dev/disk/by-id/")
             and not re.match(r"/dev/disk/by-id/(dm-|md-|lvm-pv-uuid-)", link)]
    named = [link for link in by_id if not link.startswith("/dev/disk/by-id/wwn-")
             and not link.startswith("/dev/disk/by-id/nvme-eui.")]
    for candidates in (named, by_id, [l for l in mine if l.startswith("/dev/disk/by-partuuid/")],
                       [l for l in mine if l.startswith("/dev/disk/by-path/")]):
        if candidates:
            return by_id, candidates[0]
    return by_id, node.kname
