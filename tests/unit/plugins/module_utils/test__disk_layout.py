# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planning a GPT layout against real sfdisk/lsblk outputs recorded on the lab VM (fixtures/disk_layout)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import os
import re

import pytest
from ansible_collections.gpulab.cluster.plugins.module_utils import _disk_layout as dl
from ansible_collections.gpulab.cluster.plugins.module_utils._fstab import FstabFile

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "modules", "fixtures", "disk_layout")
MIB = dl.MIB
GIB = dl.GIB
DISK_BYTES = 21474836480  # the VM's 20 GiB /dev/vdb


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def disk(state):
    """The disk model of a recorded state (no sfdisk JSON recorded: no partition table)."""
    path = os.path.join(FIXTURES, "sfdisk_json_%s.json" % state)
    sfdisk = fixture("sfdisk_json_%s.json" % state) if os.path.exists(path) else None
    return dl.read_disk(fixture("lsblk_json_%s.json" % state), sfdisk)


def part(name, size, **extra):
    out = {"name": name, "size": size, "number": None, "type": "linux", "fs": None, "mount": None,
           "mount_opts": None}
    out.update(extra)
    return out


# The scaled-down reference layout run on the VM (fixtures *_layout and *_foreign_layout are its results).
LAB = [
    part("a", "4GiB", fs="ext4", mount="/srv/a"),
    part("swap", "1GiB", type="swap", fs="swap"),
    part("data", "rest"),
]


def strip_unknown(dump):
    """A real sfdisk --dump without what nobody can predict: the label id and partition UUIDs."""
    dump = re.sub(r"^label-id: .*\n", "", dump, flags=re.M)
    return re.sub(r", uuid=[0-9A-F-]+", "", dump)


# ---------------------------------------------------------------------------------------------- sizes
@pytest.mark.parametrize("text, expected", [
    ("512MiB", ("bytes", 512 * MIB)),
    ("16G", ("bytes", 16 * GIB)),
    ("16GiB", ("bytes", 16 * GIB)),
    (" 2 TiB ", ("bytes", 2 * 1024 * GIB)),
    ("1T", ("bytes", 1024 * GIB)),
    ("100M", ("bytes", 100 * MIB)),
    ("25%", ("percent", 25.0)),
    ("12.5%", ("percent", 12.5)),
    ("100%", ("percent", 100.0)),
    ("rest", ("rest", None)),
    ("REST", ("rest", None)),
])
def test_parse_size(text, expected):
    assert dl.parse_size(text) == expected


@pytest.mark.parametrize("value, words", [
    ("512GB", "decimal unit"),
    ("1 TB", "decimal unit"),
    ("100MB", "decimal unit"),
    ("0GiB", "is zero"),
    ("1.5GiB", "not understood"),
    ("16Gb", "decimal unit"),
    ("lots", "not understood"),
    ("0%", "above 0 and at most 100"),
    ("150%", "above 0 and at most 100"),
    (16, "has no unit"),
    (True, "is not a text"),
    (None, "is not a text"),
])
def test_parse_size_refuses(value, words):
    with pytest.raises(ValueError, match=words):
        dl.parse_size(value)


