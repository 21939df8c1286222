# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpulab.cluster.ceph_osd_prep against real tool outputs recorded in a VM (fixtures/blockdev/README.md).

The fake host replays what lsblk, wipefs, findmnt, pvs and lvs printed there; every command that would change
the node is recorded instead of run, so each test can say exactly what a real run does and that check mode
predicts it.
"""
from __future__ import absolute_import, division, print_function

import base64
import json
import os
import re

import pytest

from ansible_collections.gpulab.cluster.plugins.module_utils import _blockdev
from ansible_collections.gpulab.cluster.plugins.modules import ceph_osd_prep

from .utils import run_module

__metaclass__ = type

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "blockdev")
GiB = 1024 ** 3
MiB = 1024 ** 2
READ_ONLY = ("lsblk", "findmnt", "pvs", "lvs")


class FakeHost(ceph_osd_prep.Host):
    """The recorded VM: reads come from a fixture folder, changes are recorded in ``changes``."""

    def __init__(self, module, folder, missing_tools=(), failing=None, files=None, busy=(), locked=()):
        super(FakeHost, self).__init__(module)
        self.folder = os.path.join(FIXTURES, folder)
        self.missing_tools = missing_tools
        self.failing = failing or {}
        self.files = files or {"/etc/hostname": "file", "/dev/disk": "folder"}
        self.extra_busy = set(busy)
        self.held_locks = set(locked)
        self.changes = []
        self.warnings = []
        module.warn = self.warnings.append
        self.probes = []
        self.mounted = {}
        self.fstab_written = None
        self.forest = _blockdev.Forest.from_lsblk(self.fixture("lsblk.json"))
        self.links = {}
        folder_name = None
        for line in self.fixture("links.txt").splitlines():
            if line.startswith("/dev/disk/") and line.endswith(":"):
                folder_name = line[:-1]
            match = re.search(r" (\S+) -> \.\./\.\./(\S+)$", line)
            if match and folder_name:
                self.links["%s/%s" % (folder_name, match.group(1))] = "/dev/" + match.group(2)

    def fixture(self, name):
        path = os.path.join(self.folder, name)
        if not os.path.exists(path):
            return None
        with open(path) as handle:
            return handle.read()

    def tool(self, name, required=True):
        if name in self.missing_tools:
            self.module.get_bin_path = lambda *args, **kwargs: None
            return super(FakeHost, self).tool(name, required)
        return "/usr/sbin/" + name

    def try_run(self, argv):
        name = os.path.basename(argv[0])
        if name in self.failing:
            return self.failing[name]
        if name in READ_ONLY:
            return 0, self.fixture(name + ".json"), ""
        if name == "wipefs" and "--no-act" in argv:
            text = self.fixture("wipefs-%s.json" % os.path.basename(argv[-1]))
            return (0, text, "") if text is not None else (1, "", "wipefs: error: %s: probing initialization "
                                                           "failed: No such file or directory" % argv[-1])
        if name == "mount":
            self.probes.append(argv)
            self.mounted[argv[-1]] = argv[-2]
            return 0, "", ""
        if name == "umount" and argv[1] in self.mounted:
            del self.mounted[argv[1]]
            return 0, "", ""
        self.changes.append(list(argv))
        return 0, "", ""

    def realpath(self, path):
        return self.links.get(path, path)

    def exists(self, path):
        return path in self.files or self.forest.find(path) is not None or path in self.links

    def kind(self, path):
        return self.files.get(path, "block")

    def listdir(self, path):
        if path in ceph_osd_prep.LINK_DIRS:
            return [link.rsplit("/", 1)[1] for link in self.links if link.startswith(path + "/")]
        if path.endswith("/lost+found"):
            return []
        device = self.mounted.get(path)
        if device is None:
            mounts = _blockdev.parse_findmnt(self.fixture("findmnt.json"))
            sources = [m["source"] for m in mounts if m["target"] == path]
            device = sources[0] if sources else None
        if device is None:
            return None
        node = self.forest.find(device)
        text = self.fixture("ls-%s.txt" % os.path.basename(node.kname))
        return None if text is None else text.split()

    def read_text(self, path):
        return self.fixture({"/proc/swaps": "proc-swaps", ceph_osd_prep.FSTAB: "fstab"}[path])

    def read_at(self, path, offset, length):
        if offset:
            return b"\0" * length
        data = base64.b64decode(self.fixture("head-%s.b64" % os.path.basename(path)))
        return data[:length]

    def write_zeros(self, path, offset, length):
        self.changes.append(["zero", path, offset, length])

    def write_fstab(self, text):
        self.fstab_written = text
        self.changes.append(["write", ceph_osd_prep.FSTAB])

    def systemd(self):
        return True

    def busy(self, path):
        """As the kernel answers O_EXCL: busy when mounted, active swap or held (from the recorded outputs)."""
        node = self.forest.find(path)
        mounts = _blockdev.parse_findmnt(self.fixture("findmnt.json"))
        swaps = _blockdev.parse_proc_swaps(self.fixture("proc-swaps"))
        return (path in self.extra_busy or any(m["majmin"] == node.majmin for m in mounts)
                or any(s in node.paths for s in swaps) or bool(node.children))

    def locked(self, path):
        return path in self.held_locks


@pytest.fixture
def vm(monkeypatch, module_harness):
    """Run the module on a recorded state: vm(folder, args, check_mode=..., **fake options) -> (failed, result,
    host)."""

    def run(folder, args, check_mode=False, diff=False, **options):
        hosts = []

        def make(module):
            hosts.append(FakeHost(module, folder, **options))
            return hosts[-1]

        monkeypatch.setattr(ceph_osd_prep, "Host", make)
        failed, result = run_module(ceph_osd_prep, args, check_mode=check_mode, diff=diff)
        return failed, result, hosts[0] if hosts else None

    return run


def refused(vm, device, wipe=True, force=True):
    failed, result, host = vm("states", dict(device=device, wipe=wipe, force=force))
    assert failed
    assert result["changed"] is False
    assert result["ready"] is False
    assert host.changes == [], "a refusal must change nothing"
    assert host.fstab_written is None
    assert result["msg"].startswith("Refusing %s. " % device)
    assert result["msg"].endswith("Nothing was changed.")
    return result["msg"]


# --- what is refused whatever the options ---------------------------------------------------------------------------


def test_the_root_disk_is_refused(vm):
    msg = refused(vm, "/dev/vda")
    assert "/dev/vda: it holds /." in msg
    assert "/dev/vda: it is mounted at / and holds files" in msg


def test_a_whole_disk_with_partitions_in_use_names_each(vm):
    msg = refused(vm, "/dev/vdb")
    assert "its partition /dev/vdb3 is in use: it is mounted at /srv/busy and holds files (results.txt)" in msg
    assert ("its partition /dev/vdb4 is in use: it is an LVM physical volume of vgbusy whose logical volume "
            "/dev/vgbusy/lvbusy is in use (mounted at /srv/lvm)") in msg
    assert "its partition /dev/vdb7 is in use: it is active swap" in msg
    assert "its partition /dev/vdb10 is in use: it is a member of the running RAID array /dev/md127" in msg
    # the partitions that are not in use are not named as such
    for idle in ("vdb1 ", "vdb2 ", "vdb6 ", "vdb8 ", "vdb9 ", "vdb11 ", "vdb12 ", "vdb13 "):
        assert "partition /dev/%sis in use" % idle not in msg


def test_a_mounted_filesystem_holding_files_is_refused_even_with_force(vm):
    msg = refused(vm, "/dev/vdb3")
    assert "/dev/vdb3: it is mounted at /srv/busy and holds files (results.txt)" in msg


def test_an_lvm_pv_whose_lv_is_mounted_is_refused_even_with_force(vm):
    msg = refused(vm, "/dev/vdb4")
    assert "LVM physical volume of vgbusy whose logical volume /dev/vgbusy/lvbusy is in use" in msg


def test_active_swap_is_refused(vm):
    assert "/dev/vdb7: it is active swap" in refused(vm, "/dev/vdb7")


def test_a_running_raid_member_is_refused(vm):
    assert "member of the running RAID array /dev/md127 (stop the array with mdadm --stop first)" in refused(
        vm, "/dev/vdb10")


def test_a_device_below_cephs_minimum_is_refused(vm):
    msg = refused(vm, "/dev/vdb5")
    assert "/dev/vdb5: its size, 1.0 GiB, is below Ceph's minimum OSD size of 5.0 GiB" in msg


def test_a_file_is_not_a_block_device(vm):
    failed, result, host = vm("states", dict(device="/etc/hostname", wipe=True))
    assert failed and host.changes == []
    assert result["msg"] == ("/etc/hostname: a file, not a block device; set device to a partition or disk. "
                             "Nothing was changed.")


def test_a_missing_device_is_named(vm):
    failed, result, _host = vm("states", dict(device="/dev/disk/by-partlabel/nosuch", wipe=True))
    assert failed
    assert result["msg"].startswith("/dev/disk/by-partlabel/nosuch: no such device on this node")


# --- what the options allow ---------------------------------------------------------------------------------------


def test_a_signature_without_wipe_is_refused_and_named(vm):
    msg = refused(vm, "/dev/vdb1", wipe=False, force=False)
    assert "/dev/vdb1 carries ext4 at 0x438 (UUID " in msg
    assert "Set wipe=true to remove these signatures" in msg
    assert "force=true" not in msg


@pytest.mark.parametrize("device, found, what", [
    ("/dev/vdb6", "/dev/vdb6 carries ceph_bluestore at 0x0", "/dev/vdb6 is a Ceph OSD (BlueStore label)"),
    ("/dev/vdb11", "/dev/vdb11 carries linux_raid_member at 0x1000 labelled 'osdrec:old' (UUID ",
     "/dev/vdb11 is a member of a RAID array: it holds the array's data"),
])
def test_an_old_osd_or_raid_member_is_data_wipe_alone_is_not_enough(vm, device, found, what):
    msg = refused(vm, device, wipe=False, force=False)
    assert found in msg and what in msg
    msg = refused(vm, device, wipe=True, force=False)
    assert what in msg and "Set force=true (with wipe=true) to destroy it" in msg


def test_an_unmounted_filesystem_with_files_needs_force(vm):
    msg = refused(vm, "/dev/vdb2", wipe=True, force=False)
    assert "/dev/vdb2's ext4 filesystem holds files (dataset)" in msg
    assert "Set force=true (with wipe=true) to destroy it" in msg


def test_without_wipe_or_force_both_permissions_are_named(vm):
    msg = refused(vm, "/dev/vdb2", wipe=False, force=False)
    assert "Set wipe=true" in msg and "Set force=true" in msg


def test_a_volume_group_holding_a_volume_needs_force(vm):
    msg = refused(vm, "/dev/vdb8", wipe=True, force=False)
    assert "volume group vgidle holds the logical volume(s) /dev/vgidle/lvidle" in msg


def test_the_filesystem_is_looked_into_read_only(vm):
    _failed, _result, host = vm("states", dict(device="/dev/vdb2", wipe=True))
    assert len(host.probes) == 1
    assert host.probes[0][:5] == ["mount", "-o", "ro,noload", "-t", "ext4"]
    assert host.probes[0][5] == "/dev/vdb2"
    assert host.mounted == {}, "the probe mount is undone"


def test_a_filesystem_that_cannot_be_mounted_counts_as_data(vm):
    failed, result, host = vm("states", dict(device="/dev/vdb2", wipe=True), failing={"mount": (32, "", "bad fs")})
    assert failed and host.changes == []
    assert "/dev/vdb2 has a ext4 signature whose contents cannot be looked into" in result["msg"]


# --- the conversions, as check mode predicts and a run does ---------------------------------------------------------

def _fstab_line(folder):
    with open(os.path.join(FIXTURES, folder, "fstab")) as handle:
        return [line for line in handle.read().splitlines() if "/data" in line][0]


def converted(vm, device, force=False):
    """Run check mode, then the real run; both must report the same; return the run's result and host."""
    args = dict(device=device, wipe=True, force=force)
    failed, check, check_host = vm("states", args, check_mode=True, diff=True)
    assert not failed, check.get("msg")
    assert check_host.changes == [] and check_host.fstab_written is None
    failed, run, host = vm("states", args, diff=True)
    assert not failed, run.get("msg")
    for key in ("changed", "actions", "removed_signatures", "unmounted", "fstab_commented", "ready", "rook_device"):
        assert check[key] == run[key], key
    assert run["changed"] is True and run["ready"] is True
    return run, host


