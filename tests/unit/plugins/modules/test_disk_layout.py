# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpulab.cluster.disk_layout on a fake host that answers with the real tools' outputs recorded on the lab VM.

The fake host keeps the disk as sfdisk/lsblk JSON and changes it the way the real commands did: the states a
command leads to are the recorded ones (fixtures/disk_layout/README.md), so a run that starts from the recorded
empty disk must end on the recorded layout, fstab byte for byte.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import os
import re

import pytest
from ansible.module_utils import basic
from ansible_collections.gpulab.cluster.plugins.modules import disk_layout

from .utils import run_module

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "disk_layout")
DISK = "/dev/vdb"
SERIAL = "gpulab-dl1-disk1"
SIZE = 21474836480
LAB = [
    {"name": "a", "size": "4GiB", "fs": "ext4", "mount": "/srv/a"},
    {"name": "swap", "size": "1GiB", "type": "swap", "fs": "swap"},
    {"name": "data", "size": "rest"},
]
REFERENCE = [
    {"name": "esp", "number": 1, "size": "1GiB", "type": "esp", "fs": "vfat", "mount": "/boot/efi"},
    {"name": "root", "number": 2, "size": "50GiB", "fs": "ext4", "mount": "/"},
    {"name": "home", "number": 3, "size": "50GiB", "fs": "ext4", "mount": "/home"},
    {"name": "swap", "number": 4, "size": "16GiB", "type": "swap", "fs": "swap"},
    {"name": "data", "number": 5, "size": "512GiB"},
    {"name": "var", "number": 6, "size": "34GiB", "fs": "ext4", "mount": "/var", "mount_opts": "defaults,noatime"},
]
WRITES = ("--append", "--wipe", "-N", "--part-type", "--part-label")


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def have(name):
    return os.path.exists(os.path.join(FIXTURES, name))


