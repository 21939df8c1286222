# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for gpulab.cluster.swap: a fake host (a root folder plus recorded tool outputs)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest
from ansible.module_utils import basic
from ansible_collections.gpulab.cluster.plugins.module_utils import _swap
from ansible_collections.gpulab.cluster.plugins.modules import swap

from .utils import run_module

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "swap")
UUID = "9b5c1f5e-2a71-4d8e-b5a2-6c0e3f7d8a91"
MARK = "#gpulab.cluster.swap# "
GPT_AUTO = "/usr/lib/systemd/system-generators/systemd-gpt-auto-generator"
ZRAM_GEN = "/usr/lib/systemd/system-generators/zram-generator"


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def unhex(value):
    return _swap.unhex(value)


class Host(object):
    """Fake host: answers commands from recorded outputs and keeps the active swap list as state."""

    def __init__(self, root):
        self.root = root
        self.active = ""
        self.active_after_swapon_a = None
        self.list_units = ""
        self.list_unit_files = ""
        self.lsblk = fixture("lsblk_ubuntu2204_lvm.json")
        self.container = None
        self.detect_virt = True
        self.swapon_show_rc = 0
        self.fail = {}
        self.calls = []
        self.warnings = []

    # files -------------------------------------------------------------
    def path(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def write(self, path, text, mode=0o644):
        full = self.path(path)
        if not os.path.isdir(os.path.dirname(full)):
            os.makedirs(os.path.dirname(full))
        with open(full, "w") as handle:
            handle.write(text)
        os.chmod(full, mode)
        return full

    def read(self, path):
        with open(self.path(path)) as handle:
            return handle.read()

    def link(self, path, target):
        full = self.path(path)
        if not os.path.isdir(os.path.dirname(full)):
            os.makedirs(os.path.dirname(full))
        os.symlink(target, full)

    def swapfile(self, path, size=8192, signature=True):
        full = self.path(path)
        data = bytearray(size)
        if signature:
            data[4086:4096] = b"SWAPSPACE2"
        if not os.path.isdir(os.path.dirname(full)):
            os.makedirs(os.path.dirname(full))
        with open(full, "wb") as handle:
            handle.write(bytes(data))
        return full

    def systemd(self):
        os.makedirs(self.path("/run/systemd/system"))

    def device(self, name, *links):
        self.write(name, "")
        for link in links:
            self.link(link, os.path.relpath(self.path(name), os.path.dirname(self.path(link))))

    # commands ----------------------------------------------------------
    def get_bin_path(self, name, required=False, opt_dirs=None):
        if name == "systemd-detect-virt" and not self.detect_virt:
            return None
        return "/usr/bin/" + name

    def run_command(self, args, **kwargs):
        args = list(args)
        self.calls.append(args)
        name = os.path.basename(args[0])
        rest = args[1:]
        key = " ".join([name] + rest)
        for prefix, answer in self.fail.items():
            if key.startswith(prefix):
                return answer
        if name == "systemd-detect-virt":
            if self.container:
                return 0, self.container + "\n", ""
            return 1, "none\n", ""
        if name == "swapon" and rest[0].startswith("--show"):
            return self.swapon_show_rc, self.active if self.swapon_show_rc == 0 else "", ""
        if name == "swapon" and rest == ["-a"]:
            if self.active_after_swapon_a is not None:
                self.active = self.active_after_swapon_a
            return 0, "", ""
        if name == "swapoff":
            lines = self.active.splitlines(True)
            self.active = "".join(line for line in lines if unhex(line.split()[0]) != rest[0])
            return 0, "", ""
        if name == "systemctl" and rest[0] == "list-units":
            return 0, self.list_units, ""
        if name == "systemctl" and rest[0] == "list-unit-files":
            return (0 if self.list_unit_files else 1), self.list_unit_files, ""
        if name == "systemctl" and rest == ["daemon-reload"]:
            return 0, "", ""
        if name == "lsblk":
            return 0, self.lsblk, ""
        raise AssertionError("unexpected command %r" % args)

    def commands(self, name):
        return [call for call in self.calls if os.path.basename(call[0]) == name]

    def writes(self):
        """Commands that change the host."""
        out = []
        for call in self.calls:
            name = os.path.basename(call[0])
            if name == "swapoff" or call[1:] == ["-a"] or call[1:] == ["daemon-reload"]:
                out.append(call)
        return out


@pytest.fixture
def make_host(tmp_path, monkeypatch, module_harness):
    """Build a Host under tmp_path; the module's ROOT and commands point at the latest one built."""
    hosts = []

    def factory(name="root"):
        root = str(tmp_path / name)
        os.makedirs(root)
        host = Host(root)
        hosts.append(host)
        use(host)
        return host

    def use(host):
        monkeypatch.setattr(_swap, "ROOT", host.root)
        monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, args, **kw: host.run_command(args, **kw))
        monkeypatch.setattr(
            basic.AnsibleModule,
            "get_bin_path",
            lambda self, name, required=False, opt_dirs=None: host.get_bin_path(name, required, opt_dirs),
        )

        monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, warning: host.warnings.append(warning))

    factory.use = use
    return factory