def _zeros(host, path):
    return [c[2:] for c in host.changes if c[0] == "zero" and c[1] == path]


def test_the_installers_data_becomes_a_clean_osd_partition(vm):
    line = _fstab_line("states")
    run, host = converted(vm, "/dev/vdb1")
    assert run["unmounted"] == "/data"
    assert run["fstab_commented"] == [line]
    assert [s["type"] for s in run["removed_signatures"]] == ["ext4"]
    assert [c for c in host.changes if c[0] != "zero"] == [
        ["umount", "/data"],
        ["write", "/etc/fstab"],
        ["systemctl", "daemon-reload"],
        ["wipefs", "--all", "/dev/vdb1"],
        ["udevadm", "settle"],
    ]
    # first MiB, then the BlueStore label copy at 1 GiB (the partition is 5.06 GiB: no copy at 10 GiB)
    assert _zeros(host, "/dev/vdb1") == [[0, MiB], [GiB, 4096]]
    assert "#gpulab.cluster.ceph_osd_prep# " + line in host.fstab_written
    assert "\n" + line not in host.fstab_written
    assert host.fstab_written.startswith("/dev/vda\t/\text4")
    fstab_diff, sig_diff = run["diff"]
    assert fstab_diff["before_header"] == "/etc/fstab" and line in fstab_diff["before"]
    assert sig_diff["before"].startswith("ext4 at 0x438 (UUID ") and sig_diff["after"] == ""