class Host(object):
    """The lab VM's /dev/vdb as the recorded outputs show it, changed by the commands the module runs."""

    def __init__(self, tmp_path, state, target=None, fstab=None):
        self.tmp = str(tmp_path)
        self.load(state)
        self.target = target
        self.calls = []
        self.data = []
        self.fail = {}
        self.areas = {}
        self.dirs = {}
        self.mount_points = set()
        self.warnings = []
        self.ignore = set()
        self.udevadm = True
        self.kinds = {}
        self.fstab = os.path.join(self.tmp, "fstab")
        with open(self.fstab, "w") as handle:
            handle.write(fixture(fstab or ("fstab_%s" % state if have("fstab_%s" % state) else "fstab_empty")))

    def load(self, state):
        self.state = state
        self.lsblk = json.loads(fixture("lsblk_json_%s.json" % state))
        self.sfdisk = json.loads(fixture("sfdisk_json_%s.json" % state)) if have("sfdisk_json_%s.json" % state) \
            else None
        self.blkid = {}
        for child in self.disk().get("children", []):
            name = "blkid_p_%s_%s.txt" % (child["name"], state)
            self.blkid[child["path"]] = fixture(name) if have(name) else ""
        self.blkid[DISK] = fixture("blkid_p_disk_%s.txt" % state)

    # state ------------------------------------------------------------
    def disk(self):
        return self.lsblk["blockdevices"][0]

    def child(self, path):
        for child in self.disk().get("children", []):
            if child["path"] == path:
                return child
        return None

    def read_fstab(self):
        with open(self.fstab) as handle:
            return handle.read()

    def target_child(self, path):
        if not self.target:
            return None
        for child in json.loads(fixture("lsblk_json_%s.json" % self.target))["blockdevices"][0].get("children", []):
            if child["path"] == path:
                return child
        return None

    def target_entry(self, path):
        table = json.loads(fixture("sfdisk_json_%s.json" % self.target))["partitiontable"]
        for entry in table["partitions"]:
            if entry["node"] == path:
                return entry
        raise AssertionError("%s is not in the recorded %s table" % (path, self.target))

    # commands ---------------------------------------------------------
    def get_bin_path(self, name, required=False, opt_dirs=None):
        if name == "udevadm" and not self.udevadm:
            return None
        return "/usr/sbin/" + name

    def run_command(self, args, data=None, **kwargs):
        args = list(args)
        self.calls.append(args)
        self.data.append(data)
        name = os.path.basename(args[0])
        rest = args[1:]
        key = " ".join([name] + rest)
        for prefix, answer in self.fail.items():
            if key.startswith(prefix):
                return answer
        handler = getattr(self, "cmd_" + name.replace(".", "_"))
        return handler(rest, data)

    def cmd_lsblk(self, rest, data):
        assert rest[:4] == ["--json", "--bytes", "-o", disk_layout.LSBLK_COLUMNS]
        device = rest[4]
        kind = self.kinds.get(device)
        if kind == "part":
            return 0, fixture("lsblk_json_partition_vdb1.json"), ""
        if kind:
            dev = {"name": os.path.basename(device), "path": device, "type": kind, "pkname": "vdb", "size": 1}
            return 0, json.dumps({"blockdevices": [dev]}), ""
        assert device == DISK
        return 0, json.dumps(self.lsblk), ""

    def cmd_sfdisk(self, rest, data):
        if rest == ["--json", DISK]:
            if self.sfdisk is None:
                return 1, "", "sfdisk: /dev/vdb: does not contain a recognized partition table\n"
            return 0, json.dumps(self.sfdisk), ""
        assert rest[:2] == ["--wipe-partitions", "never"] or rest[0] in ("--part-type", "--part-label"), rest
        if "--wipe" in rest:
            assert data == "label: gpt\n"
            self.load("gptempty")
            self.blkid = {DISK: fixture("blkid_p_disk_gptempty.txt")}
            return 0, "", ""
        if "--append" in rest:
            assert "--no-reread" in rest
            if "append" in self.ignore:
                return 0, "", ""
            for line in data.splitlines():
                node, dummy, fields = line.partition(" : ")
                values = dict(field.split("=", 1) for field in fields.split(", "))
                entry = self.target_entry(node)
                # The script writes exactly what sfdisk wrote on the VM for this partition.
                assert (int(values["start"]), int(values["size"]), values["type"], values["name"].strip('"')) == (
                    entry["start"], entry["size"], entry["type"], entry["name"])
                self.sfdisk["partitiontable"].setdefault("partitions", []).append(dict(entry))
                child = copy.deepcopy(self.target_child(node))
                child.update(fstype=None, uuid=None, label=None, mountpoints=[None])
                self.disk().setdefault("children", []).append(child)
                self.blkid[node] = ""
            return 0, "", ""
        if rest[0] == "--part-type" or rest[0] == "--part-label":
            number, value = int(rest[2]), rest[3]
            entry = self.entry(number)
            entry["type" if rest[0] == "--part-type" else "name"] = value
            if rest[0] == "--part-label":
                self.child(entry["node"])["partlabel"] = value
            return 0, "", ""
        index = rest.index("-N")
        entry = self.entry(int(rest[index + 1]))
        values = dict(field.split("=", 1) for field in data.strip().split(", "))
        assert int(values["start"]) == entry["start"]
        entry["size"] = int(values["size"])
        self.child(entry["node"])["size"] = entry["size"] * 512
        return 0, "", ""

    def entry(self, number):
        for entry in self.sfdisk["partitiontable"]["partitions"]:
            if entry["node"] == "%s%d" % (DISK, number):
                return entry
        raise AssertionError("no partition %d" % number)

    def cmd_blkid(self, rest, data):
        if "-O" in rest:
            offset, size = int(rest[rest.index("-O") + 1]), int(rest[rest.index("-S") + 1])
            text = self.areas.get((offset, size), "")
        else:
            text = self.blkid.get(rest[-1], "")
        return (0 if text else 2), text, ""

    def cmd_partx(self, rest, data):
        assert rest == ["--update", DISK]
        return 0, "", ""

    def cmd_udevadm(self, rest, data):
        assert rest[0] == "settle"
        return 0, "", ""

    def cmd_wipefs(self, rest, data):
        path = rest[-1]
        self.blkid[path] = ""
        child = self.child(path)
        child.update(fstype=None, uuid=None)
        return 0, "", ""

    def mkfs(self, path, fs):
        if "mkfs" in self.ignore:
            return 0, "", ""
        child = self.child(path)
        recorded = self.target_child(path)
        uuid = recorded["uuid"] if recorded and recorded.get("fstype") == fs else "0000-%s" % os.path.basename(path)
        child.update(fstype=fs, uuid=uuid)
        self.blkid[path] = "DEVNAME=%s\nUUID=%s\nTYPE=%s\n" % (path, uuid, fs)
        return 0, "", ""

    def cmd_mkfs_ext4(self, rest, data):
        return self.mkfs(rest[-1], "ext4")

    def cmd_mkfs_xfs(self, rest, data):
        return self.mkfs(rest[-1], "xfs")

    def cmd_mkfs_vfat(self, rest, data):
        assert rest[:2] == ["-F", "32"]
        return self.mkfs(rest[-1], "vfat")

    def cmd_mkswap(self, rest, data):
        return self.mkfs(rest[-1], "swap")

    def cmd_mount(self, rest, data):
        assert rest[:2] == ["--fstab", self.fstab]
        target = rest[2]
        for line in self.read_fstab().splitlines():
            fields = line.split()
            if len(fields) > 1 and fields[1] == target and fields[0].startswith("UUID="):
                for child in self.disk().get("children", []):
                    if child["uuid"] == fields[0][5:]:
                        child["mountpoints"] = [target]
                        self.mount_points.add(target)
                        return 0, "", ""
        return 32, "", "mount: %s: can't find in %s.\n" % (target, self.fstab)

    # what the module did ----------------------------------------------
    def writes(self):
        out = []
        for call in self.calls:
            name = os.path.basename(call[0])
            if name in ("wipefs", "mount", "mkswap") or name.startswith("mkfs") or (
                    name == "sfdisk" and any(flag in call for flag in WRITES)):
                out.append(call)
        return out

    def commands(self):
        return [" ".join([os.path.basename(call[0])] + call[1:]) for call in self.calls]