def snapshot(root):
    """Every file and link under root with its content or target (folders left out)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            if os.path.islink(full):
                out[rel] = "-> " + os.readlink(full)
            elif os.path.isfile(full):
                with open(full, "rb") as handle:
                    out[rel] = handle.read()
    return out


def run(host, check_mode=False, diff=False, **args):
    args.setdefault("fstab", host.path("/etc/fstab"))
    return run_module(swap, args, check_mode=check_mode, diff=diff)


def normalized(result, root):
    return json.loads(json.dumps(result).replace(root, "<root>"))


# ---------------------------------------------------------------- scenarios
def ubuntu_swapimg(host):
    """Ubuntu 22.04 server default: /swap.img in fstab, active, systemd running."""
    host.write("/etc/fstab", fixture("fstab_ubuntu2204_swapimg"))
    host.active = fixture("swapon_show_ubuntu2204_swapimg.txt")
    host.active_after_swapon_a = host.active
    host.list_units = fixture("list_units_ubuntu2204_swapimg.txt")
    host.list_unit_files = fixture("list_unit_files_ubuntu2204_swapimg.txt")
    host.swapfile("/swap.img")
    host.systemd()
    host.write(GPT_AUTO, "")
    return host


def reference_site(host):
    """The seed's node: GPT swap partition by UUID, zram, a hand-made swap unit, zram-config."""
    host.write("/etc/fstab", fixture("fstab_ubuntu2204_partition"))
    host.active = fixture("swapon_show_partition_zram.txt")
    host.active_after_swapon_a = "/dev/sda4 partition 17179865088 0 -2\n"
    host.list_units = fixture("list_units_partition_zram.txt")
    host.list_unit_files = fixture("list_unit_files_partition_zram.txt")
    host.lsblk = fixture("lsblk_reference_site_gpt.json")
    host.systemd()
    host.device("/dev/sda4", "/dev/disk/by-uuid/" + UUID)
    host.write(GPT_AUTO, "")
    host.write(ZRAM_GEN, "")
    host.write("/usr/lib/systemd/zram-generator.conf", fixture("zram-generator.conf.fedora"))
    host.write("/usr/lib/systemd/system/zram-config.service", fixture("zram-config.service.ubuntu"))
    host.write("/etc/systemd/system/swapfile.swap", "[Swap]\nWhat=/swapfile\n[Install]\nWantedBy=swap.target\n")
    host.link("/etc/systemd/system/swap.target.wants/swapfile.swap", "/etc/systemd/system/swapfile.swap")
    host.write("/usr/lib/systemd/system/vendor-extra.swap", "[Swap]\nWhat=/dev/sdb2\n")
    return host


# ---------------------------------------------------------------- fstab forms
@pytest.mark.parametrize(
    "name, lines",
    [
        ("fstab_ubuntu2204_swapimg", [14]),
        ("fstab_ubuntu2204_partition", [13]),
        ("fstab_debian12", [14]),
        ("fstab_mixed_forms", [2, 3, 4, 5, 6, 7]),
    ],
)
def test_every_fstab_form_is_commented_and_nothing_else_changes(make_host, name, lines):
    host = make_host()
    original = fixture(name)
    host.write("/etc/fstab", original)
    failed, result = run(host)
    assert not failed, result
    after = host.read("/etc/fstab")
    before_lines = original.split("\n")
    after_lines = after.split("\n")
    assert len(before_lines) == len(after_lines)
    for number, (old, new) in enumerate(zip(before_lines, after_lines), 1):
        if number in lines:
            assert new == MARK + old
        else:
            assert new == old
    assert [item["line"] for item in result["sources"]["fstab"]["found"]] == lines
    assert result["changed"] is True


def test_fstab_forms_resolve_to_their_device_paths(make_host):
    host = make_host()
    host.write("/etc/fstab", fixture("fstab_mixed_forms"))
    failed, result = run(host, check_mode=True)
    assert not failed
    devices = [item["device"] for item in result["sources"]["fstab"]["found"]]
    assert devices == [
        "/dev/disk/by-label/swap0",
        "/dev/disk/by-partuuid/3e9f1b2a-7c4d-4e5f-8a9b-0c1d2e3f4a5b",
        "/dev/disk/by-partlabel/swap one",
        "/dev/disk/by-id/ata-ST1000DM010-2EP102_Z9A1B2C3-part4",
        "/dev/mapper/cryptswap",
        "/swapfile",
    ]


def test_malformed_foreign_line_is_kept_byte_for_byte(make_host):
    host = make_host()
    weird = b"garbage\tline \xff\xfe with odd bytes, nothing about paging\r\n"
    full = host.write("/etc/fstab", "")
    with open(full, "wb") as f:
        f.write(weird + b"/swap.img none swap sw 0 0\n" + b"x y\n")
    failed, result = run(host)
    assert not failed, result
    with open(host.path("/etc/fstab"), "rb") as handle:
        data = handle.read()
    assert data == weird + (MARK + "/swap.img none swap sw 0 0\n").encode() + b"x y\n"