def test_an_old_bluestore_label_is_wiped_with_force(vm):
    run, host = converted(vm, "/dev/vdb6", force=True)
    assert run["removed_signatures"] == [dict(type="ceph_bluestore", offset=0, uuid=None, label=None)]
    assert ["wipefs", "--all", "/dev/vdb6"] in host.changes
    assert _zeros(host, "/dev/vdb6")[0] == [0, MiB]
    assert run["unmounted"] is None and run["fstab_commented"] == []


def test_a_stopped_raid_member_is_wiped_with_force(vm):
    run, host = converted(vm, "/dev/vdb11", force=True)
    assert [s["type"] for s in run["removed_signatures"]] == ["linux_raid_member"]
    assert ["wipefs", "--all", "/dev/vdb11"] in host.changes


def test_force_destroys_an_unmounted_dataset(vm):
    run, host = converted(vm, "/dev/vdb12", force=True)
    assert ["wipefs", "--all", "/dev/vdb12"] in host.changes
    assert not any(c[0] in ("umount", "write") for c in host.changes)


def test_force_takes_an_idle_volume_group_apart(vm):
    run, host = converted(vm, "/dev/vdb13", force=True)
    assert [c for c in host.changes if c[0] != "zero"] == [
        ["vgremove", "--force", "vgold"],
        ["pvremove", "--yes", "/dev/vdb13"],
        ["wipefs", "--all", "/dev/vdb13"],
        ["udevadm", "settle"],
    ]
    assert run["actions"][:2] == ["vgremove --force vgold", "pvremove --yes /dev/vdb13"]