@pytest.fixture
def host(tmp_path, monkeypatch, module_harness):
    """Factory: host(state, target=None, fstab=None) builds a Host and points the module at it."""

    def factory(state, target=None, fstab=None):
        fake = Host(tmp_path, state, target, fstab)
        monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, args, **kw: fake.run_command(args, **kw))
        monkeypatch.setattr(basic.AnsibleModule, "get_bin_path",
                            lambda self, name, required=False, opt_dirs=None: fake.get_bin_path(name, required))
        monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, warning: fake.warnings.append(warning))
        monkeypatch.setattr(disk_layout, "block_device", lambda path: (path, fake.kinds.get(path + "!")))
        monkeypatch.setattr(disk_layout, "node_exists", lambda path: fake.child(path) is not None)
        monkeypatch.setattr(disk_layout, "dir_state", fake.dirs.get)
        monkeypatch.setattr(disk_layout, "is_mount", lambda path: path in fake.mount_points)
        monkeypatch.setattr(disk_layout, "make_dir", lambda path: fake.dirs.__setitem__(path, 0))
        monkeypatch.setattr(disk_layout.time, "sleep", lambda seconds: None)
        return fake

    return factory


def run(fake, partitions=None, check_mode=False, diff=False, **args):
    args.setdefault("device", DISK)
    args.setdefault("fstab", fake.fstab)
    args["partitions"] = [dict(p) for p in (partitions or LAB)]
    return run_module(disk_layout, args, check_mode=check_mode, diff=diff)


LAB_ACTIONS = [
    "create an empty GPT on /dev/vdb",
    "create partition 1 'a' on /dev/vdb: start 1 MiB, size 4096 MiB, type linux",
    "create partition 2 'swap' on /dev/vdb: start 4097 MiB, size 1024 MiB, type swap",
    "create partition 3 'data' on /dev/vdb: start 5121 MiB, size 15358 MiB, type linux",
    "mkfs.ext4 /dev/vdb1",
    "mkswap /dev/vdb2",
    "fstab: add /srv/a (ext4 on /dev/vdb1, by UUID) to %s",
]


# ---------------------------------------------------------------------------------------------- empty disk
def test_check_mode_on_the_empty_disk_predicts_and_changes_nothing(host):
    fake = host("empty")
    failed, result = run(fake, check_mode=True, diff=True)
    assert not failed, result
    assert result["changed"] is True
    assert result["actions"] == [action.replace("%s", fake.fstab) for action in LAB_ACTIONS]
    assert fake.writes() == []
    assert fake.read_fstab() == fixture("fstab_empty")
    assert [entry["status"] for entry in result["plan"]] == ["create"] * 3
    assert result["msg"] == "would bring /dev/vdb to the layout: 7 action(s)"
    table, fstab = result["diff"]
    assert table["before"] == ""
    assert table["after"] == re.sub(r"^label-id: .*\n|, uuid=[0-9A-F-]+", "", fixture("sfdisk_dump_layout.txt"),
                                    flags=re.M)
    assert fstab["after"] == fixture("fstab_empty") + "UUID=<new> /srv/a ext4 defaults 0 2\n"
    assert [part["uuid"] for part in result["layout"]] == [None, None, None]
    assert result["disk"] == {"model": None, "serial": SERIAL, "wwn": None, "size_bytes": SIZE, "sector_size": 512,
                              "rotational": True, "table": "none"}
    assert result["free_bytes"] == 0


def test_real_run_on_the_empty_disk_ends_on_the_recorded_layout(host):
    check = host("empty", target="layout")
    dummy, predicted = run(check, check_mode=True)
    fake = host("empty", target="layout")
    failed, result = run(fake, diff=True)
    assert not failed, result
    assert result["changed"] is True
    # Check mode predicted the real run exactly.
    for key in ("changed", "actions", "plan", "free_bytes", "notes"):
        assert result[key] == predicted[key], key
    # What the VM's fstab became, byte for byte (the fake mkfs hands out the UUID recorded there).
    assert fake.read_fstab() == fixture("fstab_layout")
    assert result["diff"][1]["after"] == fixture("fstab_layout")
    assert result["layout"][0]["uuid"] == "8845d218-d9ba-4941-9670-60880dd398b2"
    assert fake.commands()[:5] == [
        "lsblk --json --bytes -o %s /dev/vdb" % disk_layout.LSBLK_COLUMNS,
        "sfdisk --json /dev/vdb",
        "blkid -p -o export /dev/vdb",
        "blkid -p -o export -O 1048576 -S 4294967296 /dev/vdb",
        "blkid -p -o export -O 4296015872 -S 1073741824 /dev/vdb",
    ]
    writes = [" ".join([os.path.basename(call[0])] + call[1:]) for call in fake.writes()]
    assert writes == [
        "sfdisk --wipe-partitions never --wipe always /dev/vdb",
        "sfdisk --wipe-partitions never --append --no-reread /dev/vdb",
        "mkfs.ext4 -q /dev/vdb1",
        "mkswap /dev/vdb2",
    ]
    assert "partx --update /dev/vdb" in fake.commands()