def test_unparsable_swap_line_fails_before_any_change(make_host):
    host = ubuntu_swapimg(make_host())
    host.write("/etc/fstab", fixture("fstab_unparsable_swap"))
    before = snapshot(host.root)
    failed, result = run(host, remove_files=True)
    assert failed
    assert "line 3" in result["msg"]
    assert "UUID=6c2e8a4b-1d3f-4e5a-b7c9-0d2e4f6a8b1c none swap sw 0 0 # second swap" in result["msg"]
    assert result["line"] == 3
    assert host.commands("swapoff") == []
    assert host.writes() == []
    assert snapshot(host.root) == before


@pytest.mark.parametrize("line", ["/swapfile swap", "LABEL=swap none swap sw 0 x"])
def test_other_unparsable_swap_lines(make_host, line):
    host = make_host()
    host.write("/etc/fstab", line + "\n")
    failed, result = run(host)
    assert failed
    assert "line 1" in result["msg"] and line in result["msg"]


# ---------------------------------------------------------------- check mode, idempotence, present
@pytest.mark.parametrize("scenario", [ubuntu_swapimg, reference_site])
@pytest.mark.parametrize("remove_files", [False, True])
def test_check_mode_predicts_the_real_run(make_host, scenario, remove_files):
    check_host = scenario(make_host("check"))
    real_host = scenario(make_host("real"))
    make_host.use(check_host)
    before = snapshot(check_host.root)
    failed, predicted = run(check_host, check_mode=True, diff=True, remove_files=remove_files)
    assert not failed, predicted
    assert snapshot(check_host.root) == before
    assert check_host.writes() == []
    make_host.use(real_host)
    failed, done = run(real_host, diff=True, remove_files=remove_files)
    assert not failed, done
    assert normalized(predicted, check_host.root) == normalized(done, real_host.root)
    assert normalized(check_host.warnings, check_host.root) == normalized(real_host.warnings, real_host.root)
    assert done["changed"] is True
    # what the prediction says is what happened
    assert done["diff"]["after"] == real_host.read("/etc/fstab")


def test_ubuntu_swapimg_absent_then_idempotent(make_host):
    host = ubuntu_swapimg(make_host())
    failed, result = run(host)
    assert not failed, result
    assert result["actions"] == [
        "comment line 14 of %s: /swap.img\tnone\tswap\tsw\t0\t0" % host.path("/etc/fstab"),
        "systemctl daemon-reload",
        "swapoff /swap.img",
    ]
    assert result["reboot_safe"] is True
    assert result["runtime_managed"] is True
    assert result["sources"]["active"]["found"][0] == {
        "name": "/swap.img",
        "type": "file",
        "size": 4294963200,
        "used": 0,
        "priority": -2,
        "deleted": False,
    }
    units = result["sources"]["units"]["found"]
    assert units == [
        {"unit": "swap.img.swap", "state": "generated", "what": "/swap.img", "origin": "fstab", "active": "active"}
    ]
    gpt = result["sources"]["generators"]["found"][0]
    assert gpt["swap_partitions"] == [] and result["sources"]["generators"]["actions"] == []
    assert os.path.exists(host.path("/swap.img"))  # remove_files is off
    assert result["sources"]["files"]["found"][0]["removable"] is True
    assert host.commands("swapoff") == [["/usr/bin/swapoff", "/swap.img"]]

    host.calls = []
    failed, again = run(host)
    assert not failed
    assert again["changed"] is False
    assert again["actions"] == []
    assert host.writes() == []
    assert again["msg"] == "swap is off and no known source turns it on at the next boot"