def test_size_bytes():
    assert dl.size_bytes("4GiB") == 4 * GIB
    # 10% of 20 GiB is 2048 MiB exactly; 33% rounds down to a whole MiB.
    assert dl.size_bytes("10%", DISK_BYTES) == 2048 * MIB
    assert dl.size_bytes("33%", DISK_BYTES) == (int(DISK_BYTES * 0.33) // MIB) * MIB
    with pytest.raises(ValueError, match="disk size is not known"):
        dl.size_bytes("10%")
    with pytest.raises(ValueError, match="no fixed size"):
        dl.size_bytes("rest", DISK_BYTES)


def test_mib_and_alignment():
    assert dl.mib(3 * MIB) == "3 MiB"
    assert dl.mib(MIB + MIB // 2) == "1.50 MiB"
    assert dl.align_up(1) == MIB
    assert dl.align_up(MIB) == MIB
    assert dl.align_down(MIB * 2 - 1) == MIB


# ---------------------------------------------------------------------------------------------- layout rules
def test_validate_layout_accepts_the_reference_layout():
    reference = [
        part("esp", "1GiB", number=1, type="esp", fs="vfat", mount="/boot/efi"),
        part("root", "50GiB", number=2, fs="ext4", mount="/"),
        part("home", "50GiB", number=3, fs="ext4", mount="/home"),
        part("swap", "16GiB", number=4, type="swap", fs="swap"),
        part("data", "512GiB", number=5),
        part("var", "34GiB", number=6, fs="ext4", mount="/var"),
    ]
    assert dl.validate_layout(reference) == []


@pytest.mark.parametrize("layout, words", [
    ([part("", "1GiB")], "partition #1 of the layout has no name"),
    ([part("x" * 37, "1GiB")], "at most 36 characters"),
    ([part("a", "1GiB"), part("a", "2GiB")], "'a' is used twice"),
    ([part("a", "1GiB", number=2), part("b", "1GiB", number=2)], "number 2 is given to 'a' and 'b'"),
    ([part("a", "1GiB", number=0)], "number 0 is outside 1-128"),
    ([part("a", "1GiB", number=129)], "number 129 is outside 1-128"),
    ([part("a", "1GB")], "partition 'a': size '1GB' uses a decimal unit"),
    ([part("g", "1MiB", type="bios_grub", fs="ext4")], "bios_grub partition holds GRUB's core image"),
    ([part("s", "1GiB", fs="swap")], "fs swap needs type swap"),
    ([part("s", "1GiB", type="swap", fs="swap", mount="/swap")], "swap is not mounted"),
    ([part("e", "1GiB", type="esp", fs="ext4")], "EFI system partition needs fs vfat"),
    ([part("a", "1GiB", fs="ext4", mount="srv")], "mount 'srv' is not an absolute path"),
    ([part("a", "1GiB", fs="ext4", mount="/x"), part("b", "1GiB", fs="ext4", mount="/x")],
     "mount point /x is given to 'a' and 'b'"),
    ([part("a", "rest"), part("b", "rest")], "'a', 'b' all ask for the rest of the disk"),
])
def test_validate_layout_names_the_problem(layout, words):
    problems = dl.validate_layout(layout)
    assert any(words in problem for problem in problems), problems


def test_compute_plan_reports_every_layout_problem_at_once():
    with pytest.raises(dl.LayoutError) as info:
        dl.compute_plan([part("a", "1GB"), part("b", "rest"), part("c", "rest")], disk("empty"))
    assert len(info.value.problems) == 2
    assert str(info.value) == "; ".join(info.value.problems)


# ---------------------------------------------------------------------------------------------- reading
@pytest.mark.parametrize("disk_path, number, expected", [
    ("/dev/sda", 3, "/dev/sda3"),
    ("/dev/vdb", 12, "/dev/vdb12"),
    ("/dev/nvme0n1", 1, "/dev/nvme0n1p1"),
    ("/dev/mmcblk0", 2, "/dev/mmcblk0p2"),
])
def test_partition_path(disk_path, number, expected):
    assert dl.partition_path(disk_path, number) == expected


def test_partition_number():
    assert dl.partition_number("/dev/nvme0n1p12") == 12
    with pytest.raises(ValueError, match="partition number"):
        dl.partition_number("/dev/sda")


def test_read_empty_disk():
    model = disk("empty")
    assert model["table"] == "none"
    assert model["signature"] is None
    assert model["serial"] == "gpulab-dl1-disk1"
    assert model["wwn"] is None
    assert model["size_bytes"] == DISK_BYTES
    assert model["sector_size"] == 512
    assert model["partitions"] == []
    # A new GPT's usable range equals what sfdisk wrote on this disk (first-lba 2048, last-lba 41943006).
    assert (model["first_lba"], model["last_lba"]) == (2048, 41943006)
    assert dl.free_bytes(model) == 20478 * MIB


def test_read_disk_after_the_layout():
    model = disk("layout")
    assert model["table"] == "gpt"
    assert model["label_id"] == "EC128E2A-A2EF-A147-96EB-967F1D326E24"
    names = [(p["number"], p["name"], p["fs"], p["start"] // MIB, p["size"] // MIB) for p in model["partitions"]]
    assert names == [(1, "a", "ext4", 1, 4096), (2, "swap", "swap", 4097, 1024), (3, "data", None, 5121, 15358)]
    assert model["partitions"][0]["uuid"] == "8845d218-d9ba-4941-9670-60880dd398b2"
    assert model["partitions"][0]["partuuid"] == "4b7f96e3-5878-bb42-84b9-52b6c858cb73"
    assert dl.free_bytes(model) == 0


def test_read_disk_in_use():
    model = disk("foreign")
    assert model["partitions"][0]["name"] is None
    assert model["partitions"][0]["in_use"] == ["mounted at /mnt/foreign"]
    assert model["in_use"] == []


def test_read_dos_and_whole_disk_signature():
    assert disk("dos")["table"] == "dos"
    assert disk("dos")["partitions"][0]["type_guid"] == "83"
    whole = disk("wholedisk")
    assert (whole["table"], whole["signature"]) == ("none", "ext4")


@pytest.mark.parametrize("state", ["layout", "foreign", "foreign_layout", "gptempty"])
def test_render_dump_is_sfdisk_dump(state):
    # Byte for byte what sfdisk --dump printed on the VM for the same table.
    assert dl.render_dump(disk(state)) == fixture("sfdisk_dump_%s.txt" % state)


def test_render_dump_of_no_table_is_empty():
    assert dl.render_dump(disk("empty")) == ""


def test_render_dump_dos_and_attrs():
    model = disk("dos")
    assert dl.render_dump(model).splitlines()[-1] == "/dev/vdb1 : start=        2048, size=      204800, type=83"
    model = disk("layout")
    model["partitions"][0]["attrs"] = "LegacyBIOSBootable"
    assert 'attrs="LegacyBIOSBootable"' in dl.render_dump(model)


def test_in_use_mountpoint_singular_swap_and_holders():
    text = fixture("lsblk_json_layout.json")
    model = dl.read_disk(text.replace('"mountpoints": [\n                   null\n               ]',
                                      '"mountpoint": "[SWAP]"', 1), fixture("sfdisk_json_layout.json"))
    assert model["partitions"][0]["in_use"] == ["active swap"]
    dev = dl.parse_lsblk_json(fixture("lsblk_json_layout.json"))
    dev["children"][2]["children"] = [{"name": "ceph--x-osd", "path": "/dev/mapper/ceph--x-osd", "type": "lvm"}]
    assert dl._in_use(dev["children"][2]) == ["held by /dev/mapper/ceph--x-osd (lvm)"]


@pytest.mark.parametrize("func, text, words", [
    (dl.parse_sfdisk_json, "not json", "sfdisk --json output is not JSON"),
    (dl.parse_sfdisk_json, "[1]", "is not a JSON object"),
    (dl.parse_sfdisk_json, "{}", "has no partitiontable"),
    (dl.parse_lsblk_json, '{"blockdevices": []}', "exactly one device"),
])
def test_parsers_refuse_garbage(func, text, words):
    with pytest.raises(ValueError, match=words):
        func(text)


def test_parse_blkid_export():
    assert dl.parse_blkid_export(fixture("blkid_p_offset_4097MiB_1GiB_stale.txt"))["TYPE"] == "swap"
    assert dl.parse_blkid_export("") == {}
    assert dl.parse_blkid_export("junk\nA=b") == {"A": "b"}


def test_gpt_usable_for_4k_sectors():
    # 4096-byte sectors: 4 sectors of entries + header; the first usable LBA aligned to 1 MiB is 256.
    assert dl.gpt_usable(1000, 4096) == (256, 994)


# ---------------------------------------------------------------------------------------------- identity
def test_check_identity():
    model = disk("layout")
    assert dl.check_identity(model) == []
    assert dl.check_identity(model, serial=" gpulab-dl1-disk1 ", size_bytes=DISK_BYTES) == []
    assert dl.check_identity(model, serial="other") == ["serial is 'gpulab-dl1-disk1', disk_serial says 'other'"]
    assert dl.check_identity(model, size_bytes=1) == ["size is 21474836480 bytes, disk_size_bytes says 1"]
    # This disk has no WWN: any stated WWN is a mismatch.
    assert dl.check_identity(model, wwn="0x5000c500a1b2c3d4") == [
        "WWN is None, disk_wwn says '0x5000c500a1b2c3d4'"]
    model["wwn"] = "0x5000C500A1B2C3D4"
    assert dl.check_identity(model, wwn="5000c500a1b2c3d4") == []
    assert dl.check_identity(model, wwn="0x5000c500a1b2c3d5") != []


# ---------------------------------------------------------------------------------------------- plans
def test_plan_on_the_empty_disk_predicts_what_the_vm_got():
    model = disk("empty")
    plan = dl.compute_plan(LAB, model)
    assert [step["op"] for step in plan["steps"]] == ["label", "create", "mkfs", "mkfs"]
    assert [(e["number"], e["status"], e["start_bytes"] // MIB, e["size_bytes"] // MIB) for e in plan["entries"]] == [
        (1, "create", 1, 4096), (2, "create", 4097, 1024), (3, "create", 5121, 15358)]
    assert plan["destructive"] == []
    assert plan["free_bytes"] == 0
    after = dl.apply_plan_to_disk(model, plan)
    # The prediction is the table sfdisk wrote on the VM, less the label id and UUIDs chosen at write time.
    assert dl.render_dump(after) == strip_unknown(fixture("sfdisk_dump_layout.txt"))
    script = dl.sfdisk_script(plan["steps"][1]["partitions"], 512)
    assert script.splitlines()[0] == '/dev/vdb1 : start=2048, size=8388608, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, ' \
                                     'name="a"'


def test_plan_on_an_empty_gpt_creates_no_label():
    plan = dl.compute_plan(LAB, disk("gptempty"))
    assert [step["op"] for step in plan["steps"]] == ["create", "mkfs", "mkfs"]
    assert dl.render_dump(dl.apply_plan_to_disk(disk("gptempty"), plan)).endswith(
        strip_unknown(fixture("sfdisk_dump_layout.txt")).split("\n\n")[1])


def test_plan_after_the_layout_is_empty():
    plan = dl.compute_plan(LAB, disk("layout"))
    assert plan["steps"] == []
    assert [entry["status"] for entry in plan["entries"]] == ["ok", "ok", "ok"]
    assert plan["notes"] == []


def test_plan_next_to_a_foreign_partition_predicts_what_the_vm_got():
    model = disk("foreign")
    plan = dl.compute_plan(LAB, model)
    assert [(e["number"], e["start_bytes"] // MIB, e["size_bytes"] // MIB) for e in plan["entries"]] == [
        (2, 513, 4096), (3, 4609, 1024), (4, 5633, 14846)]
    # The same table as on the VM, the foreign partition's UUID and the label id included; only the new
    # partitions' UUIDs (chosen by sfdisk) are unknown.
    real = fixture("sfdisk_dump_foreign_layout.txt")
    expected = re.sub(r"^(/dev/vdb[234] .*), uuid=[0-9A-F-]+", r"\1", real, flags=re.M)
    assert expected != real
    assert dl.render_dump(dl.apply_plan_to_disk(model, plan)) == expected
    assert dl.compute_plan(LAB, disk("foreign_layout"))["steps"] == []


def test_plan_adopts_an_unnamed_partition_by_number():
    layout = [part("foreign", "512MiB", number=1, fs="ext4")] + LAB
    plan = dl.compute_plan(layout, disk("foreign_layout"))
    assert [step["op"] for step in plan["steps"]] == ["name"]
    assert plan["entries"][0]["status"] == "adopt"
    assert plan["destructive"] == []
    after = dl.apply_plan_to_disk(disk("foreign_layout"), plan)
    assert after["partitions"][0]["name"] == "foreign"


def test_plan_refuses_a_number_that_is_another_named_partition():
    layout = [part("root", "4GiB", number=1, fs="ext4")]
    with pytest.raises(dl.LayoutError, match="number 1 on /dev/vdb is the partition named 'a', not 'root'"):
        dl.compute_plan(layout, disk("layout"))


def test_plan_refuses_a_number_when_the_name_is_elsewhere():
    layout = [part("a", "4GiB", number=5, fs="ext4")]
    with pytest.raises(dl.LayoutError, match="gives it number 5, and /dev/vdb1 already carries that name"):
        dl.compute_plan(layout, disk("layout"))


def test_plan_refuses_a_name_found_twice():
    model = disk("layout")
    model["partitions"][1]["name"] = "a"
    with pytest.raises(dl.LayoutError, match="has 2 partitions with that GPT name \\(1, 2\\)"):
        dl.compute_plan([part("a", "4GiB")], model)


def test_plan_new_partition_with_a_given_number():
    plan = dl.compute_plan([part("x", "1GiB", number=7)], disk("foreign"))
    assert plan["entries"][0]["number"] == 7
    assert plan["entries"][0]["path"] == "/dev/vdb7"


def test_plan_percent_sizes():
    plan = dl.compute_plan([part("a", "10%"), part("b", "50%")], disk("empty"))
    assert [e["size_bytes"] // MIB for e in plan["entries"]] == [2048, 10240]
    assert dl.compute_plan([part("a", "10%"), part("b", "50%")], dl.apply_plan_to_disk(disk("empty"), plan))[
        "steps"] == []


def test_plan_rest_in_the_middle():
    plan = dl.compute_plan([part("a", "1GiB"), part("mid", "rest"), part("z", "1GiB")], disk("empty"))
    assert [(e["start_bytes"] // MIB, e["size_bytes"] // MIB) for e in plan["entries"]] == [
        (1, 1024), (1025, 18430), (19455, 1024)]
    assert plan["free_bytes"] == 0


def test_plan_that_does_not_fit_names_partition_and_numbers():
    with pytest.raises(dl.LayoutError) as info:
        dl.compute_plan([part("a", "16GiB"), part("b", "8GiB")], disk("empty"))
    assert str(info.value) == (
        "partition 'b' (8GiB, 8192 MiB) does not fit on /dev/vdb: it would span 16385 MiB to 24577 MiB and the "
        "usable space ends at 20479 MiB; the new partitions need 24576 MiB, 20478 MiB is free after 1 MiB; make them "
        "smaller or use size rest for one")


def test_plan_rest_that_gets_nothing():
    with pytest.raises(dl.LayoutError, match="size rest leaves it 0 MiB: the new partitions need 20480 MiB of the "
                                             "20478 MiB free after 1 MiB"):
        dl.compute_plan([part("a", "20GiB"), part("b", "rest")], disk("empty"))


def test_plan_on_a_full_disk():
    with pytest.raises(dl.LayoutError, match="partition 'b' \\(1GiB, 1024 MiB\\) does not fit"):
        dl.compute_plan(LAB + [part("b", "1GiB")], disk("layout"))


def test_plan_runs_out_of_gpt_entries():
    model = disk("gptempty")
    for number in range(1, dl.GPT_MAX_PARTITIONS + 1):
        model["partitions"].append({
            "number": number, "path": "/dev/vdb%d" % number, "start": number * MIB, "size": MIB,
            "type_guid": dl.TYPE_GUIDS["linux"], "partuuid": None, "name": None, "fs": None, "uuid": None,
            "label": None, "mounts": [], "in_use": [], "attrs": None})
    with pytest.raises(dl.LayoutError, match="no free GPT entry left"):
        dl.compute_plan([part("x", "1GiB")], model)


def test_plan_rest_with_space_after_is_left_alone_with_a_note():
    model = disk("layout")
    model["partitions"][2]["size"] -= 100 * MIB
    plan = dl.compute_plan(LAB, model)
    assert plan["steps"] == []
    assert plan["notes"] == [
        "partition 3 'data' on /dev/vdb has size rest and 100 MiB free after it: an existing partition is never "
        "grown to take it"]


def test_plan_within_alignment_tolerance_is_ok():
    model = disk("layout")
    model["partitions"][1]["size"] += MIB // 2
    assert dl.compute_plan(LAB, model)["steps"] == []


def test_plan_shrink_and_retype_are_destructive():
    layout = [LAB[0], LAB[1], part("data", "10GiB", type="lvm")]
    plan = dl.compute_plan(layout, disk("layout"))
    assert [step["op"] for step in plan["steps"]] == ["resize", "type"]
    assert plan["destructive"] == [
        "shrink partition 3 'data' on /dev/vdb from 15358 MiB to 10240 MiB",
        "change the type of partition 3 'data' on /dev/vdb from linux to lvm",
    ]
    assert plan["entries"][2]["status"] == "change"
    assert plan["entries"][2]["changes"] == ["shrink from 15358 MiB to 10240 MiB", "type linux to lvm"]
    assert plan["free_bytes"] == 5118 * MIB
    after = dl.apply_plan_to_disk(disk("layout"), plan)
    assert (after["partitions"][2]["size"], after["partitions"][2]["type_guid"]) == (10 * GIB, dl.TYPE_GUIDS["lvm"])


def test_plan_grow_into_free_space_and_then_new_partitions_after_it():
    model = disk("layout")
    model["partitions"] = model["partitions"][:2]  # data gone: free space after swap
    layout = [LAB[0], part("swap", "2GiB", type="swap", fs="swap"), part("data", "rest")]
    plan = dl.compute_plan(layout, model)
    assert plan["destructive"] == ["grow partition 2 'swap' on /dev/vdb from 1024 MiB to 2048 MiB"]
    assert plan["entries"][2]["start_bytes"] == (4097 + 2048) * MIB


def test_plan_grow_that_overlaps_the_next_partition():
    layout = [LAB[0], part("swap", "2GiB", type="swap", fs="swap"), LAB[2]]
    with pytest.raises(dl.LayoutError, match="partition 2 'swap' on /dev/vdb: its size 2GiB \\(2048 MiB\\) would end "
                                             "it at 6145 MiB, overlapping partition 3 'data' that starts at 5121 MiB"):
        dl.compute_plan(layout, disk("layout"))


def test_plan_grow_beyond_the_end():
    layout = [LAB[0], LAB[1], part("data", "16GiB")]
    with pytest.raises(dl.LayoutError, match="would end it at 21505 MiB, beyond the disk's usable end at 20479 MiB"):
        dl.compute_plan(layout, disk("layout"))


def test_plan_reformat_and_mkfs_on_existing_are_destructive():
    layout = [part("a", "4GiB", fs="xfs", mount="/srv/a"), LAB[1], part("data", "rest", fs="ext4")]
    plan = dl.compute_plan(layout, disk("layout"))
    assert plan["destructive"] == [
        "reformat partition 1 'a' on /dev/vdb (ext4) as xfs",
        "make ext4 on partition 3 'data' on /dev/vdb, an existing partition without a filesystem signature (it may "
        "hold data blkid does not recognize)",
    ]
    assert [step["existing"] for step in plan["steps"]] == [True, True]


def test_plan_never_changes_a_partition_in_use():
    layout = [part("foreign", "256MiB", number=1)]
    with pytest.raises(dl.LayoutError) as info:
        dl.compute_plan(layout, disk("foreign"))
    assert str(info.value) == (
        "refusing to change partition 1 'foreign' on /dev/vdb (shrink from 512 MiB to 256 MiB): it is mounted at "
        "/mnt/foreign; even allow_destructive does not change a partition in use")


def test_plan_replaces_a_dos_table_only_destructively():
    plan = dl.compute_plan(LAB, disk("dos"))
    assert plan["steps"][0] == {"op": "label", "what": "replace", "found": "a dos partition table with 1 partition(s)"}
    assert plan["destructive"] == [
        "replace a dos partition table with 1 partition(s) on /dev/vdb with an empty GPT (every partition and "
        "filesystem on it is lost)"]
    assert [e["number"] for e in plan["entries"]] == [1, 2, 3]
    after = dl.apply_plan_to_disk(disk("dos"), plan)
    assert dl.render_dump(after) == strip_unknown(fixture("sfdisk_dump_layout.txt"))


def test_plan_whole_disk_signature():
    plan = dl.compute_plan(LAB, disk("wholedisk"))
    assert plan["destructive"][0].startswith(
        "replace a filesystem signature (ext4) on the whole disk and no partition table on /dev/vdb")


def test_plan_refuses_to_relabel_a_disk_in_use():
    model = disk("wholedisk")
    model["in_use"] = ["mounted at /"]
    with pytest.raises(dl.LayoutError, match="the disk is in use \\(mounted at /\\)"):
        dl.compute_plan(LAB, model)
    model = disk("dos")
    model["partitions"][0]["in_use"] = ["mounted at /boot"]
    with pytest.raises(dl.LayoutError, match="/dev/vdb1 is mounted at /boot"):
        dl.compute_plan(LAB, model)


def test_apply_plan_does_not_touch_its_input():
    model = disk("layout")
    before = copy.deepcopy(model)
    dl.apply_plan_to_disk(model, dl.compute_plan([LAB[0], LAB[1], part("data", "1GiB")], model))
    assert model == before


def test_free_bytes_counts_gaps():
    model = disk("layout")
    del model["partitions"][1]
    assert dl.free_bytes(model) == 1024 * MIB


def test_layout_of():
    layout = dl.layout_of(disk("foreign"))
    assert layout == [{
        "number": 1, "name": None, "path": "/dev/vdb1", "partuuid": "ded79af3-f6d0-aa4b-8f3e-4e0e8dab0096",
        "type_guid": "0FC63DAF-8483-4772-8E79-3D69D8477DE4", "start_bytes": MIB, "size_bytes": 512 * MIB,
        "fs": "ext4", "uuid": "8c2cbf49-85b5-4ba0-a607-f60b8d8f41e5", "mount": "/mnt/foreign"}]


# ---------------------------------------------------------------------------------------------- fstab
def mounts_of(model, layout=None):
    layout = layout or LAB
    by_name = dict((p["name"], p) for p in model["partitions"])
    return [{"mount": w["mount"], "fs": w["fs"], "opts": w.get("mount_opts"), "part": by_name[w["name"]]}
            for w in layout if w.get("mount")]


def test_fstab_add_for_a_new_filesystem():
    model = dl.apply_plan_to_disk(disk("empty"), dl.compute_plan(LAB, disk("empty")))
    new, actions = dl.plan_fstab(FstabFile.from_text(fixture("fstab_empty")), mounts_of(model))
    assert new.render() == fixture("fstab_empty") + "UUID=<new> /srv/a ext4 defaults 0 2\n"
    assert actions == ["fstab: add /srv/a (ext4 on /dev/vdb1, by UUID) to /etc/fstab"]


def test_fstab_written_on_the_vm_is_idempotent():
    model = disk("layout")
    new, actions = dl.plan_fstab(FstabFile.from_text(fixture("fstab_layout")), mounts_of(model))
    assert actions == []
    assert new.render() == fixture("fstab_layout")


def test_fstab_foreign_layout_run_commented_the_old_line():
    # The VM's fstab before that run had an entry for /srv/a with a UUID that no longer exists.
    model = dl.apply_plan_to_disk(disk("foreign"), dl.compute_plan(LAB, disk("foreign")))
    new, actions = dl.plan_fstab(FstabFile.from_text(fixture("fstab_foreign")), mounts_of(model))
    real = fixture("fstab_foreign_layout")
    assert new.render() == re.sub(r"UUID=dd91d3c5-[0-9a-f-]+ ", "UUID=<new> ", real)
    assert actions[0].startswith("fstab: comment line 3 of /etc/fstab for /srv/a: UUID=b3bcb35e")


@pytest.mark.parametrize("spec", [
    "UUID=8845d218-d9ba-4941-9670-60880dd398b2",
    "UUID=8845D218-D9BA-4941-9670-60880DD398B2",
    "/dev/disk/by-uuid/8845d218-d9ba-4941-9670-60880dd398b2",
    "PARTUUID=4b7f96e3-5878-bb42-84b9-52b6c858cb73",
    "PARTLABEL=a",
    "/dev/vdb1",
])
def test_fstab_existing_entry_in_any_form_is_kept(spec):
    text = "%s /srv/a ext4 defaults 0 2\n" % spec
    new, actions = dl.plan_fstab(FstabFile.from_text(text), mounts_of(disk("layout")))
    assert (new.render(), actions) == (text, [])


def test_fstab_existing_entry_keeps_its_options_unless_told():
    text = "/dev/vdb1 /srv/a ext4 noatime 0 2"
    new, actions = dl.plan_fstab(FstabFile.from_text(text), mounts_of(disk("layout")))
    assert actions == []
    layout = [part("a", "4GiB", fs="ext4", mount="/srv/a", mount_opts="defaults,nofail")]
    new, actions = dl.plan_fstab(FstabFile.from_text(text), mounts_of(disk("layout"), layout), "/x/fstab")
    assert new.render() == "UUID=8845d218-d9ba-4941-9670-60880dd398b2 /srv/a ext4 defaults,nofail 0 2"
    assert actions == ["fstab: update line 1 of /x/fstab for /srv/a (ext4 defaults,nofail)"]


def test_fstab_wrong_type_is_updated_and_others_left_alone():
    text = "# comment\nbroken line\nUUID=8845d218-d9ba-4941-9670-60880dd398b2 /srv/a auto defaults 0 0\n/dev/x /y ext4\n"
    new, actions = dl.plan_fstab(FstabFile.from_text(text), mounts_of(disk("layout")))
    assert new.render() == ("# comment\nbroken line\nUUID=8845d218-d9ba-4941-9670-60880dd398b2 /srv/a ext4 defaults 0 0\n"
                            "/dev/x /y ext4\n")
    assert len(actions) == 1


def test_fstab_mount_point_with_a_space_and_no_final_newline():
    model = disk("layout")
    layout = [part("a", "4GiB", fs="ext4", mount="/srv/my data")]
    new, actions = dl.plan_fstab(FstabFile.from_text("/dev/vda / ext4 defaults 0 1"), mounts_of(model, layout))
    assert new.render() == ("/dev/vda / ext4 defaults 0 1\n"
                            "UUID=8845d218-d9ba-4941-9670-60880dd398b2 /srv/my\\040data ext4 defaults 0 2\n")
    again, actions = dl.plan_fstab(new, mounts_of(model, layout))
    assert actions == []


@pytest.mark.parametrize("mount, fs, expected", [("/", "ext4", 1), ("/var", "ext4", 2), ("/boot/efi", "vfat", 2),
                                                 ("/scratch", "xfs", 0), ("/b", "btrfs", 0)])
def test_fsck_pass(mount, fs, expected):
    assert dl.fsck_pass(mount, fs) == expected


def test_fstab_append_helper():
    assert FstabFile.from_text("a b c").append("d e f").render() == "a b c\nd e f\n"
    assert FstabFile.from_text("").append("d e f").render() == "d e f\n"
    appended = FstabFile.from_text("a b c\n").append("d e f")
    assert [line.lineno for line in appended.lines] == [1, 2]
