# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the swap parsers, fed with the recorded outputs in fixtures/swap."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest
from ansible_collections.gpulab.cluster.plugins.module_utils import _swap

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "modules", "fixtures", "swap")


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def write(root, path, text=""):
    full = os.path.join(str(root), path.lstrip("/"))
    if not os.path.isdir(os.path.dirname(full)):
        os.makedirs(os.path.dirname(full))
    with open(full, "w") as handle:
        handle.write(text)
    return full


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setattr(_swap, "ROOT", str(tmp_path))
    return tmp_path


# ---------------------------------------------------------------- active swap
def test_swapon_show_recorded_empty():
    assert _swap.parse_swapon_show(fixture("swapon_show_debian12_noswap.txt")) == []


def test_swapon_show_file_and_partitions():
    assert _swap.parse_swapon_show(fixture("swapon_show_ubuntu2204_swapimg.txt")) == [
        {"name": "/swap.img", "type": "file", "size": 4294963200, "used": 0, "priority": -2, "deleted": False}
    ]
    swaps = _swap.parse_swapon_show(fixture("swapon_show_partition_zram.txt"))
    assert [(s["name"], s["type"], s["priority"]) for s in swaps] == [
        ("/dev/sda4", "partition", -2),
        ("/dev/zram0", "partition", 100),
    ]


def test_swapon_show_escapes_and_deleted():
    assert _swap.parse_swapon_show(fixture("swapon_show_file_with_space.txt"))[0]["name"] == "/var/swap files/swap0"
    swap = _swap.parse_swapon_show("/swapfile\\x20(deleted) file 1024 0 -2\n\n")[0]
    assert swap["name"] == "/swapfile" and swap["deleted"] is True


def test_swapon_show_unexpected_line():
    with pytest.raises(ValueError):
        _swap.parse_swapon_show("/swap.img file 1\n")


def test_proc_swaps_recorded_header_only():
    assert _swap.parse_proc_swaps(fixture("proc_swaps_debian12_noswap.txt")) == []


def test_proc_swaps_agrees_with_swapon_show():
    for proc, show in (
        ("proc_swaps_ubuntu2204_swapimg.txt", "swapon_show_ubuntu2204_swapimg.txt"),
        ("proc_swaps_partition_zram.txt", "swapon_show_partition_zram.txt"),
    ):
        from_proc = _swap.parse_proc_swaps(fixture(proc))
        from_show = _swap.parse_swapon_show(fixture(show))
        assert [(s["name"], s["type"], s["size"], s["priority"]) for s in from_proc] == [
            (s["name"], s["type"], s["size"], s["priority"]) for s in from_show
        ]


def test_proc_swaps_octal_escapes_and_bad_line():
    text = "Filename\tType\tSize\tUsed\tPriority\n/var/swap\\040files/a\\040(deleted) file\t\t1024\t\t0\t\t-2\n"
    swap = _swap.parse_proc_swaps(text)[0]
    assert swap["name"] == "/var/swap files/a" and swap["deleted"] is True and swap["size"] == 1024 * 1024
    with pytest.raises(ValueError):
        _swap.parse_proc_swaps("Filename\n/x file\n")


# ---------------------------------------------------------------- systemctl
def test_list_units():
    units = _swap.parse_list_units(fixture("list_units_partition_zram.txt"))
    assert [unit["unit"] for unit in units][-2:] == ["dev-sda4.swap", "dev-zram0.swap"]
    assert units[-1]["description"] == "Compressed Swap on /dev/zram0"
    assert units[0]["load"] == "loaded" and units[0]["active"] == "active" and units[0]["sub"] == "active"
    text = "\u25cf bad.swap not-found inactive dead bad.swap\n* c.swap loaded failed failed /c\nx.mount loaded a b c\n"
    assert [unit["unit"] for unit in _swap.parse_list_units(text)] == ["bad.swap", "c.swap"]
    assert _swap.parse_list_units("") == []


def test_list_unit_files_recorded():
    assert _swap.parse_list_unit_files(fixture("list_unit_files_systemd252_offline.txt")) == [
        {"unit": "dev-sdb2.swap", "state": "static"},
        {"unit": "extra.swap", "state": "masked"},
        {"unit": "swapfile.swap", "state": "enabled"},
    ]
    assert _swap.parse_list_unit_files(fixture("list_unit_files_systemd252_none.txt")) == []
    assert _swap.parse_list_unit_files("UNIT FILE STATE PRESET\n\n3 unit files listed.\n") == []


@pytest.mark.parametrize(
    "unit, path",
    [
        ("swap.img.swap", "/swap.img"),
        ("dev-disk-by\\x2duuid-9b5c1f5e\\x2d2a71.swap", "/dev/disk/by-uuid/9b5c1f5e-2a71"),
        ("var-swap\\x20files-a.swap", "/var/swap files/a"),
        ("-.swap", "/"),
        ("dev-zram0.swap", "/dev/zram0"),
    ],
)
def test_unit_name_to_path(unit, path):
    assert _swap.unit_name_to_path(unit) == path


# ---------------------------------------------------------------- lsblk, cmdline
def test_lsblk_recorded_and_gpt_swap():
    devices = _swap.parse_lsblk(fixture("lsblk_debian12_devmachine.json"))
    assert [dev["name"] for dev in devices] == ["/dev/zram0", "/dev/vda"]
    assert _swap.gpt_swap_partitions(devices) == []
    devices = _swap.parse_lsblk(fixture("lsblk_reference_site_gpt.json"))
    assert _swap.gpt_swap_partitions(devices) == ["/dev/sda4"]
    assert _swap.gpt_swap_partitions(_swap.parse_lsblk(fixture("lsblk_ubuntu2204_lvm.json"))) == []