def test_reference_site_every_source(make_host):
    host = reference_site(make_host())
    failed, result = run(host)
    assert not failed, result
    actions = result["sources"]
    assert actions["fstab"]["actions"] == [
        "comment line 13 of %s: /dev/disk/by-uuid/%s none swap sw 0 0" % (host.path("/etc/fstab"), UUID)
    ]
    assert actions["active"]["actions"] == ["swapoff /dev/sda4", "swapoff /dev/zram0"]
    assert actions["units"]["actions"] == [
        "mask dev-zram0.swap (/etc/systemd/system/dev-zram0.swap -> /dev/null)",
        "add drop-in /etc/systemd/system/swapfile.swap.d/zz-gpulab.cluster.swap.conf "
        "(/etc/systemd/system/swapfile.swap is a file there)",
        "mask vendor-extra.swap (/etc/systemd/system/vendor-extra.swap -> /dev/null)",
    ]
    origins = dict((item["unit"], item["origin"]) for item in actions["units"]["found"])
    assert origins["dev-disk-by\\x2duuid-9b5c1f5e\\x2d2a71\\x2d4d8e\\x2db5a2\\x2d6c0e3f7d8a91.swap"] == "fstab"
    assert origins["dev-zram0.swap"] == "zram-generator"
    assert origins["swapfile.swap"] == "unit file"
    assert origins["dev-sda4.swap"] == "runtime"
    assert actions["services"]["actions"] == [
        "mask zram-config.service (/etc/systemd/system/zram-config.service -> /dev/null)"
    ]
    assert actions["generators"]["actions"] == [
        "mask systemd-gpt-auto-generator (/etc/systemd/system-generators/systemd-gpt-auto-generator -> /dev/null)",
        "mask zram-generator (/etc/systemd/system-generators/zram-generator -> /dev/null)",
    ]
    assert actions["generators"]["found"][0]["swap_partitions"] == ["/dev/sda4"]
    assert actions["generators"]["found"][1]["swap_devices"] == ["zram0"]
    # the masks are on disk, the way systemctl mask makes them
    for link in (
        "/etc/systemd/system/dev-zram0.swap",
        "/etc/systemd/system/vendor-extra.swap",
        "/etc/systemd/system/zram-config.service",
        "/etc/systemd/system-generators/systemd-gpt-auto-generator",
        "/etc/systemd/system-generators/zram-generator",
    ):
        assert os.readlink(host.path(link)) == "/dev/null"
    dropin = host.read("/etc/systemd/system/swapfile.swap.d/zz-gpulab.cluster.swap.conf")
    assert "[Unit]\nConditionKernelCommandLine=gpulab.cluster.swap.allow\n" in dropin
    assert host.read("/etc/systemd/system/swapfile.swap").startswith("[Swap]")  # the admin's file untouched
    record = json.loads(host.read(_swap.STATE_FILE))
    assert sorted(entry["path"] for entry in record["entries"]) == sorted(
        [
            "/etc/systemd/system/dev-zram0.swap",
            "/etc/systemd/system/swapfile.swap.d/zz-gpulab.cluster.swap.conf",
            "/etc/systemd/system/vendor-extra.swap",
            "/etc/systemd/system/zram-config.service",
            "/etc/systemd/system-generators/systemd-gpt-auto-generator",
            "/etc/systemd/system-generators/zram-generator",
        ]
    )
    # order: persistent first, then reload, then runtime
    assert result["actions"].index("systemctl daemon-reload") < result["actions"].index("swapoff /dev/sda4")
    assert host.active == ""

    host.calls = []
    failed, again = run(host)
    assert not failed
    assert again["changed"] is False, again["actions"]


def test_present_restores_exactly_what_absent_changed(make_host):
    host = reference_site(make_host())
    original = snapshot(host.root)
    failed, result = run(host, state="absent")
    assert not failed and result["changed"]
    failed, result = run(host, state="present", diff=True)
    assert not failed, result
    assert result["reboot_safe"] is None
    assert snapshot(host.root) == original  # fstab byte for byte, every mask and drop-in gone, no record
    assert result["diff"]["after"] == fixture("fstab_ubuntu2204_partition")
    assert result["sources"]["active"]["actions"] == ["swapon -a (turns on /dev/sda4)"]
    assert "unmask zram-generator (remove /etc/systemd/system-generators/zram-generator)" in result["actions"]
    assert not os.path.exists(host.path("/etc/systemd/system/swapfile.swap.d"))
    assert host.commands("swapon")[-1] == ["/usr/bin/swapon", "-a"]

    host.calls = []
    failed, again = run(host, state="present")
    assert not failed
    assert again["changed"] is False, again["actions"]
    assert again["msg"].startswith("nothing of this module's left to restore")


def test_present_check_mode_predicts_the_real_run(make_host):
    hosts = []
    for name in ("check", "real"):
        host = reference_site(make_host(name))
        failed, dummy = run(host)
        assert not failed
        host.calls = []
        hosts.append(host)
    make_host.use(hosts[0])
    before = snapshot(hosts[0].root)
    failed, predicted = run(hosts[0], state="present", check_mode=True)
    assert not failed
    assert snapshot(hosts[0].root) == before and hosts[0].writes() == []
    make_host.use(hosts[1])
    failed, done = run(hosts[1], state="present")
    assert not failed
    assert normalized(predicted, hosts[0].root) == normalized(done, hosts[1].root)


def test_present_leaves_admin_masks_and_other_markers_alone(make_host):
    host = make_host()
    host.systemd()
    text = "#other# /swap.img none swap sw 0 0\n#/swap2 none swap sw 0 0\n"
    host.write("/etc/fstab", text)
    host.link("/etc/systemd/system/foo.swap", "/dev/null")
    failed, result = run(host, state="present")
    assert not failed
    assert result["changed"] is False
    assert host.read("/etc/fstab") == text
    assert os.path.islink(host.path("/etc/systemd/system/foo.swap"))


def test_present_with_a_custom_marker(make_host):
    host = make_host()
    host.write("/etc/fstab", "#k8s# /swap.img none swap sw 0 0\n")
    failed, result = run(host, state="present", marker="k8s")
    assert not failed
    assert host.read("/etc/fstab") == "/swap.img none swap sw 0 0\n"
    assert host.warnings == ["%s line 1: /swap.img does not exist; swapon -a skips it" % host.path("/etc/fstab")]
    assert host.commands("swapon") == [host.commands("swapon")[0]]  # only --show: nothing to turn on


def test_present_skips_noauto_and_active_entries(make_host):
    host = make_host()
    host.swapfile("/swap.img")
    host.swapfile("/other.img")
    host.active = "/swap.img file 4096 0 -2\n"
    host.write("/etc/fstab", "/swap.img none swap sw 0 0\n/other.img none swap noauto 0 0\n")
    failed, result = run(host, state="present", remove_files=True)
    assert not failed
    assert result["changed"] is False
    assert host.warnings == ["remove_files applies to state=absent only; ignored"]