@pytest.mark.parametrize("adopted", [["/dev/vdb6"], ["/dev/disk/by-id/virtio-gpulab-osdrec-disk1-part6"]])
def test_an_osd_of_this_cluster_is_left_alone_whatever_the_options(vm, adopted):
    failed, result, host = vm("states", dict(device="/dev/disk/by-partlabel/oldosd", wipe=True, force=True,
                                             adopted=adopted))
    assert not failed, result.get("msg")
    assert result["adopted"] is True and result["ready"] is True and result["changed"] is False
    assert result["actions"] == [] and host.changes == []
    assert result["rook_device"] == "/dev/disk/by-id/virtio-gpulab-osdrec-disk1-part6"


def test_adopted_does_not_cover_a_device_without_a_bluestore_label(vm):
    failed, result, host = vm("states", dict(device="/dev/vdb2", wipe=True, adopted=["/dev/vdb2"]))
    assert failed and "holds files (dataset)" in result["msg"] and host.changes == []


def test_a_device_a_process_holds_locked_is_refused_even_with_force(vm):
    failed, result, host = vm("states", dict(device="/dev/vdb6", wipe=True, force=True), locked=["/dev/vdb6"])
    assert failed and host.changes == []
    assert "/dev/vdb6: a running process holds it locked (a Ceph OSD locks its device so)" in result["msg"]