def test_second_run_changes_nothing(host):
    for check_mode in (True, False):
        fake = host("layout")
        failed, result = run(fake, check_mode=check_mode, diff=True)
        assert not failed, result
        assert result["changed"] is False
        assert result["actions"] == []
        assert fake.writes() == []
        assert result["msg"] == "/dev/vdb matches the layout; nothing to do"
        assert [entry["status"] for entry in result["plan"]] == ["ok"] * 3
        assert result["diff"][0]["before"] == result["diff"][0]["after"] == fixture("sfdisk_dump_layout.txt")
        assert result["diff"][1]["before"] == result["diff"][1]["after"]


def test_next_to_a_foreign_mounted_partition(host):
    dummy, predicted = run(host("foreign", target="foreign_layout"), check_mode=True)
    fake = host("foreign", target="foreign_layout")
    failed, result = run(fake, mount_state="mounted")
    assert not failed, result
    assert result["actions"] == predicted["actions"] + ["mount /dev/vdb2 at /srv/a"]
    # The VM's fstab after the same run: the stale /srv/a line commented, the new one added.
    assert fake.read_fstab() == fixture("fstab_foreign_layout")
    assert fake.dirs == {"/srv/a": 0}
    assert result["layout"][0]["mount"] == "/mnt/foreign"
    assert result["layout"][1]["mount"] == "/srv/a"
    fake.calls = []
    failed, result = run(fake, mount_state="mounted")
    assert (failed, result["changed"]) == (False, False)
    assert fake.writes() == []


def test_mount_state_mounted_in_check_mode_predicts_the_mount(host):
    fake = host("layout")
    failed, result = run(fake, check_mode=True, mount_state="mounted")
    assert result["actions"] == ["mount /dev/vdb1 at /srv/a"]
    assert result["layout"][0]["mount"] == "/srv/a"
    assert fake.writes() == []
    fake = host("layout")
    failed, result = run(fake, mount_state="mounted")
    assert not failed, result
    assert result["layout"][0]["mount"] == "/srv/a"
    assert fake.dirs == {"/srv/a": 0}


@pytest.mark.parametrize("state, mounted, words", [
    (3, False, "refusing to mount /dev/vdb1 over /srv/a: the directory is not empty (3 entries would be hidden)"),
    ("not a directory", False, "cannot mount /dev/vdb1 at /srv/a: it exists and is not a directory"),
    (0, True, "cannot mount /dev/vdb1 at /srv/a: another filesystem is mounted there"),
])
def test_mount_refusals(host, state, mounted, words):
    fake = host("layout")
    fake.dirs["/srv/a"] = state
    if mounted:
        fake.mount_points.add("/srv/a")
    failed, result = run(fake, mount_state="mounted")
    assert failed
    assert words in result["msg"]
    assert result["msg"].endswith("nothing was changed")
    assert fake.writes() == []


def test_empty_existing_directory_is_mounted_over(host):
    fake = host("layout")
    fake.dirs["/srv/a"] = 0
    failed, result = run(fake, mount_state="mounted")
    assert not failed, result
    assert fake.dirs == {"/srv/a": 0}


# ---------------------------------------------------------------------------------------------- refusals
def test_layout_that_does_not_fit_changes_nothing(host):
    fake = host("layout")
    failed, result = run(fake, LAB + [{"name": "b", "size": "2GiB", "fs": "ext4"}])
    assert failed
    assert result["msg"] == (
        "partition 'b' (2GiB, 2048 MiB) does not fit on /dev/vdb: it would span 20479 MiB to 22527 MiB and the usable "
        "space ends at 20479 MiB; the new partitions need 2048 MiB, 0 MiB is free after 20479 MiB; make them smaller "
        "or use size rest for one; nothing was changed")
    assert result["changed"] is False
    assert fake.writes() == []


def test_destructive_change_without_permission_names_the_options(host):
    fake = host("layout")
    failed, result = run(fake, LAB[:2] + [{"name": "data", "size": "rest", "type": "lvm"}])
    assert failed
    assert result["msg"] == (
        "refusing to change the type of partition 3 'data' on /dev/vdb from linux to lvm: destructive; set "
        "allow_destructive=true together with disk_serial, disk_wwn or disk_size_bytes matching /dev/vdb (serial "
        "gpulab-dl1-disk1, size 21474836480 bytes) to allow it, or change the layout to match the disk; nothing was "
        "changed")
    assert result["destructive"] == ["change the type of partition 3 'data' on /dev/vdb from linux to lvm"]
    assert result["plan"][2]["status"] == "change"
    assert fake.writes() == []