def test_present_record_entries_changed_by_someone_else(make_host):
    host = make_host()
    host.systemd()
    host.write("/etc/fstab", "")
    host.write("/etc/systemd/system/a.swap", "[Swap]\nWhat=/x\n")  # was our mask, now a real file
    host.write("/etc/systemd/system/b.swap.d/zz-gpulab.cluster.swap.conf", "changed\n")
    record = {
        "version": 1,
        "entries": [
            {"path": "/etc/systemd/system/a.swap", "kind": "mask", "source": "units", "name": "a.swap"},
            {"path": "/etc/systemd/system/b.swap.d/zz-gpulab.cluster.swap.conf", "kind": "dropin",
             "source": "units", "name": "b.swap", "content": "ours\n"},
            {"path": "/etc/systemd/system/gone.service", "kind": "mask", "source": "elsewhere", "name": "gone"},
        ],
    }
    host.write(_swap.STATE_FILE, json.dumps(record))
    failed, result = run(host, state="present")
    assert not failed
    assert result["changed"] is True
    assert result["actions"] == ["remove the record %s" % _swap.STATE_FILE]  # no unit changed: no reload
    assert len(host.warnings) == 2
    assert os.path.exists(host.path("/etc/systemd/system/a.swap"))
    assert not os.path.exists(host.path(_swap.STATE_FILE))
    assert [item["name"] for item in result["sources"]["units"]["found"]] == ["a.swap", "b.swap", "gone"]


# ---------------------------------------------------------------- container
def test_container_manages_only_persistent_config(make_host):
    host = ubuntu_swapimg(make_host())
    host.container = "podman"
    host.write("/usr/lib/systemd/system/zram-config.service", fixture("zram-config.service.ubuntu"))
    failed, result = run(host, remove_files=True)
    assert not failed, result
    assert host.commands("swapoff") == []
    assert host.commands("lsblk") == []
    assert result["container"] == "podman"
    assert result["runtime_managed"] is False
    assert "container (podman)" in result["msg"] and "host" in result["msg"]
    assert result["sources"]["active"]["actions"] == []
    assert result["sources"]["active"]["found"][0]["name"] == "/swap.img"
    assert result["sources"]["generators"]["actions"] == []
    assert result["sources"]["files"]["note"] == "remove_files is ignored in a container"
    assert os.path.exists(host.path("/swap.img"))
    assert host.read("/etc/fstab").endswith(MARK + "/swap.img\tnone\tswap\tsw\t0\t0\n")
    assert os.readlink(host.path("/etc/systemd/system/zram-config.service")) == "/dev/null"

    failed, result = run(host, state="present")
    assert not failed
    assert host.commands("swapon")[-1][1].startswith("--show")  # never swapon -a
    assert "container (podman)" in result["msg"]
    assert result["sources"]["active"]["actions"] == []


def test_container_detected_from_files_without_systemd_detect_virt(make_host):
    host = ubuntu_swapimg(make_host())
    host.detect_virt = False
    host.write("/run/.containerenv", "")
    failed, result = run(host)
    assert not failed
    assert result["container"] == "containerenv"
    assert host.commands("swapoff") == []


def test_no_container_files_without_systemd_detect_virt(make_host):
    host = ubuntu_swapimg(make_host())
    host.detect_virt = False
    failed, result = run(host)
    assert not failed
    assert result["container"] is None
    assert host.commands("swapoff") == [["/usr/bin/swapoff", "/swap.img"]]


def test_detect_virt_error_fails(make_host):
    host = make_host()
    host.fail["systemd-detect-virt"] = (2, "", "boom")
    failed, result = run(host)
    assert failed
    assert result["msg"] == "systemd-detect-virt --container failed for container detection (rc 2): boom"
    assert result["rc"] == 2


# ---------------------------------------------------------------- remove_files
def test_remove_files_only_regular_swap_files(make_host):
    host = make_host()
    host.write(
        "/etc/fstab",
        "/swap.img none swap sw 0 0\n/linked none swap sw 0 0\n/plain none swap sw 0 0\n/adir none swap sw 0 0\n"
        "/missing none swap sw 0 0\n/dev/sdb2 none swap sw 0 0\n" + MARK + "/old.img none swap sw 0 0\n",
    )
    host.active = "/swap.img file 4096 0 -2\n/dev/sdb2 partition 1048576 0 -3\n"
    host.swapfile("/swap.img", signature=False)  # active as a file: removable without the signature check
    host.swapfile("/real.img")
    host.link("/linked", "/real.img")
    host.swapfile("/plain", signature=False)
    os.makedirs(host.path("/adir"))
    host.write("/dev/sdb2", "")
    host.swapfile("/old.img")
    failed, result = run(host, remove_files=True)
    assert not failed, result
    assert result["sources"]["files"]["actions"] == ["remove /swap.img", "remove /old.img"]
    found = dict((item["path"], item) for item in result["sources"]["files"]["found"])
    assert "/dev/sdb2" not in found
    assert found["/linked"]["removable"] is False and "not a regular file" in found["/linked"]["reason"]
    assert found["/plain"]["reason"] == "not an active swap file and has no swap signature"
    assert found["/adir"]["removable"] is False
    assert found["/missing"]["reason"] == "does not exist"
    assert not os.path.exists(host.path("/swap.img")) and not os.path.exists(host.path("/old.img"))
    for kept in ("/real.img", "/linked", "/plain", "/adir", "/dev/sdb2"):
        assert os.path.lexists(host.path(kept))
    # swapoff comes before the removal
    assert result["actions"].index("swapoff /swap.img") < result["actions"].index("remove /swap.img")

    failed, again = run(host, remove_files=True)
    assert not failed and again["changed"] is False