def test_a_device_the_kernel_holds_without_a_visible_reason_is_refused(vm):
    failed, result, host = vm("states", dict(device="/dev/vdb9", wipe=True, force=True), busy=["/dev/vdb9"])
    assert failed and host.changes == []
    assert "/dev/vdb9: the kernel has it open exclusively, yet lsblk and findmnt show no mount" in result["msg"]


def test_a_clean_device_is_ready_without_permission(vm):
    failed, result, host = vm("states", dict(device="/dev/vdb9"))
    assert not failed
    assert result["changed"] is False and result["ready"] is True and result["actions"] == []
    assert host.changes == []


def test_stable_identifiers_for_rook(vm):
    _failed, result, _host = vm("states", dict(device="/dev/disk/by-partlabel/data", wipe=True), check_mode=True)
    assert result["kernel_name"] == "/dev/vdb1"
    assert result["kind"] == "part" and result["parent"] == "/dev/vdb"
    assert result["rook_device"] == "/dev/disk/by-id/virtio-gpulab-osdrec-disk1-part1"
    assert result["by_id"] == ["/dev/disk/by-id/virtio-gpulab-osdrec-disk1-part1"]
    assert result["partlabel"] == "data" and re.match(r"^[0-9a-f-]{36}$", result["partuuid"])
    assert result["serial"] == "gpulab-osdrec-disk1"
    assert result["size_bytes"] == 5184 * MiB and result["rotational"] is True


# --- a second run: the VM after the real conversions ----------------------------------------------------------------


@pytest.mark.parametrize("device, force", [
    ("/dev/vdb1", False), ("/dev/vdb6", True), ("/dev/vdb11", True), ("/dev/vdb12", True), ("/dev/vdb13", True),
    ("/dev/vdb9", False),
])
def test_a_second_run_changes_nothing(vm, device, force):
    failed, result, host = vm("converted", dict(device=device, wipe=True, force=force))
    assert not failed, result.get("msg")
    assert result["changed"] is False and result["ready"] is True
    assert result["signatures"] == [] and result["actions"] == []
    assert host.changes == [] and host.fstab_written is None


def test_what_was_refused_is_still_refused_after_the_conversions(vm):
    failed, result, _host = vm("converted", dict(device="/dev/vdb2", wipe=True))
    assert failed and "holds files (dataset)" in result["msg"]
    failed, result, _host = vm("converted", dict(device="/dev/vdb8", wipe=True))
    assert failed and "vgidle holds the logical volume(s)" in result["msg"]


# --- failures of the node's tools ---------------------------------------------------------------------------------


def test_lvm_signatures_without_lvm_tools_stop_with_the_tool_named(vm):
    failed, result, host = vm("states", dict(device="/dev/vdb8", wipe=True, force=True), missing_tools=("pvs",))
    assert failed and host.changes == []
    assert result["msg"] == ("/dev/vdb8: pvs is not installed on this node (util-linux or lvm2); install it first. "
                             "Nothing was changed.")


def test_a_failing_command_is_named(vm):
    failed, result, _host = vm("states", dict(device="/dev/vdb1", wipe=True), failing={"umount": (32, "", "target is busy")})
    assert failed
    assert result["msg"] == "/dev/vdb1: umount /data failed (exit 32): target is busy"