def test_lsblk_tree_and_empty():
    tree = (
        '{"blockdevices": [{"name": "/dev/sda", "type": "disk", "parttype": null, "children": '
        '[{"name": "/dev/sda2", "type": "part", "parttype": "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"}]}]}'
    )
    assert _swap.gpt_swap_partitions(_swap.parse_lsblk(tree)) == ["/dev/sda2"]
    assert _swap.parse_lsblk("") == []
    with pytest.raises(ValueError):
        _swap.parse_lsblk("{nope")


def test_cmdline():
    params = _swap.parse_cmdline("root=/dev/sda2 ro quiet systemd.gpt_auto=no systemd.zram systemd.zram=1 x=")
    assert params["systemd.zram"] == "1" and params["ro"] is None and params["x"] == ""
    assert _swap.cmdline_false(params, "systemd.gpt_auto")
    assert not _swap.cmdline_false(params, "systemd.zram")
    assert not _swap.cmdline_false(params, "ro")
    assert not _swap.cmdline_false(params, "absent")
    assert _swap.parse_cmdline(None) == {}


# ---------------------------------------------------------------- files
def test_host_path_and_read_file(root):
    assert _swap.host_path("/etc/fstab") == os.path.join(str(root), "etc/fstab")
    write(root, "/a", "x")
    assert _swap.read_file(_swap.host_path("/a")) == "x"
    assert _swap.read_file(_swap.host_path("/missing")) is None


def test_dev_null_link(root):
    os.symlink("/dev/null", str(root / "masked"))
    os.symlink("/etc/x", str(root / "other"))
    write(root, "/file")
    assert _swap.is_dev_null_link(str(root / "masked"))
    assert not _swap.is_dev_null_link(str(root / "other"))
    assert not _swap.is_dev_null_link(str(root / "file"))
    assert not _swap.is_dev_null_link(str(root / "missing"))


def test_generators_and_unit_files(root):
    assert _swap.find_generator("zram-generator") is None
    write(root, "/lib/systemd/system-generators/zram-generator")
    assert _swap.find_generator("zram-generator") == "/lib/systemd/system-generators/zram-generator"
    write(root, "/usr/local/lib/systemd/system-generators/zram-generator")
    assert _swap.find_generator("zram-generator") == "/usr/local/lib/systemd/system-generators/zram-generator"
    write(root, "/usr/lib/systemd/system/zram-config.service")
    os.makedirs(str(root / "etc/systemd/system"))
    os.symlink("/dev/null", str(root / "etc/systemd/system/zram-config.service"))
    assert _swap.find_unit_file("zram-config.service") == [
        "/etc/systemd/system/zram-config.service",
        "/usr/lib/systemd/system/zram-config.service",
    ]


def test_zram_config_precedence(root):
    assert _swap.zram_generator_config() == ([], {})
    write(root, "/usr/lib/systemd/zram-generator.conf", fixture("zram-generator.conf.fedora"))
    files, devices = _swap.zram_generator_config()
    assert files == ["/usr/lib/systemd/zram-generator.conf"]
    assert devices == {"zram0": {"swap": True, "files": files}}
    # an empty main file in /etc hides the vendor one (the vendor's documented opt-out)...
    write(root, "/etc/systemd/zram-generator.conf", "")
    assert _swap.zram_generator_config() == (["/etc/systemd/zram-generator.conf"], {})
    # ...but drop-ins still count; the /etc drop-in hides the vendor drop-in of the same name
    write(root, "/usr/lib/systemd/zram-generator.conf.d/50-a.conf", "[zram0]\n")
    write(root, "/etc/systemd/zram-generator.conf.d/50-a.conf", "; nothing\n")
    write(root, "/usr/lib/systemd/zram-generator.conf.d/60-b.conf", "key=before-section\n[zram1]\n# c\nmount-point=/x\n")
    write(root, "/usr/lib/systemd/zram-generator.conf.d/70-c.conf", "[other]\nzram-size=1\n")
    write(root, "/usr/lib/systemd/zram-generator.conf.d/README", "[zram9]\n")
    files, devices = _swap.zram_generator_config()
    assert files == [
        "/etc/systemd/zram-generator.conf",
        "/etc/systemd/zram-generator.conf.d/50-a.conf",
        "/usr/lib/systemd/zram-generator.conf.d/60-b.conf",
        "/usr/lib/systemd/zram-generator.conf.d/70-c.conf",
    ]
    assert devices == {"zram1": {"swap": False, "files": ["/usr/lib/systemd/zram-generator.conf.d/60-b.conf"]}}
    # /run beats /etc for the main file
    write(root, "/run/systemd/zram-generator.conf", "[zram3]\nmount-point=\n")
    files, devices = _swap.zram_generator_config()
    assert files[0] == "/run/systemd/zram-generator.conf"
    assert devices["zram3"]["swap"] is True


@pytest.mark.parametrize("page", [4096, 16384, 65536])
def test_swap_signature(tmp_path, page):
    path = tmp_path / "swap"
    data = bytearray(page)
    data[page - 10:page] = b"SWAPSPACE2"
    path.write_bytes(bytes(data))
    assert _swap.has_swap_signature(str(path))


def test_no_swap_signature(tmp_path):
    path = tmp_path / "plain"
    path.write_bytes(b"x" * 5000)
    assert not _swap.has_swap_signature(str(path))
    assert not _swap.has_swap_signature(str(tmp_path / "missing"))