def test_remove_file_refuses_when_it_changed_under_the_module(make_host, monkeypatch):
    host = make_host()
    host.write("/etc/fstab", "")
    host.active = "/swap.img file 4096 0 -2\n"
    host.swapfile("/swap.img")
    original = swap.Swap._swapoff

    def swapoff_and_replace(self, name):
        original(self, name)
        os.unlink(host.path("/swap.img"))
        os.symlink("/etc/passwd", host.path("/swap.img"))

    monkeypatch.setattr(swap.Swap, "_swapoff", swapoff_and_replace)
    failed, result = run(host, remove_files=True)
    assert failed
    assert result["msg"] == "/swap.img is no longer a regular file; not removed"
    assert result["actions_done"] == ["swapoff /swap.img"]
    assert os.path.islink(host.path("/swap.img"))


# ---------------------------------------------------------------- diff
def test_diff_shows_fstab_before_and_after(make_host):
    host = ubuntu_swapimg(make_host())
    failed, result = run(host, check_mode=True, diff=True)
    assert not failed
    original = fixture("fstab_ubuntu2204_swapimg")
    assert result["diff"]["before"] == original
    assert result["diff"]["after"] == original.replace("/swap.img\t", MARK + "/swap.img\t")
    assert result["diff"]["before_header"] == host.path("/etc/fstab")
    failed, result = run(host, check_mode=True)
    assert "diff" not in result


# ---------------------------------------------------------------- generators and services
def test_gpt_auto_left_alone_when_kernel_disables_it(make_host):
    host = reference_site(make_host())
    host.write("/proc/cmdline", "BOOT_IMAGE=/vmlinuz root=/dev/sda2 ro systemd.gpt_auto=0 quiet\n")
    failed, result = run(host, check_mode=True)
    assert not failed
    gpt = result["sources"]["generators"]["found"][0]
    assert gpt["reason"] == "disabled on the kernel command line (systemd.gpt_auto=0)"
    assert host.commands("lsblk") == []
    assert not any("systemd-gpt-auto-generator" in action for action in result["actions"])


def test_gpt_auto_generated_unit_is_masked_too(make_host):
    host = make_host()
    host.systemd()
    host.write("/etc/fstab", "")
    host.write(GPT_AUTO, "")
    host.lsblk = fixture("lsblk_reference_site_gpt.json")
    host.list_units = fixture("list_units_gpt_auto.txt")
    host.list_unit_files = fixture("list_unit_files_gpt_auto.txt")
    failed, result = run(host)
    assert not failed
    assert result["sources"]["units"]["found"][0]["origin"] == "systemd-gpt-auto-generator"
    assert len(result["sources"]["units"]["actions"]) == 1
    assert len(result["sources"]["generators"]["actions"]) == 1


def test_unit_from_unknown_generator_is_masked(make_host):
    host = make_host()
    host.systemd()
    host.write("/etc/fstab", MARK + "junk swap\n")
    host.list_unit_files = "media-swap.swap generated -\nold.swap masked enabled\nalias.swap alias -\n"
    failed, result = run(host)
    assert not failed
    assert result["sources"]["units"]["actions"] == [
        "mask media-swap.swap (/etc/systemd/system/media-swap.swap -> /dev/null)"
    ]
    assert result["sources"]["units"]["found"][0]["origin"] == "generator"


def test_zram_generator_mount_only_config_is_left_alone(make_host):
    host = make_host()
    host.write("/etc/fstab", "")
    host.write(ZRAM_GEN, "")
    host.write("/etc/systemd/zram-generator.conf", "[zram1]\nmount-point = /var/compressed\n")
    failed, result = run(host)
    assert not failed
    assert result["changed"] is False
    assert result["sources"]["generators"]["found"][0]["reason"] == "no zram swap device configured"


def test_zram_generator_dropins_and_mount_device_warning(make_host):
    host = make_host()
    host.write("/etc/fstab", "")
    host.write(ZRAM_GEN, "")
    host.write("/usr/lib/systemd/zram-generator.conf", "[zram1]\nmount-point = /var/compressed\n")
    host.write("/etc/systemd/zram-generator.conf.d/swap.conf", "[zram0]\nzram-size = ram / 2\n")
    host.write("/usr/lib/systemd/zram-generator.conf.d/swap.conf", "[zram2]\n")  # shadowed by /etc
    failed, result = run(host)
    assert not failed
    zram = result["sources"]["generators"]["found"][0]
    assert zram["swap_devices"] == ["zram0"]
    assert zram["config"] == [
        "/usr/lib/systemd/zram-generator.conf",
        "/etc/systemd/zram-generator.conf.d/swap.conf",
    ]
    assert host.warnings == ["masking zram-generator also disables its zram file system device(s) zram1"]


