# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A declared GPT layout against a disk's real partition table, as pure functions (no I/O).

Shared by the module gpulab.cluster.disk_layout and the filter gpulab.cluster.autoinstall_storage, so
that a size, a partition type or a placement means the same thing in both:

- ``PARTITION_OPTIONS``: the option spec of one partition of a layout (the module's argument spec and
  the filter's validation).
- ``parse_size``: ``16GiB``, ``512M``, ``25%``, ``rest``.
- ``read_disk``: the disk model from ``lsblk --json --bytes`` and ``sfdisk --json``.
- ``compute_plan``: where each partition of the layout lies or will lie, what must change, what would be
  destructive, or a ``LayoutError`` naming every problem found (partition, numbers in MiB).
- ``apply_plan_to_disk``: the disk model the plan leads to (check mode's prediction, the diff's "after").
- ``render_dump``: a partition table in ``sfdisk --dump`` form.
- ``plan_fstab``: the fstab edits for the layout's mounts, by filesystem UUID.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import re

from ansible_collections.gpulab.cluster.plugins.module_utils._blockdev import load_json as _load_json
from ansible_collections.gpulab.cluster.plugins.module_utils._fstab import (
    comment_text,
    decode_field,
    encode_field,
    spec_device_path,
)

MIB = 1024 * 1024
GIB = 1024 * MIB
TIB = 1024 * GIB
ALIGN = MIB

# GPT partition type GUIDs (Discoverable Partitions Specification, UEFI, GRUB), upper case as sfdisk writes them.
TYPE_GUIDS = {
    "linux": "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
    "swap": "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F",
    "esp": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
    "bios_grub": "21686148-6449-6E6F-744E-656564454649",
    "lvm": "E6D6D379-F507-44C2-A23C-238F2A3DF928",
    "raid": "A19D880F-05FC-4D3B-A006-743F0F84911E",
}
GUID_TYPES = dict((guid, name) for name, guid in TYPE_GUIDS.items())
PARTITION_TYPES = ["linux", "swap", "esp", "bios_grub", "lvm", "raid"]
FILESYSTEMS = ["ext4", "xfs", "btrfs", "vfat", "swap"]
GPT_MAX_PARTITIONS = 128
# The marker in front of fstab lines this module comments: "#gpulab.cluster.disk_layout# <line>".
FSTAB_MARKER = "gpulab.cluster.disk_layout"
# What a check-mode fstab line shows in place of the UUID of a filesystem not made yet.
NEW_UUID = "<new>"

PARTITION_OPTIONS = dict(
    name=dict(type="str", required=True),
    number=dict(type="int"),
    size=dict(type="str", required=True),
    type=dict(type="str", default="linux", choices=PARTITION_TYPES),
    fs=dict(type="str", choices=FILESYSTEMS),
    mount=dict(type="path"),
    mount_opts=dict(type="str"),
)
PARTITION_REQUIRED_BY = dict(mount="fs", mount_opts="mount")

_SIZE = re.compile(r"^\s*([0-9]+)\s*(MiB|GiB|TiB|M|G|T)\s*$")
_DECIMAL = re.compile(r"^\s*[0-9.]+\s*(B|kB|KB|MB|GB|TB|PB)\s*$", re.IGNORECASE)
_PERCENT = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*%\s*$")
_UNITS = {"M": MIB, "MiB": MIB, "G": GIB, "GiB": GIB, "T": TIB, "TiB": TIB}
_NUMBER_AT_END = re.compile(r"([0-9]+)$")


class LayoutError(Exception):
    """A layout that cannot be applied; the message names every problem (partition and numbers)."""

    def __init__(self, problems, **details):
        if not isinstance(problems, list):
            problems = [problems]
        super(LayoutError, self).__init__("; ".join(problems))
        self.problems = problems
        self.details = details


def mib(value):
    """Bytes as a MiB figure for messages: whole when exact, else two decimals."""
    if value % MIB == 0:
        return "%d MiB" % (value // MIB)
    return "%.2f MiB" % (value / float(MIB))


def align_up(value, step=ALIGN):
    return -(-value // step) * step


def align_down(value, step=ALIGN):
    return (value // step) * step


# ---------------------------------------------------------------------------------------------- sizes
def parse_size(text):
    """('bytes', n), ('percent', p) or ('rest', None) for a size of the layout; ValueError says why not."""
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise ValueError("size %r is not a text such as 16GiB, 25%% or rest" % (text,))
    if isinstance(text, int):
        raise ValueError("size %d has no unit: write %dMiB, %dGiB or similar" % (text, text, text))
    if text.strip().lower() == "rest":
        return "rest", None
    match = _SIZE.match(text)
    if match:
        value = int(match.group(1)) * _UNITS[match.group(2)]
        if value == 0:
            raise ValueError("size %r is zero" % text)
        return "bytes", value
    match = _PERCENT.match(text)
    if match:
        percent = float(match.group(1))
        if percent <= 0 or percent > 100:
            raise ValueError("size %r is not a percentage above 0 and at most 100" % text)
        return "percent", percent
    if _DECIMAL.match(text):
        raise ValueError(
            "size %r uses a decimal unit; write binary units (MiB, GiB, TiB, or M, G, T as sfdisk and the Ubuntu "
            "installer read them): 1GB is 7%% less than 1GiB" % text
        )
    raise ValueError(
        "size %r is not understood; write a whole number with MiB, GiB or TiB (M, G, T), a percentage such as 25%%, "
        "or rest" % text
    )


def size_bytes(text, disk_bytes=None):
    """Bytes for a fixed or percent size (percent of the whole disk, rounded down to whole MiB)."""
    kind, value = parse_size(text)
    if kind == "bytes":
        return value
    if kind == "percent":
        if disk_bytes is None:
            raise ValueError("size %r is a percentage of the disk, and the disk size is not known" % text)
        return align_down(int(disk_bytes * value / 100.0))
    raise ValueError("size %r has no fixed size" % text)


# ---------------------------------------------------------------------------------------------- layout
def validate_layout(layout):
    """Rules between the partitions of a layout (the argument spec checks each one alone).

    Returns the list of problems, empty when the layout is consistent.
    """
    problems = []
    names = {}
    numbers = {}
    mounts = {}
    rest = []
    for index, part in enumerate(layout):
        name = part.get("name")
        label = "partition %r" % name
        if not name:
            problems.append("partition #%d of the layout has no name; give every partition a GPT name" % (index + 1))
        elif len(name) > 36:
            problems.append("%s: a GPT name has at most 36 characters, this one %d" % (label, len(name)))
        elif name in names:
            problems.append("partition name %r is used twice in the layout; names must be unique" % name)
        names[name] = index
        number = part.get("number")
        if number is not None:
            if number < 1 or number > GPT_MAX_PARTITIONS:
                problems.append("%s: number %d is outside 1-%d" % (label, number, GPT_MAX_PARTITIONS))
            elif number in numbers:
                problems.append("partition number %d is given to %r and %r" % (number, numbers[number], name))
            numbers[number] = name
        try:
            kind, dummy = parse_size(part.get("size"))
            if kind == "rest":
                rest.append(name)
        except ValueError as exc:
            problems.append("%s: %s" % (label, exc))
        ptype = part.get("type") or "linux"
        fs = part.get("fs")
        mount = part.get("mount")
        if ptype == "bios_grub" and (fs or mount):
            problems.append("%s: a bios_grub partition holds GRUB's core image, no filesystem and no mount" % label)
        if fs == "swap" and ptype != "swap":
            problems.append("%s: fs swap needs type swap (the GPT type systemd and the installer look for)" % label)
        if fs == "swap" and mount:
            problems.append(
                "%s: swap is not mounted and gets no fstab line from this module (swap is gpulab.cluster.swap's "
                "business); remove mount" % label
            )
        if ptype == "esp" and fs not in (None, "vfat"):
            problems.append("%s: an EFI system partition needs fs vfat (or no fs), not %s" % (label, fs))
        if mount:
            if not mount.startswith("/"):
                problems.append("%s: mount %r is not an absolute path" % (label, mount))
            elif mount in mounts:
                problems.append("mount point %s is given to %r and %r" % (mount, mounts[mount], name))
            mounts[mount] = name
    if len(rest) > 1:
        problems.append(
            "partitions %s all ask for the rest of the disk; at most one partition may use size rest"
            % ", ".join(repr(name) for name in rest)
        )
    return problems


# ---------------------------------------------------------------------------------------------- reading
def partition_path(disk_path, number):
    """Kernel name of partition number of disk_path: /dev/sda3, /dev/nvme0n1p3, /dev/mmcblk0p3."""
    if disk_path[-1:].isdigit():
        return "%sp%d" % (disk_path, number)
    return "%s%d" % (disk_path, number)


def partition_number(node):
    match = _NUMBER_AT_END.search(node or "")
    if not match:
        raise ValueError("cannot read a partition number from %r" % (node,))
    return int(match.group(1))


def parse_sfdisk_json(text):
    """The 'partitiontable' object of ``sfdisk --json``."""
    table = _load_json(text, "sfdisk --json output").get("partitiontable")
    if not isinstance(table, dict) or "label" not in table:
        raise ValueError("sfdisk --json output has no partitiontable with a label")
    return table


def parse_lsblk_json(text):
    """The one block device of ``lsblk --json --bytes DEV``, with its children."""
    devices = _load_json(text, "lsblk --json output").get("blockdevices")
    if not isinstance(devices, list) or len(devices) != 1 or not isinstance(devices[0], dict):
        raise ValueError("lsblk --json output does not describe exactly one device")
    return devices[0]


def parse_blkid_export(text):
    """KEY=value lines of ``blkid -p -o export`` as a dict."""
    out = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _mounts(device):
    values = device.get("mountpoints")
    if values is None:
        values = [device.get("mountpoint")]
    return [value for value in values if value]


def _int(value):
    return int(value) if value is not None else None


def _in_use(device):
    """Mount points and holders (LVM, dm-crypt, RAID on top) of a device from lsblk, as sentences."""
    uses = ["mounted at %s" % point if point != "[SWAP]" else "active swap" for point in _mounts(device)]
    for child in device.get("children") or []:
        if child.get("type") != "part":
            uses.append("held by %s (%s)" % (child.get("path") or child.get("name"), child.get("type")))
    return uses


def gpt_usable(total_sectors, sector_size):
    """(first, last) usable LBA of a new GPT with 128 entries, the first aligned to 1 MiB."""
    entry_sectors = -(-16384 // sector_size)
    first = align_up((2 + entry_sectors) * sector_size) // sector_size
    last = total_sectors - 2 - entry_sectors
    return first, last


def read_disk(lsblk_text, sfdisk_text=None):
    """The disk model from lsblk and sfdisk JSON (sfdisk_text None: no partition table)."""
    dev = parse_lsblk_json(lsblk_text)
    sector_size = _int(dev.get("log-sec")) or 512
    size = _int(dev.get("size"))
    disk = {
        "path": dev.get("path") or "/dev/" + dev.get("name", ""),
        "name": dev.get("name"),
        "type": dev.get("type"),
        "size_bytes": size,
        "sector_size": sector_size,
        "serial": (dev.get("serial") or "").strip() or None,
        "wwn": (dev.get("wwn") or "").strip() or None,
        "model": (dev.get("model") or "").strip() or None,
        "rotational": bool(dev.get("rota")) if dev.get("rota") is not None else None,
        "signature": dev.get("fstype"),
        "in_use": _in_use(dev),
        "table": "none",
        "label_id": None,
        "partitions": [],
    }
    children = dict((child.get("path"), child) for child in dev.get("children") or [] if child.get("type") == "part")
    total = size // sector_size
    disk["first_lba"], disk["last_lba"] = gpt_usable(total, sector_size)
    if sfdisk_text is not None:
        table = parse_sfdisk_json(sfdisk_text)
        disk["table"] = table["label"]
        disk["label_id"] = table.get("id")
        if table.get("sectorsize"):
            disk["sector_size"] = sector_size = int(table["sectorsize"])
        if table.get("firstlba") is not None:
            disk["first_lba"] = int(table["firstlba"])
        if table.get("lastlba") is not None:
            disk["last_lba"] = int(table["lastlba"])
        for entry in table.get("partitions") or []:
            node = entry["node"]
            child = children.get(node, {})
            number = partition_number(node)
            disk["partitions"].append(
                {
                    "number": number,
                    "path": node,
                    "start": int(entry["start"]) * sector_size,
                    "size": int(entry["size"]) * sector_size,
                    "type_guid": (entry.get("type") or "").upper() or None,
                    "partuuid": (entry.get("uuid") or child.get("partuuid") or "").lower() or None,
                    "name": entry.get("name") or None,
                    "fs": child.get("fstype"),
                    "uuid": child.get("uuid"),
                    "label": child.get("label"),
                    "mounts": _mounts(child),
                    "in_use": _in_use(child),
                    "attrs": entry.get("attrs"),
                }
            )
        disk["partitions"].sort(key=lambda part: part["number"])
    return disk


def check_identity(disk, serial=None, wwn=None, size_bytes=None):
    """Mismatches between the disk and the identity the caller states, one sentence each."""
    problems = []
    if serial is not None and (disk.get("serial") or "") != serial.strip():
        problems.append("serial is %r, disk_serial says %r" % (disk.get("serial"), serial))
    if wwn is not None:
        have = (disk.get("wwn") or "").lower()
        want = wwn.strip().lower()
        if have.startswith("0x"):
            have = have[2:]
        if want.startswith("0x"):
            want = want[2:]
        if not have or have != want:
            problems.append("WWN is %r, disk_wwn says %r" % (disk.get("wwn"), wwn))
    if size_bytes is not None and disk.get("size_bytes") != size_bytes:
        problems.append("size is %s bytes, disk_size_bytes says %d" % (disk.get("size_bytes"), size_bytes))
    return problems


# ---------------------------------------------------------------------------------------------- planning
def _type_name(guid):
    return GUID_TYPES.get((guid or "").upper(), guid)


def _free_after(disk, part, end_limit):
    """Bytes between the end of part and the next partition (or the usable end)."""
    end = part["start"] + part["size"]
    nexts = [other["start"] for other in disk["partitions"] if other["start"] >= end and other is not part]
    limit = min(nexts) if nexts else end_limit
    return max(0, limit - end), (min(nexts) if nexts else None)


def _next_partition(disk, end):
    after = [other for other in disk["partitions"] if other["start"] >= end]
    return min(after, key=lambda other: other["start"]) if after else None


def compute_plan(layout, disk, allow_relabel=False):
    """Plan of the layout on the disk.

    layout: partitions as the argument spec normalizes them. disk: read_disk()'s model.
    Returns a dict: ``entries`` (one per layout partition: name, number, path, start_bytes, size_bytes, type,
    fs, mount, status, changes), ``steps`` (what to do, in order), ``destructive`` (sentences: what needs
    allow_destructive), ``free_bytes`` (unpartitioned space afterwards), ``notes``.
    Raises LayoutError naming every problem when the layout cannot be applied at all.
    """
    problems = validate_layout(layout)
    if problems:
        raise LayoutError(problems)
    ss = disk["sector_size"]
    dev = disk["path"]
    steps = []
    destructive = []
    notes = []
    table = disk["table"]
    existing = list(disk["partitions"])
    if table == "gpt":
        pass
    elif table == "none" and not disk.get("signature"):
        steps.append({"op": "label", "what": "create"})
    else:
        if table == "none":
            found = "a filesystem signature (%s) on the whole disk and no partition table" % disk["signature"]
        else:
            found = "a %s partition table with %d partition(s)" % (table, len(existing))
        if disk.get("in_use"):
            raise LayoutError(
                "refusing to replace %s on %s with a GPT: the disk is in use (%s); this module never does that to a "
                "disk in use" % (found, dev, ", ".join(disk["in_use"]))
            )
        busy = [part for part in existing if part["in_use"]]
        if busy:
            raise LayoutError(
                "refusing to replace %s on %s with a GPT: %s" % (
                    found, dev, "; ".join("%s is %s" % (part["path"], ", ".join(part["in_use"])) for part in busy))
            )
        destructive.append(
            "replace %s on %s with an empty GPT (every partition and filesystem on it is lost)" % (found, dev)
        )
        steps.append({"op": "label", "what": "replace", "found": found})
        existing = []
    first = align_up(disk["first_lba"] * ss)
    usable_end = align_down((disk["last_lba"] + 1) * ss)
    if table != "gpt":
        first, last = gpt_usable(disk["size_bytes"] // ss, ss)
        first = first * ss
        usable_end = align_down((last + 1) * ss)
    by_number = dict((part["number"], part) for part in existing)
    by_name = {}
    for part in existing:
        if part["name"]:
            by_name.setdefault(part["name"], []).append(part)

    entries = []
    matched = {}
    for want in layout:
        name = want["name"]
        part = None
        if want.get("number") is not None:
            part = by_number.get(want["number"])
            if part is not None and part["name"] and part["name"] != name:
                problems.append(
                    "partition %r: number %d on %s is the partition named %r, not %r; fix the number or the name "
                    "in the layout (this module never renames a named partition)"
                    % (name, want["number"], dev, part["name"], name)
                )
                continue
            others = [other for other in by_name.get(name, []) if other is not part]
            if others:
                problems.append(
                    "partition %r: the layout gives it number %d, and %s already carries that name; "
                    "fix the number in the layout" % (name, want["number"], others[0]["path"])
                )
                continue
        else:
            candidates = by_name.get(name, [])
            if len(candidates) > 1:
                problems.append(
                    "partition %r: %s has %d partitions with that GPT name (%s); give the layout's partition a number"
                    % (name, dev, len(candidates), ", ".join(str(other["number"]) for other in candidates))
                )
                continue
            part = candidates[0] if candidates else None
        if part is not None:
            matched[name] = part
        entries.append({"want": want, "part": part})
    if problems:
        raise LayoutError(problems)

    # Existing partitions first: what they are, what they would need.
    new_ends = {}
    for entry in entries:
        want, part = entry["want"], entry["part"]
        if part is None:
            continue
        name = want["name"]
        label = "partition %d %r on %s" % (part["number"], name, dev)
        changes = []
        entry["changes"] = changes
        entry["status"] = "ok"
        start, size = part["start"], part["size"]
        kind, dummy = parse_size(want["size"])
        wanted = None
        if kind == "rest":
            free, dummy = _free_after(disk, part, usable_end)
            if free >= ALIGN:
                notes.append(
                    "%s has size rest and %s free after it: an existing partition is never grown to take it"
                    % (label, mib(free))
                )
        else:
            wanted = size_bytes(want["size"], disk["size_bytes"])
        new_size = size
        if wanted is not None and abs(wanted - size) >= ALIGN:
            verb = "grow" if wanted > size else "shrink"
            if wanted > size:
                nxt = _next_partition(disk, start + size)
                limit = nxt["start"] if nxt else usable_end
                if start + wanted > limit:
                    if nxt:
                        problems.append(
                            "%s: its size %s (%s) would end it at %s, overlapping partition %d %r that starts at %s; "
                            "fix its size in the layout" % (
                                label, want["size"], mib(wanted), mib(start + wanted), nxt["number"],
                                nxt["name"] or "", mib(nxt["start"]))
                        )
                    else:
                        problems.append(
                            "%s: its size %s (%s) would end it at %s, beyond the disk's usable end at %s; "
                            "fix its size in the layout" % (
                                label, want["size"], mib(wanted), mib(start + wanted), mib(usable_end))
                        )
                    continue
            changes.append("%s from %s to %s" % (verb, mib(size), mib(wanted)))
            destructive.append("%s %s from %s to %s" % (verb, label, mib(size), mib(wanted)))
            steps.append({"op": "resize", "part": part, "name": name, "size": wanted})
            new_size = wanted
        want_guid = TYPE_GUIDS[want.get("type") or "linux"]
        if (part["type_guid"] or "").upper() != want_guid:
            changes.append("type %s to %s" % (_type_name(part["type_guid"]), want.get("type") or "linux"))
            destructive.append(
                "change the type of %s from %s to %s" % (label, _type_name(part["type_guid"]), want.get("type"))
            )
            steps.append({"op": "type", "part": part, "name": name, "guid": want_guid})
        fs = want.get("fs")
        if fs and part["fs"] != fs:
            if part["fs"]:
                changes.append("reformat %s as %s" % (part["fs"], fs))
                destructive.append("reformat %s (%s) as %s" % (label, part["fs"], fs))
            else:
                changes.append("make %s on it" % fs)
                destructive.append(
                    "make %s on %s, an existing partition without a filesystem signature (it may hold data "
                    "blkid does not recognize)" % (fs, label)
                )
            steps.append({"op": "mkfs", "path": part["path"], "fs": fs, "name": name, "existing": True})
        if changes and part["in_use"]:
            problems.append(
                "refusing to change %s (%s): it is %s; even allow_destructive does not change a partition in use"
                % (label, ", ".join(changes), ", ".join(part["in_use"]))
            )
        if part["name"] != name:
            steps.append({"op": "name", "part": part, "name": name})
            entry["status"] = "adopt"
        if changes:
            entry["status"] = "change"
        new_ends[part["number"]] = part["start"] + new_size
        entry["start"], entry["size"] = start, new_size
    if problems:
        raise LayoutError(problems)

    # New partitions: in layout order, after the last partition of the disk.
    ends = [part["start"] + part["size"] for part in existing] + list(new_ends.values())
    cursor = align_up(max([first] + ends))
    fresh = [entry for entry in entries if entry["part"] is None]
    used_numbers = set(part["number"] for part in existing) | set(
        entry["want"]["number"] for entry in entries if entry["want"].get("number") is not None
    )
    available = max(0, usable_end - cursor)
    fixed = 0
    for entry in fresh:
        kind, dummy = parse_size(entry["want"]["size"])
        if kind != "rest":
            entry["size"] = size_bytes(entry["want"]["size"], disk["size_bytes"])
            fixed += entry["size"]
    for entry in fresh:
        if "size" not in entry:
            entry["size"] = align_down(available - fixed) if available > fixed else 0
            if entry["size"] < ALIGN:
                problems.append(
                    "partition %r: size rest leaves it %s: the new partitions need %s of the %s free after %s on %s; "
                    "make the other partitions smaller" % (
                        entry["want"]["name"], mib(max(0, available - fixed)), mib(fixed), mib(available),
                        mib(cursor), dev)
                )
    if problems:
        raise LayoutError(problems)
    position = cursor
    free_numbers = (number for number in range(1, GPT_MAX_PARTITIONS + 1) if number not in used_numbers)
    creates = []
    for entry in fresh:
        want = entry["want"]
        end = position + entry["size"]
        if end > usable_end:
            problems.append(
                "partition %r (%s, %s) does not fit on %s: it would span %s to %s and the usable space ends at %s; "
                "the new partitions need %s, %s is free after %s; make them smaller or use size rest for one" % (
                    want["name"], want["size"], mib(entry["size"]), dev, mib(position), mib(end), mib(usable_end),
                    mib(fixed), mib(available), mib(cursor))
            )
            break
        number = want.get("number")
        if number is None:
            number = next(free_numbers, None)
            if number is None:
                problems.append("partition %r: %s has no free GPT entry left" % (want["name"], dev))
                break
        entry["start"] = position
        entry["number"] = number
        entry["status"] = "create"
        entry["changes"] = []
        creates.append({
            "number": number,
            "path": partition_path(dev, number),
            "start": position,
            "size": entry["size"],
            "guid": TYPE_GUIDS[want.get("type") or "linux"],
            "name": want["name"],
            "fs": want.get("fs"),
        })
        position = end
    if problems:
        raise LayoutError(problems)
    if creates:
        steps.append({"op": "create", "partitions": creates})
        for create in creates:
            if create["fs"]:
                steps.append({"op": "mkfs", "path": create["path"], "fs": create["fs"], "name": create["name"],
                              "existing": False})

    out_entries = []
    for entry in entries:
        want, part = entry["want"], entry["part"]
        number = part["number"] if part else entry["number"]
        out_entries.append({
            "name": want["name"],
            "number": number,
            "path": part["path"] if part else partition_path(dev, number),
            "start_bytes": entry["start"],
            "size_bytes": entry["size"],
            "type": want.get("type") or "linux",
            "fs": want.get("fs"),
            "mount": want.get("mount"),
            "status": entry["status"],
            "changes": entry["changes"],
        })
    after = apply_plan_to_disk(disk, {"steps": steps})
    return {
        "entries": out_entries,
        "steps": steps,
        "destructive": destructive,
        "notes": notes,
        "free_bytes": free_bytes(after),
        "usable_start": first,
        "usable_end": usable_end,
    }


def free_bytes(disk):
    """Unpartitioned bytes in the disk's usable range (whole MiB pieces only)."""
    ss = disk["sector_size"]
    start = align_up(disk["first_lba"] * ss)
    end = (disk["last_lba"] + 1) * ss
    total = 0
    for part in sorted(disk["partitions"], key=lambda part: part["start"]):
        if part["start"] > start:
            total += align_down(part["start"] - start)
        start = max(start, align_up(part["start"] + part["size"]))
    if end > start:
        total += align_down(end - start)
    return total


def apply_plan_to_disk(disk, plan):
    """The disk model after the plan's partition steps (filesystem fields of new filesystems unknown: None)."""
    after = copy.deepcopy(disk)
    by_number = dict((part["number"], part) for part in after["partitions"])
    for step in plan["steps"]:
        op = step["op"]
        if op == "label":
            after["table"] = "gpt"
            after["label_id"] = None
            after["partitions"] = []
            after["signature"] = None
            first, last = gpt_usable(after["size_bytes"] // after["sector_size"], after["sector_size"])
            after["first_lba"], after["last_lba"] = first, last
            by_number = {}
        elif op == "resize":
            by_number[step["part"]["number"]]["size"] = step["size"]
        elif op == "type":
            by_number[step["part"]["number"]]["type_guid"] = step["guid"]
        elif op == "name":
            by_number[step["part"]["number"]]["name"] = step["name"]
        elif op == "create":
            for create in step["partitions"]:
                part = {
                    "number": create["number"],
                    "path": create["path"],
                    "start": create["start"],
                    "size": create["size"],
                    "type_guid": create["guid"],
                    "partuuid": None,
                    "name": create["name"],
                    "fs": None,
                    "uuid": None,
                    "label": None,
                    "mounts": [],
                    "in_use": [],
                    "attrs": None,
                }
                after["partitions"].append(part)
                by_number[create["number"]] = part
        elif op == "mkfs":
            for part in after["partitions"]:
                if part["path"] == step["path"]:
                    part["fs"] = step["fs"]
                    part["uuid"] = None
    after["partitions"].sort(key=lambda part: part["number"])
    return after


def render_dump(disk):
    """The partition table in ``sfdisk --dump`` form ('' for a disk without one); unknown fields left out."""
    if disk["table"] == "none":
        return ""
    ss = disk["sector_size"]
    lines = ["label: %s" % disk["table"]]
    if disk.get("label_id"):
        lines.append("label-id: %s" % disk["label_id"])
    lines.append("device: %s" % disk["path"])
    lines.append("unit: sectors")
    if disk["table"] == "gpt":
        lines.append("first-lba: %d" % disk["first_lba"])
        lines.append("last-lba: %d" % disk["last_lba"])
    lines.append("sector-size: %d" % ss)
    if disk["partitions"]:
        lines.append("")
    for part in disk["partitions"]:
        fields = ["start=%12d" % (part["start"] // ss), "size=%12d" % (part["size"] // ss)]
        if part.get("type_guid"):
            fields.append("type=%s" % part["type_guid"])
        if part.get("partuuid") and disk["table"] == "gpt":
            fields.append("uuid=%s" % part["partuuid"].upper())
        if part.get("name"):
            fields.append('name="%s"' % part["name"].replace('"', '\\"'))
        if part.get("attrs"):
            fields.append('attrs="%s"' % part["attrs"])
        lines.append("%s : %s" % (part["path"], ", ".join(fields)))
    return "\n".join(lines) + "\n"


def sfdisk_script(creates, sector_size):
    """Script lines for ``sfdisk --append``: the device name fixes each new partition's number."""
    lines = []
    for create in creates:
        lines.append('%s : start=%d, size=%d, type=%s, name="%s"' % (
            create["path"], create["start"] // sector_size, create["size"] // sector_size, create["guid"],
            create["name"].replace('"', '\\"')))
    return "\n".join(lines) + "\n"


def layout_of(disk):
    """The RETURN 'layout': every partition of the disk."""
    out = []
    for part in disk["partitions"]:
        out.append({
            "number": part["number"],
            "name": part["name"],
            "path": part["path"],
            "partuuid": part["partuuid"],
            "type_guid": part["type_guid"],
            "start_bytes": part["start"],
            "size_bytes": part["size"],
            "fs": part["fs"],
            "uuid": part["uuid"],
            "mount": part["mounts"][0] if part["mounts"] else None,
        })
    return out


# ---------------------------------------------------------------------------------------------- fstab
def fsck_pass(mount, fs):
    if mount == "/":
        return 1
    return 2 if fs in ("ext4", "vfat") else 0


def device_specs(part):
    """fstab source fields (as device paths, see spec_device_path) that name this partition's filesystem."""
    paths = set([part["path"]])
    if part.get("uuid"):
        paths.add("/dev/disk/by-uuid/" + part["uuid"])
        paths.add("/dev/disk/by-uuid/" + part["uuid"].lower())
    if part.get("partuuid"):
        paths.add("/dev/disk/by-partuuid/" + part["partuuid"].lower())
    if part.get("name"):
        paths.add("/dev/disk/by-partlabel/" + part["name"].replace("/", "\\x2f"))
    if part.get("label"):
        paths.add("/dev/disk/by-label/" + part["label"].replace("/", "\\x2f"))
    return paths


def _spec_path(spec):
    kind, path = spec_device_path(spec)
    if kind in ("UUID", "PARTUUID"):
        return path.lower()
    return path


def plan_fstab(fstab, mounts, path="/etc/fstab"):
    """Edits that give every mount of the layout one fstab entry by UUID.

    fstab: an FstabFile. mounts: dicts with mount, fs, opts (None: keep an existing entry's options, else
    'defaults'), part (the partition model after the plan: uuid None for a filesystem not made yet).
    Returns (new FstabFile, actions). Lines of other mount points are never touched; other lines for the same
    mount point are commented with the marker (never deleted).
    """
    actions = []
    new = fstab
    appended = []
    for want in mounts:
        part = want["part"]
        mount = want["mount"]
        names = set(_spec_path(spec) for spec in device_specs(part)) if part.get("uuid") else set()
        names.discard(None)
        ours = None
        others = []
        for line in new.entries():
            if decode_field(line.entry.file) != mount:
                continue
            if ours is None and _spec_path(line.entry.spec) in names:
                ours = line
            else:
                others.append(line)
        opts = want.get("opts")
        uuid = part.get("uuid") or NEW_UUID
        for line in others:
            new = new.replace(line.lineno, comment_text(line.text, FSTAB_MARKER))
            actions.append("fstab: comment line %d of %s for %s: %s" % (line.lineno, path, mount, line.text))
        if ours is not None:
            entry = ours.entry
            keep_opts = opts if opts is not None else entry.options
            if entry.vfstype == want["fs"] and entry.options == keep_opts:
                continue
            text = "UUID=%s %s %s %s %d %d" % (
                uuid, encode_field(mount), want["fs"], keep_opts, entry.freq, entry.passno)
            new = new.replace(ours.lineno, text)
            actions.append("fstab: update line %d of %s for %s (%s %s)" % (
                ours.lineno, path, mount, want["fs"], keep_opts))
            continue
        text = "UUID=%s %s %s %s 0 %d" % (
            uuid, encode_field(mount), want["fs"], opts or "defaults", fsck_pass(mount, want["fs"]))
        appended.append(text)
        actions.append("fstab: add %s (%s on %s, by UUID) to %s" % (mount, want["fs"], part["path"], path))
    for text in appended:
        new = new.append(text)
    return new, actions