def test_destructive_change_with_permission_and_identity(host):
    layout = LAB[:2] + [{"name": "data", "size": "10GiB", "type": "lvm"}]
    args = dict(allow_destructive=True, disk_serial=SERIAL, disk_size_bytes=SIZE)
    dummy, predicted = run(host("layout"), layout, check_mode=True, **args)
    fake = host("layout")
    failed, result = run(fake, layout, **args)
    assert not failed, result
    assert result["actions"] == predicted["actions"] == [
        "shrink partition 3 'data' on /dev/vdb from 15358 MiB to 10240 MiB",
        "set the type of partition 3 'data' on /dev/vdb to lvm",
    ]
    assert fake.data[fake.calls.index(fake.writes()[0])] == "start=10487808, size=20971520\n"
    assert [call[1:] for call in fake.writes()] == [
        ["--wipe-partitions", "never", "--no-reread", "-N", "3", DISK],
        ["--part-type", DISK, "3", "E6D6D379-F507-44C2-A23C-238F2A3DF928"],
    ]
    assert result["free_bytes"] == 5118 * 1024 * 1024


def test_identity_mismatch_fails_before_anything(host):
    fake = host("layout")
    failed, result = run(fake, allow_destructive=True, disk_serial="gpulab-dl1-disk2", disk_wwn="0x5000c500a1b2c3d4")
    assert failed
    assert result["msg"] == (
        "/dev/vdb is not the disk the identity options describe: serial is 'gpulab-dl1-disk1', disk_serial says "
        "'gpulab-dl1-disk2'; WWN is None, disk_wwn says '0x5000c500a1b2c3d4'; nothing was changed. Check that device "
        "names the disk you mean (kernel names can move between disks at boot), or correct the disk_serial, disk_wwn "
        "or disk_size_bytes option")
    assert fake.writes() == []


def test_identity_is_checked_without_allow_destructive_too(host):
    fake = host("layout")
    failed, result = run(fake, disk_size_bytes=1000204886016)
    assert failed
    assert "size is 21474836480 bytes, disk_size_bytes says 1000204886016" in result["msg"]


def test_dos_table_is_refused_naming_the_options(host):
    fake = host("dos")
    failed, result = run(fake)
    assert failed
    assert result["msg"].startswith(
        "refusing to replace a dos partition table with 1 partition(s) on /dev/vdb with an empty GPT (every partition "
        "and filesystem on it is lost): destructive; set allow_destructive=true together with disk_serial, disk_wwn "
        "or disk_size_bytes")
    assert fake.writes() == []


def test_dos_table_replaced_with_permission(host):
    fake = host("dos", target="layout")
    failed, result = run(fake, allow_destructive=True, disk_size_bytes=SIZE)
    assert not failed, result
    assert result["actions"][0] == "replace a dos partition table with 1 partition(s) on /dev/vdb with an empty GPT"
    assert fake.read_fstab() == fixture("fstab_layout")


def test_whole_disk_filesystem_is_refused(host):
    fake = host("wholedisk")
    failed, result = run(fake)
    assert failed
    assert result["msg"].startswith("refusing to replace a filesystem signature (ext4) on the whole disk and no "
                                    "partition table on /dev/vdb with an empty GPT")


def test_signature_only_blkid_sees_counts_as_one(host):
    fake = host("empty")
    fake.blkid[DISK] = "DEVNAME=/dev/vdb\nPTUUID=76cd5eec\nPTTYPE=atari\n"
    failed, result = run(fake)
    assert failed
    assert "a filesystem signature (atari) on the whole disk" in result["msg"]


# ---------------------------------------------------------------------------------------------- stale signatures
def stale(fake):
    fake.areas[(1048576, 4294967296)] = fixture("blkid_p_offset_1MiB_4GiB_stale.txt")
    fake.areas[(4296015872, 1073741824)] = fixture("blkid_p_offset_4097MiB_1GiB_stale.txt")
    return fake


def test_old_signatures_in_the_free_space_are_not_formatted_over(host):
    fake = stale(host("stale", fstab="fstab_stale"))
    failed, result = run(fake, check_mode=True)
    assert failed
    assert result["destructive"] == [
        "wipe the old ext4 signature found in the free space where new partition 1 'a' of /dev/vdb (4096 MiB at "
        "1 MiB) goes, to make ext4 there",
        "wipe the old swap signature found in the free space where new partition 2 'swap' of /dev/vdb (1024 MiB at "
        "4097 MiB) goes, to make swap there",
    ]
    assert fake.writes() == []


def test_old_signatures_wiped_with_permission(host):
    fake = stale(host("stale", target="layout", fstab="fstab_stale"))
    failed, result = run(fake, allow_destructive=True, disk_serial=SERIAL)
    assert not failed, result
    assert result["actions"][4:9] == ["wipefs -a /dev/vdb1", "mkfs.ext4 /dev/vdb1", "wipefs -a /dev/vdb2",
                                      "mkswap /dev/vdb2",
                                      "fstab: comment line 2 of %s for /srv/a: UUID=889fb858-ef47-4629-b9f7-d50d3b296578 "
                                      "/srv/a ext4 defaults 0 2" % fake.fstab]
    assert fake.read_fstab() == (
        "/dev/vda\t/\text4\tdefaults,errors=remount-ro\t0\t1\n"
        "#gpulab.cluster.disk_layout# UUID=889fb858-ef47-4629-b9f7-d50d3b296578 /srv/a ext4 defaults 0 2\n"
        "UUID=8845d218-d9ba-4941-9670-60880dd398b2 /srv/a ext4 defaults 0 2\n")