def test_unreadable_lsblk_output_names_the_tool(vm):
    failed, result, _host = vm("states", dict(device="/dev/vdb9"), failing={"lsblk": (0, "lsblk: oops", "")})
    assert failed and "lsblk --json output is not JSON" in result["msg"]


# --- arguments ------------------------------------------------------------------------------------------------------


def test_device_is_required(module_harness):
    failed, result = run_module(ceph_osd_prep, {"wipe": True})
    assert failed
    assert "missing required arguments: device" in result["msg"]


@pytest.mark.parametrize("check_mode", [False, True])
def test_force_without_wipe_is_refused_with_the_option_named(module_harness, check_mode):
    failed, result = run_module(ceph_osd_prep, {"device": "/dev/sda4", "force": True}, check_mode=check_mode)
    assert failed
    assert result["changed"] is False
    assert "force=true needs wipe=true for /dev/sda4" in result["msg"]


def test_permissions_default_to_off():
    spec = ceph_osd_prep.argument_spec()
    assert spec["wipe"]["default"] is False
    assert spec["force"]["default"] is False


# --- a whole disk that holds nothing (an empty GPT), built from the recorded disk without its partitions ------------


def edited_state(tmp_path, state, name, edit):
    """A copy of a recorded state whose JSON file ``name`` went through ``edit`` (a case the VM did not record)."""
    folder = tmp_path / ("%s-edited" % state)
    folder.mkdir()
    for each in os.listdir(os.path.join(FIXTURES, state)):
        with open(os.path.join(FIXTURES, state, each), "rb") as handle:
            (folder / each).write_bytes(handle.read())
    data = json.loads((folder / name).read_text())
    edit(data)
    (folder / name).write_text(json.dumps(data))
    return str(folder)


def _empty_gpt_disk(tmp_path):
    def drop_partitions(lsblk):
        for disk in lsblk["blockdevices"]:
            disk.pop("children", None)
    return edited_state(tmp_path, "converted", "lsblk.json", drop_partitions)


def test_an_unused_whole_disk_loses_its_partition_table(vm, tmp_path):
    folder = _empty_gpt_disk(tmp_path)
    failed, result, host = vm(folder, dict(device="/dev/vdb", wipe=True), failing={"blockdev": (1, "", "busy")})
    assert not failed, result.get("msg")
    assert [s["type"] for s in result["removed_signatures"]] == ["gpt", "gpt", "PMBR"]
    assert ["wipefs", "--all", "/dev/vdb"] in host.changes
    assert result["kind"] == "disk" and result["parent"] is None
    assert result["rook_device"] == "/dev/disk/by-id/virtio-gpulab-osdrec-disk1"
    assert host.warnings[0].startswith("blockdev --rereadpt /dev/vdb failed (busy)")


# --- parsers and choices (pure functions) ---------------------------------------------------------------------------


def test_lsblk_of_util_linux_2_34_prints_flags_as_strings():
    forest = _blockdev.Forest.from_lsblk(json.dumps({"blockdevices": [
        {"name": "/dev/sda", "maj:min": "8:0", "type": "disk", "size": "1000204886016", "rota": "1",
         "children": [{"name": "/dev/sda4", "maj:min": "8:4", "type": "part", "size": "549755813888", "rota": "1"}]},
        {"name": "/dev/nvme0n1", "maj:min": "259:0", "type": "disk", "size": "512110190592", "rota": "0"}]}))
    assert forest.find("/dev/sda4").rotational is True
    assert forest.find("/dev/sda4").size == 512 * GiB
    assert forest.find("/dev/nvme0n1").rotational is False
    assert forest.disk_of(forest.find("/dev/sda4")).name == "/dev/sda"


@pytest.mark.parametrize("text, tool", [
    ("not json", "lsblk"), ("[]", "lsblk"), ('{"devices": []}', "lsblk"), ('{"blockdevices": [{"size": 1}]}', "lsblk"),
    ('{"blockdevices": [{"name": "/dev/sda", "size": "1.5G"}]}', "lsblk"),
])
def test_unreadable_lsblk(text, tool):
    with pytest.raises(_blockdev.BlockdevError) as err:
        _blockdev.Forest.from_lsblk(text)
    assert tool in str(err.value)