def test_zram_from_kernel_command_line(make_host):
    host = make_host()
    host.write("/etc/fstab", "")
    host.write(ZRAM_GEN, "")
    host.write("/proc/cmdline", "root=/dev/vda systemd.zram\n")
    failed, result = run(host, check_mode=True)
    assert not failed
    assert result["sources"]["generators"]["found"][0]["swap_devices"] == [
        "zram0 (kernel command line systemd.zram)"
    ]
    assert result["changed"] is True


def test_generator_override_not_owned_makes_reboot_unsafe(make_host):
    host = make_host()
    host.write("/etc/fstab", "")
    host.write(ZRAM_GEN, "")
    host.write("/usr/lib/systemd/zram-generator.conf", "[zram0]\n")
    host.write("/etc/systemd/system-generators/zram-generator", "#!/bin/sh\n", mode=0o755)
    failed, result = run(host)
    assert not failed
    assert result["reboot_safe"] is False
    assert result["changed"] is False
    assert "see the warnings" in result["msg"]
    assert "/etc/systemd/system-generators/zram-generator overrides zram-generator" in host.warnings[0]


def test_services_masked_and_reported(make_host):
    host = make_host()
    host.write("/etc/fstab", "")
    host.write("/lib/systemd/system/zramswap.service", "[Service]\nExecStart=/usr/sbin/zramswap start\n")
    host.link("/etc/systemd/system/dphys-swapfile.service", "/dev/null")  # masked by the admin, not installed
    failed, result = run(host)
    assert not failed
    assert result["sources"]["services"]["found"] == [
        {
            "unit": "zramswap.service",
            "package": "zram-tools (zramswap)",
            "paths": ["/lib/systemd/system/zramswap.service"],
            "masked": False,
        },
        {"unit": "dphys-swapfile.service", "package": "dphys-swapfile", "masked": True},
    ]
    assert result["sources"]["services"]["actions"] == [
        "mask zramswap.service (/etc/systemd/system/zramswap.service -> /dev/null)"
    ]
    # systemd is not running here: nothing to reload
    assert "systemctl daemon-reload" not in result["actions"]


def test_zswap_is_reported_not_changed(make_host):
    host = make_host()
    host.write("/etc/fstab", "")
    host.write("/sys/module/zswap/parameters/enabled", "Y\n")
    failed, result = run(host)
    assert not failed
    assert result["sources"]["zswap"]["found"] == [
        {"parameter": "/sys/module/zswap/parameters/enabled", "enabled": True}
    ]
    assert result["sources"]["zswap"]["actions"] == []
    assert result["changed"] is False


# ---------------------------------------------------------------- reading the active swap
def test_proc_swaps_fallback_when_swapon_show_fails(make_host):
    host = make_host()
    host.write("/etc/fstab", "")
    host.swapon_show_rc = 1
    host.write("/proc/swaps", fixture("proc_swaps_partition_zram.txt"))
    failed, result = run(host, check_mode=True)
    assert not failed
    assert [swap_area["name"] for swap_area in result["sources"]["active"]["found"]] == ["/dev/sda4", "/dev/zram0"]
    assert result["sources"]["active"]["found"][0]["size"] == 17179865088


def test_no_swap_support_at_all(make_host):
    host = make_host()
    host.swapon_show_rc = 1
    failed, result = run(host)
    assert not failed
    assert result["sources"]["active"]["found"] == []
    assert result["sources"]["fstab"]["note"].endswith("does not exist")
    assert result["sources"]["units"]["note"].startswith("systemd is not running")
    assert host.commands("systemctl") == []


def test_garbled_swapon_output_fails(make_host):
    host = make_host()
    host.active = "what is this\n"
    failed, result = run(host)
    assert failed
    assert result["msg"].startswith("cannot read the active swap areas")


def test_swapoff_failure_names_the_device_and_keeps_the_output(make_host):
    host = ubuntu_swapimg(make_host())
    host.fail["swapoff /swap.img"] = (255, "", "swapoff: /swap.img: swapoff failed: Cannot allocate memory")
    failed, result = run(host)
    assert failed
    assert result["msg"] == (
        "swapoff /swap.img failed for /swap.img (rc 255): swapoff: /swap.img: swapoff failed: Cannot allocate memory"
    )
    assert result["rc"] == 255
    assert result["stderr"].endswith("Cannot allocate memory")
    # the persistent part was done first, so a reboot comes back without swap
    assert result["actions_done"][-1] == "systemctl daemon-reload"
    assert MARK in host.read("/etc/fstab")


def test_lsblk_garbage_fails(make_host):
    host = make_host()
    host.write(GPT_AUTO, "")
    host.lsblk = "{not json"
    failed, result = run(host)
    assert failed
    assert result["msg"].startswith("cannot read the lsblk output")