def test_old_signature_under_a_partition_without_fs_is_only_noted(host):
    fake = host("empty", target="layout")
    fake.areas[(5369757696, 16104030208)] = fixture("blkid_p_offset_1MiB_4GiB_stale.txt")
    failed, result = run(fake)
    assert not failed, result
    assert result["notes"] == [
        "the free space where new partition 3 'data' of /dev/vdb (15358 MiB at 5121 MiB) goes holds an old ext4 "
        "signature; the partition is created without a filesystem and the signature is left as it is (wipefs would "
        "remove it)"]
    assert fake.warnings == result["notes"]


def test_signature_appearing_on_a_new_partition_stops_mkfs(host):
    fake = host("empty", target="layout")
    original = fake.cmd_partx

    def partx(rest, data):
        fake.blkid["/dev/vdb1"] = "TYPE=xfs\n"
        return original(rest, data)

    fake.cmd_partx = partx
    failed, result = run(fake)
    assert failed
    assert result["msg"] == "new partition /dev/vdb1 carries a xfs signature the plan did not see; not formatted"
    assert result["changed"] is True
    assert result["actions_done"][-1] == "create partition 3 'data' on /dev/vdb: start 5121 MiB, size 15358 MiB, " \
                                         "type linux"
    assert result["action_failed"] == "mkfs.ext4 /dev/vdb1"


# ---------------------------------------------------------------------------------------------- adopting
def test_adopt_an_unnamed_partition_by_number(host):
    fake = host("foreign_layout")
    layout = [{"name": "foreign", "number": 1, "size": "512MiB", "fs": "ext4", "mount": "/mnt/foreign"}] + LAB
    failed, result = run(fake, layout, check_mode=True, diff=True)
    assert result["actions"] == [
        "name partition 1 on /dev/vdb 'foreign' (was unnamed)",
        "fstab: add /mnt/foreign (ext4 on /dev/vdb1, by UUID) to %s" % fake.fstab,
    ]
    assert result["plan"][0]["status"] == "adopt"
    assert 'uuid=DED79AF3-F6D0-AA4B-8F3E-4E0E8DAB0096, name="foreign"' in result["diff"][0]["after"]
    failed, result = run(fake, layout)
    assert not failed, result
    assert fake.writes()[0][1:] == ["--part-label", DISK, "1", "foreign"]
    assert fake.read_fstab().endswith("UUID=8c2cbf49-85b5-4ba0-a607-f60b8d8f41e5 /mnt/foreign ext4 defaults 0 2\n")


def test_reference_layout_on_a_1tb_disk_in_check_mode(host):
    fake = host("empty")
    fake.disk()["size"] = 1000204886016
    failed, result = run(fake, REFERENCE, check_mode=True)
    assert not failed, result
    assert [(p["number"], p["start_bytes"] >> 20, p["size_bytes"] >> 20) for p in result["plan"]] == [
        (1, 1, 1024), (2, 1025, 51200), (3, 52225, 51200), (4, 103425, 16384), (5, 119809, 524288),
        (6, 644097, 34816)]
    assert "mkfs.vfat /dev/vdb1" in result["actions"]
    assert result["free_bytes"] == (953868 - 678912) * 1024 * 1024


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("problem, words", [
    ("does not exist", "device /dev/vdb does not exist; set device to a whole disk"),
    ("is not a block device", "device /dev/vdb is not a block device"),
])
def test_device_that_is_no_disk(host, problem, words):
    fake = host("empty")
    fake.kinds[DISK + "!"] = problem
    failed, result = run(fake)
    assert failed
    assert result["msg"].startswith(words)
    assert fake.calls == []


@pytest.mark.parametrize("kind, words", [
    ("part", "device /dev/vdb1 is a partition, not a whole disk; set device to the disk it belongs to, /dev/vdb"),
    ("rom", "device /dev/vdb1 is a rom device (lsblk TYPE), not a whole disk"),
])
def test_device_of_the_wrong_type(host, kind, words):
    fake = host("layout")
    fake.kinds["/dev/vdb1"] = kind
    failed, result = run(fake, device="/dev/vdb1")
    assert failed
    assert result["msg"].startswith(words)
    assert fake.commands() == ["lsblk --json --bytes -o %s /dev/vdb1" % disk_layout.LSBLK_COLUMNS]


def test_sfdisk_failure_is_reported(host):
    fake = host("empty")
    fake.fail["sfdisk --json"] = (1, "", "sfdisk: cannot open /dev/vdb: No medium found\n")
    failed, result = run(fake)
    assert failed
    assert result["msg"] == "sfdisk --json failed for /dev/vdb (rc 1): sfdisk: cannot open /dev/vdb: No medium found"
    assert result["rc"] == 1


@pytest.mark.parametrize("command, answer, words", [
    ("lsblk", (0, "[]", ""), "cannot read /dev/vdb: lsblk --json output is not a JSON object"),
    ("sfdisk --json", (0, "{}", ""), "cannot read /dev/vdb: sfdisk --json output has no partitiontable"),
    ("lsblk", (32, "", "lsblk: /dev/vdb: not a block device"), "lsblk --json --bytes -o"),
])
def test_unreadable_tool_output(host, command, answer, words):
    fake = host("empty")
    fake.fail[command] = answer
    failed, result = run(fake)
    assert failed
    assert words in result["msg"]