def test_wipefs_offsets_and_empty_output():
    assert _blockdev.parse_wipefs("") == []
    with pytest.raises(_blockdev.BlockdevError, match="wipefs printed an offset"):
        _blockdev.parse_wipefs('{"signatures": [{"offset": "zz", "type": "ext4"}]}')


def test_lvs_attributes_decode_active_and_open():
    rows = _blockdev.parse_lvs(open(os.path.join(FIXTURES, "states", "lvs.json")).read())
    assert [(r["lv_name"], r["active"], r["open"]) for r in rows] == [
        ("lvbusy", True, True), ("lvidle", False, False), ("lvold", False, False)]
    assert _blockdev.parse_lvs("") == [] and _blockdev.parse_pvs("") == []


def test_proc_swaps_decodes_octal_escapes():
    text = "Filename\tType\tSize\tUsed\tPriority\n/swap\\040file partition 1 0 -2\n"
    assert _blockdev.parse_proc_swaps(text) == ["/swap file"]


def test_rook_device_prefers_the_model_and_serial_link():
    node = _blockdev.Node({"name": "/dev/sda4", "type": "part", "size": 1})
    links = {
        "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4-part4": "/dev/sda4",
        "/dev/disk/by-id/ata-ST1000DM010-2EP102_Z9A1B2C3-part4": "/dev/sda4",
        "/dev/disk/by-partuuid/6a1b7c0e-93f4-4d59-8f1e-2c5d7e9a0b11": "/dev/sda4",
        "/dev/disk/by-id/ata-ST1000DM010-2EP102_Z9A1B2C3": "/dev/sda",
    }
    by_id, rook = _blockdev.stable_ids(node, links)
    assert rook == "/dev/disk/by-id/ata-ST1000DM010-2EP102_Z9A1B2C3-part4"
    assert by_id == ["/dev/disk/by-id/ata-ST1000DM010-2EP102_Z9A1B2C3-part4",
                     "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4-part4"]
    del links["/dev/disk/by-id/ata-ST1000DM010-2EP102_Z9A1B2C3-part4"]
    assert _blockdev.stable_ids(node, links)[1] == "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4-part4"
    del links["/dev/disk/by-id/wwn-0x5000c500a1b2c3d4-part4"]
    assert _blockdev.stable_ids(node, links)[1] == "/dev/disk/by-partuuid/6a1b7c0e-93f4-4d59-8f1e-2c5d7e9a0b11"
    assert _blockdev.stable_ids(node, {}) == ([], "/dev/sda4")


def test_zero_ranges_follow_the_device_size():
    assert _blockdev.zero_ranges(512 * 1024) == [(0, 512 * 1024)]
    assert _blockdev.zero_ranges(512 * GiB) == [(0, MiB), (GiB, 4096), (10 * GiB, 4096), (100 * GiB, 4096)]


# --- layouts the VM does not have, as pure judgements: Ubuntu's LVM install, a VG over two disks, LUKS ----------