def test_write_failure_is_reported(make_host, monkeypatch):
    host = ubuntu_swapimg(make_host())

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(swap, "write_text_atomic", broken)
    failed, result = run(host)
    assert failed
    assert result["msg"].startswith("cannot write %s" % host.path("/etc/fstab"))
    assert host.commands("swapoff") == []


def test_mask_failure_is_reported(make_host, monkeypatch):
    host = reference_site(make_host())

    def read_only(*args):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(os, "symlink", read_only)
    failed, result = run(host)
    assert failed
    assert result["msg"].startswith("mask ")
    assert "Read-only file system" in result["msg"]


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("marker", ["has space", "with#hash", ""])
def test_bad_marker_fails(make_host, marker):
    host = make_host()
    failed, result = run(host, marker=marker)
    assert failed
    assert "marker" in result["msg"]


def test_corrupt_record_fails(make_host):
    host = make_host()
    host.write(_swap.STATE_FILE, '{"entries": [{"path": "/x"}]}')
    failed, result = run(host)
    assert failed
    assert result["msg"].startswith("%s is not a record this module wrote" % _swap.STATE_FILE)


def test_unreadable_fstab_fails(make_host):
    host = make_host()
    os.makedirs(host.path("/etc/fstab"))
    failed, result = run(host)
    assert failed
    assert "set the fstab option" in result["msg"]


def test_fstab_symlink_is_followed_and_mode_kept(make_host):
    host = make_host()
    target = host.write("/etc/fstab.real", "/swap.img none swap sw 0 0\n", mode=0o640)
    host.link("/etc/fstab", "fstab.real")
    failed, result = run(host)
    assert not failed
    assert os.path.islink(host.path("/etc/fstab"))
    assert oct(os.stat(target).st_mode & 0o777) == oct(0o640)
    with open(target) as handle:
        assert handle.read() == MARK + "/swap.img none swap sw 0 0\n"
    assert not [name for name in os.listdir(host.path("/etc")) if name.startswith(".fstab")]


def test_record_merges_with_earlier_runs(make_host):
    host = make_host()
    host.systemd()
    host.write("/etc/fstab", "")
    host.write("/usr/lib/systemd/system/a.swap", "[Swap]\nWhat=/a\n")
    host.list_unit_files = "a.swap static -\n"
    failed, dummy = run(host)
    assert not failed
    host.write("/usr/lib/systemd/system/b.swap", "[Swap]\nWhat=/b\n")
    host.list_unit_files = "a.swap masked -\nb.swap static -\n"
    failed, result = run(host)
    assert not failed
    assert result["actions"] == [
        "mask b.swap (/etc/systemd/system/b.swap -> /dev/null)",
        "record 2 mask(s) in %s" % _swap.STATE_FILE,
        "systemctl daemon-reload",
    ]
    record = json.loads(host.read(_swap.STATE_FILE))
    assert [entry["name"] for entry in record["entries"]] == ["a.swap", "b.swap"]


def test_uppercase_uuid_resolves_through_the_lowercase_link(make_host):
    host = make_host()
    host.device("/dev/sda4", "/dev/disk/by-uuid/" + UUID)
    host.write("/etc/fstab", "UUID=%s none swap sw 0 0\n" % UUID.upper())
    failed, result = run(host, state="present")
    assert not failed
    assert result["sources"]["fstab"]["found"][0]["device"] == "/dev/sda4"
    assert result["actions"] == ["swapon -a (turns on /dev/sda4)"]


def test_strip_root_on_a_real_root(monkeypatch):
    monkeypatch.setattr(_swap, "ROOT", "/")
    assert swap.Swap._strip_root("/dev/sda4") == "/dev/sda4"


def test_marker_line_whose_original_is_not_an_entry(make_host):
    host = make_host()
    text = MARK + "junk swap\n"
    host.write("/etc/fstab", text)
    failed, result = run(host, remove_files=True)
    assert not failed
    assert result["changed"] is False
    assert result["sources"]["fstab"]["found"] == [{"line": 1, "text": text.rstrip("\n"), "state": "commented"}]
    failed, result = run(host, state="present")
    assert not failed
    assert host.read("/etc/fstab") == "junk swap\n"
    assert result["sources"]["fstab"]["found"] == [{"line": 1, "text": text.rstrip("\n"), "state": "commented"}]


def test_dropin_next_to_the_admins_own_dropins(make_host):
    host = make_host()
    host.systemd()
    host.write("/etc/fstab", "")
    host.write("/etc/systemd/system/swapfile.swap", "[Swap]\nWhat=/swapfile\n")
    host.write("/etc/systemd/system/swapfile.swap.d/priority.conf", "[Swap]\nPriority=5\n")
    host.list_unit_files = "swapfile.swap enabled enabled\n"
    before = snapshot(host.root)
    failed, result = run(host)
    assert not failed and result["changed"]
    failed, result = run(host, state="present")
    assert not failed and result["changed"]
    assert snapshot(host.root) == before
    assert os.path.isdir(host.path("/etc/systemd/system/swapfile.swap.d"))