def test_unreadable_fstab(host, tmp_path):
    fake = host("empty")
    failed, result = run(fake, fstab=str(tmp_path))
    assert failed
    assert "set the fstab option to a readable file" in result["msg"]


def test_missing_fstab_is_created(host, tmp_path):
    fake = host("empty", target="layout")
    path = str(tmp_path / "new" / "fstab")
    os.makedirs(os.path.dirname(path))
    failed, result = run(fake, fstab=path)
    assert not failed, result
    with open(path) as handle:
        assert handle.read() == "UUID=8845d218-d9ba-4941-9670-60880dd398b2 /srv/a ext4 defaults 0 2\n"


def test_fstab_write_failure(host, monkeypatch):
    fake = host("empty", target="layout")

    def refuse(module, path, text):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(disk_layout, "write_text_atomic", refuse)
    failed, result = run(fake)
    assert failed
    assert result["msg"].startswith("cannot write %s: " % fake.fstab)
    assert result["changed"] is True


def test_command_failure_mid_run_reports_what_was_done(host):
    fake = host("empty", target="layout")
    fake.fail["mkswap"] = (1, "", "mkswap: error: /dev/vdb2 is mounted; will not make swapspace\n")
    failed, result = run(fake)
    assert failed
    assert result["msg"] == "mkswap /dev/vdb2 failed for /dev/vdb2 (rc 1): mkswap: error: /dev/vdb2 is mounted; " \
                            "will not make swapspace"
    assert result["actions_done"][-1] == "mkfs.ext4 /dev/vdb1"
    assert result["changed"] is True


def test_os_error_mid_run(host, monkeypatch):
    fake = host("layout")

    def refuse(path):
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(disk_layout, "make_dir", refuse)
    failed, result = run(fake, mount_state="mounted")
    assert failed
    assert result["msg"] == "mount /dev/vdb1 at /srv/a failed: [Errno 13] Permission denied"


def test_kernel_that_never_shows_the_new_partitions(host, monkeypatch):
    fake = host("empty", target="layout")
    fake.ignore.add("append")
    monkeypatch.setattr(disk_layout, "NODE_WAIT_S", 0)
    failed, result = run(fake)
    assert failed
    assert result["msg"].startswith("the kernel shows no /dev/vdb1, /dev/vdb2, /dev/vdb3 after the partition table")


def test_result_that_does_not_hold_fails_the_verification(host):
    fake = host("empty", target="layout")
    fake.ignore.add("mkfs")
    fake.udevadm = False
    failed, result = run(fake)
    assert failed
    assert result["msg"].startswith("the changes were made but /dev/vdb still differs from the layout (mkfs, mkfs")
    assert "udevadm" not in " ".join(fake.commands())


def test_verification_reports_a_plan_that_no_longer_computes(host):
    fake = host("layout")
    original = fake.cmd_mount

    def mount(rest, data):
        answer = original(rest, data)
        fake.disk()["children"][1]["partlabel"] = "a"
        fake.sfdisk["partitiontable"]["partitions"][1]["name"] = "a"
        return answer

    fake.cmd_mount = mount
    failed, result = run(fake, mount_state="mounted")
    assert failed
    assert "has 2 partitions with that GPT name" in result["msg"]


def test_mount_that_does_not_hold(host):
    fake = host("layout")
    fake.cmd_mount = lambda rest, data: (0, "", "")
    failed, result = run(fake, mount_state="mounted")
    assert failed
    assert "/dev/vdb1 is not mounted at /srv/a" in result["msg"]


# ---------------------------------------------------------------------------------------------- argument spec
@pytest.mark.parametrize("identity", [
    {"disk_serial": SERIAL},
    {"disk_wwn": "0x5000c500a1b2c3d4"},
    {"disk_size_bytes": SIZE},
])
def test_allow_destructive_with_one_identity_option_is_valid(host, identity):
    fake = host("layout")
    failed, result = run(fake, allow_destructive=True, **identity)
    if "disk_wwn" in identity:  # the VM's disk has no WWN
        assert "WWN is None" in result["msg"]
    else:
        assert not failed, result


def test_allow_destructive_without_identity_is_refused(host):
    failed, result = run(host("layout"), allow_destructive=True)
    assert failed
    assert "allow_destructive is True but any of the following are missing" in result["msg"]
    for option in ("disk_serial", "disk_wwn", "disk_size_bytes"):
        assert option in result["msg"]


def test_mount_without_fs_is_refused(host):
    layout = [dict(p) for p in LAB]
    layout[2]["mount"] = "/data"
    failed, result = run(host("layout"), layout)
    assert failed
    assert "missing parameter(s) required by 'mount': fs" in result["msg"]
    assert "partitions" in result["msg"]