def _ubuntu_lvm_facts(extra_pvs=(), crypt=False):
    """Ubuntu 22.04's guided LVM install on sda (EFI, /boot, a PV with ubuntu-lv at /) and a data disk sdb."""
    sdb_children = [{"name": "/dev/sdb1", "kname": "/dev/sdb1", "maj:min": "8:17", "type": "part",
                     "size": 512 * GiB, "rota": True}]
    if crypt:
        sdb_children[0]["children"] = [{"name": "/dev/mapper/cryptdata", "kname": "/dev/dm-1", "maj:min": "253:1",
                                        "type": "crypt", "size": 512 * GiB, "rota": True}]
    lsblk = {"blockdevices": [
        {"name": "/dev/sda", "kname": "/dev/sda", "maj:min": "8:0", "type": "disk", "size": 1000 * GiB, "rota": True,
         "children": [
             {"name": "/dev/sda1", "kname": "/dev/sda1", "maj:min": "8:1", "type": "part", "size": GiB, "rota": True},
             {"name": "/dev/sda2", "kname": "/dev/sda2", "maj:min": "8:2", "type": "part", "size": 2 * GiB,
              "rota": True},
             {"name": "/dev/sda3", "kname": "/dev/sda3", "maj:min": "8:3", "type": "part", "size": 997 * GiB,
              "rota": True, "children": [
                  {"name": "/dev/mapper/ubuntu--vg-ubuntu--lv", "kname": "/dev/dm-0", "maj:min": "253:0",
                   "type": "lvm", "size": 100 * GiB, "rota": True}]}]},
        {"name": "/dev/sdb", "kname": "/dev/sdb", "maj:min": "8:16", "type": "disk", "size": 512 * GiB, "rota": True,
         "children": sdb_children}]}
    forest = _blockdev.Forest.from_lsblk(json.dumps(lsblk))
    mounts = [dict(source="/dev/mapper/ubuntu--vg-ubuntu--lv", target="/", fstype="ext4", majmin="253:0"),
              dict(source="/dev/sda2", target="/boot", fstype="ext4", majmin="8:2"),
              dict(source="/dev/sda1", target="/boot/efi", fstype="vfat", majmin="8:1")]
    pvs = [dict(pv_name="/dev/sda3", vg_name="ubuntu-vg", pv_uuid="x")] + list(extra_pvs)
    lvs = [dict(lv_name="ubuntu-lv", vg_name="ubuntu-vg", lv_path="/dev/ubuntu-vg/ubuntu-lv", active=True, open=True)]
    signatures = {"/dev/sdb1": [dict(type="LVM2_member", offset=536, uuid="y", label=None)] if extra_pvs else []}
    facts = _blockdev.Facts(forest, mounts, [], pvs, lvs, signatures, {}, [])
    return facts, forest


@pytest.mark.parametrize("device, holds", [("/dev/sda3", "/"), ("/dev/sda", "/"), ("/dev/sda2", "/boot")])
def test_the_disk_and_partitions_under_an_lvm_root_are_refused(device, holds):
    facts, forest = _ubuntu_lvm_facts()
    verdict = _blockdev.inspect(facts, forest.find(device), wipe=True, force=True)
    assert "%s: it holds %s" % (device, holds) in verdict.refusals
    assert verdict.actions == []


def test_the_data_disk_beside_an_lvm_root_is_fine():
    facts, forest = _ubuntu_lvm_facts()
    verdict = _blockdev.inspect(facts, forest.find("/dev/sdb1"), wipe=True, force=True)
    assert verdict.refusals == [] and verdict.actions == []


def test_a_volume_group_over_two_disks_is_refused_even_with_force():
    facts, forest = _ubuntu_lvm_facts(extra_pvs=[dict(pv_name="/dev/sdb1", vg_name="ubuntu-vg", pv_uuid="y")])
    verdict = _blockdev.inspect(facts, forest.find("/dev/sdb1"), wipe=True, force=True)
    assert verdict.refusals == [
        "/dev/sdb1: it is an LVM physical volume of ubuntu-vg, which also spans /dev/sda3 (take the volume group "
        "apart with vgreduce/vgremove yourself)"]


def test_an_open_luks_mapping_is_in_use():
    facts, forest = _ubuntu_lvm_facts(crypt=True)
    verdict = _blockdev.inspect(facts, forest.find("/dev/sdb1"), wipe=True, force=True)
    assert verdict.refusals == ["/dev/sdb1: /dev/dm-1 (crypt) is built on it"]


def test_a_bind_mount_of_a_subfolder_does_not_pass_for_an_empty_filesystem(vm, tmp_path):
    """findmnt's FSROOT: /data showing only a subfolder of the filesystem says nothing about the rest of it."""
    def bind_a_subfolder(mounts):
        for mount in mounts["filesystems"]:
            if mount["target"] == "/data":
                mount["fsroot"] = "/scratch"
    folder = edited_state(tmp_path, "states", "findmnt.json", bind_a_subfolder)
    failed, result, host = vm(folder, dict(device="/dev/vdb1", wipe=True, force=True))
    assert failed and host.changes == []
    assert "/dev/vdb1: it is mounted at /data and holds files (contents unknown)" in result["msg"]