def test_mount_opts_without_mount_is_refused(host):
    layout = [dict(p) for p in LAB]
    layout[1]["mount_opts"] = "sw"
    failed, result = run(host("layout"), layout)
    assert failed
    assert "missing parameter(s) required by 'mount_opts': mount" in result["msg"]


@pytest.mark.parametrize("missing", ["name", "size"])
def test_partition_without_required_suboption_is_refused(host, missing):
    layout = [dict(p) for p in LAB]
    del layout[0][missing]
    failed, result = run(host("layout"), layout)
    assert failed
    assert "missing required arguments: %s" % missing in result["msg"]


def test_missing_device_is_refused(module_harness):
    failed, result = run_module(disk_layout, {"partitions": LAB})
    assert failed
    assert "missing required arguments: device" in result["msg"]


@pytest.mark.parametrize("option, value", [("type", "ntfs"), ("fs", "zfs")])
def test_partition_choices_are_enforced(host, option, value):
    layout = [dict(p) for p in LAB]
    layout[0][option] = value
    failed, result = run(host("layout"), layout)
    assert failed
    assert option in result["msg"] and value in result["msg"]


def test_mount_state_choices_are_enforced(host):
    failed, result = run(host("layout"), mount_state="now")
    assert failed
    assert "mount_state" in result["msg"]


def test_unknown_partition_option_is_refused(host):
    layout = [dict(p) for p in LAB]
    layout[0]["label"] = "root"
    failed, result = run(host("layout"), layout)
    assert failed
    assert "label" in result["msg"]


def test_layout_rule_violations_fail_before_any_command_that_writes(host):
    fake = host("layout")
    failed, result = run(fake, [{"name": "a", "size": "512GB"}, {"name": "a", "size": "rest"}])
    assert failed
    assert result["problems"] == [
        "partition 'a': size '512GB' uses a decimal unit; write binary units (MiB, GiB, TiB, or M, G, T as sfdisk and "
        "the Ubuntu installer read them): 1GB is 7% less than 1GiB",
        "partition name 'a' is used twice in the layout; names must be unique",
    ]
    assert fake.writes() == []


def test_argument_spec_is_a_fresh_copy_each_time():
    first = disk_layout.argument_spec()
    first["device"]["required"] = False
    first["partitions"]["options"]["name"]["required"] = False
    assert disk_layout.argument_spec()["device"]["required"] is True
    assert disk_layout.argument_spec()["partitions"]["options"]["name"]["required"] is True


# ---------------------------------------------------------------------------------------------- host helpers
def test_block_device_helper(tmp_path):
    assert disk_layout.block_device(str(tmp_path / "none")) == (str(tmp_path / "none"), "does not exist")
    assert disk_layout.block_device(str(tmp_path)) == (str(tmp_path), "is not a block device")
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "gone")
    assert disk_layout.block_device(str(link))[1].startswith("cannot be read")
    if os.path.exists("/dev/loop0") and os.path.isabs(os.path.realpath("/dev/loop0")):
        real, problem = disk_layout.block_device("/dev/loop0")
        assert problem in (None, "is not a block device")


def test_dir_and_mount_helpers(tmp_path):
    assert disk_layout.dir_state(str(tmp_path / "none")) is None
    (tmp_path / "f").write_text("x")
    assert disk_layout.dir_state(str(tmp_path / "f")) == "not a directory"
    assert disk_layout.dir_state(str(tmp_path)) == 1
    disk_layout.make_dir(str(tmp_path / "a" / "b"))
    assert disk_layout.dir_state(str(tmp_path / "a" / "b")) == 0
    assert disk_layout.is_mount("/") is True
    assert disk_layout.node_exists(str(tmp_path)) is True


def test_refusal_names_the_wwn_when_the_disk_has_one(host):
    fake = host("layout")
    fake.disk()["wwn"] = "0x5000c500a1b2c3d4"
    fake.disk()["serial"] = None
    failed, result = run(fake, LAB[:2] + [{"name": "data", "size": "rest", "type": "raid"}])
    assert failed
    assert "matching /dev/vdb (WWN 0x5000c500a1b2c3d4, size 21474836480 bytes)" in result["msg"]


def test_reformat_an_existing_partition_with_permission(host):
    fake = host("layout")
    layout = [LAB[0], LAB[1], {"name": "data", "size": "rest", "fs": "xfs", "mount": "/data"}]
    failed, result = run(fake, layout, allow_destructive=True, disk_serial=SERIAL)
    assert not failed, result
    assert result["actions"] == ["wipefs -a /dev/vdb3", "mkfs.xfs /dev/vdb3",
                                 "fstab: add /data (xfs on /dev/vdb3, by UUID) to %s" % fake.fstab]
    assert fake.read_fstab().endswith("UUID=0000-vdb3 /data xfs defaults 0 0\n")


def test_new_partition_nodes_that_appear_late(host, monkeypatch):
    fake = host("empty", target="layout")
    seen = []

    def late(path):
        seen.append(path)
        return len(seen) > 3 and fake.child(path) is not None

    monkeypatch.setattr(disk_layout, "node_exists", late)
    failed, result = run(fake)
    assert not failed, result
    assert len(seen) > 3
