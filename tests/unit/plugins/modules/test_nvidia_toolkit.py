# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpulab.cluster.nvidia_toolkit on a fake node answering with recorded real outputs (tests/unit/plugins/fixtures)."""
from __future__ import absolute_import, division, print_function

import os

import pytest
from ansible.module_utils import basic

from ansible_collections.gpulab.cluster.plugins.modules import nvidia_toolkit

from .utils import run_module

__metaclass__ = type

tomllib = pytest.importorskip("tomllib")

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures")
V2_RUNTIMES = ("plugins", "io.containerd.grpc.v1.cri", "containerd", "runtimes")
V3_RUNTIMES = ("plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes")
RUNTIME = "/usr/bin/nvidia-container-runtime"


def fixture(*parts):
    with open(os.path.join(FIXTURES, *parts)) as handle:
        return handle.read()


def at(data, path, default=None):
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return default
        data = data[key]
    return data


class FakeNode(object):
    """Programs on PATH answer with recorded outputs; /proc and /sys live under a temporary folder."""

    def __init__(self, tmp_path, monkeypatch):
        self.root = tmp_path
        self.proc = tmp_path / "proc-driver-version"
        self.sys = tmp_path / "sys"
        self.sys.mkdir()
        monkeypatch.setattr(nvidia_toolkit, "PROC_VERSION", str(self.proc))
        monkeypatch.setattr(nvidia_toolkit, "PCI_DEVICES", str(self.sys))
        self.answers = {}  # program -> (rc, stdout, stderr)
        self.binaries = set(["nvidia-container-runtime"])
        self.calls = []

    def answer(self, program, rc, out, err=""):
        self.answers[program] = (rc, out, err)
        self.binaries.add(program)

    def bin_path(self, name):
        return "/usr/bin/" + name if name in self.binaries else None

    def run_command(self, args, **_kwargs):
        self.calls.append(args)
        return self.answers[os.path.basename(args[0])]

    def config(self, name, text):
        path = self.root / name
        path.write_text(text)
        return str(path)

    def t400_in_sysfs(self):
        """The reference site's T400 (10de:1ff2, pci.ids) and its audio function, as sysfs shows them (hand-built)."""
        for address, device, klass in (("0000:01:00.0", "0x1ff2", "0x030000"), ("0000:01:00.1", "0x10fa", "0x040300")):
            folder = self.sys / address
            folder.mkdir()
            (folder / "vendor").write_text("0x10de\n")
            (folder / "device").write_text(device + "\n")
            (folder / "class").write_text(klass + "\n")


@pytest.fixture
def node(tmp_path, monkeypatch, module_harness):
    fake = FakeNode(tmp_path, monkeypatch)
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, *a, **k: fake.bin_path(name))
    monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, args, **kw: fake.run_command(args, **kw))
    return fake


def quadro_node(node, loaded="580.173.02", installed="580.173.02"):
    """Two Quadro RTX 6000 (lspci recorded on that machine), driver files recorded elsewhere (TrueNAS, 580)."""
    node.answer("lspci", 0, fixture("nvidia", "lspci_nn_2x_quadro_rtx6000_akash81.txt"))
    node.proc.write_text(fixture("nvidia", "proc_version_580.173.02_truenas.txt").replace("580.173.02", loaded))
    node.answer("modinfo", 0, installed + "\n")
    node.answer("dpkg-query", 0, "1.17.8-1")
    # Composed, not recorded: the module's own query (index,name,uuid,pci.bus_id,driver_version,memory.total) with
    # the names, memory and driver of the recorded akash81 answer; the UUIDs are placeholders.
    node.answer("nvidia-smi", 0,
                "0, Quadro RTX 6000, GPU-00000000-0000-0000-0000-000000000001, 00000000:73:00.0, 570.211.01, 24576\n"
                "1, Quadro RTX 6000, GPU-00000000-0000-0000-0000-000000000002, 00000000:D5:00.0, 570.211.01, 24576\n")


def test_node_without_gpu_changes_nothing_and_says_so(node):
    node.answer("lspci", 0, fixture("nvidia", "lspci_nn_thinkpad_t580_no_nvidia.txt"))
    node.answer("modinfo", 1, "", "modinfo: ERROR: Module nvidia not found.")
    text = fixture("runtime_configs", "containerd-1.6-default.toml")
    path = node.config("config.toml", text)
    failed, result = run_module(nvidia_toolkit, dict(config_path=path, set_as_default=True))
    assert not failed and result["changed"] is False
    assert result["gpu_count"] == 0 and result["gpus"] == [] and result["driver_loaded"] is False
    assert "no NVIDIA GPU" in result["msg"] and "nothing was changed" in result["msg"]
    assert (node.root / "config.toml").read_text() == text
    failed, result = run_module(nvidia_toolkit, dict(config_path=path, require_gpu=True))
    assert failed and "require_gpu" in result["msg"] and result["changed"] is False


def test_query_reads_gpus_models_memory_driver_and_toolkit(node):
    quadro_node(node)
    path = node.config("config.toml", fixture("runtime_configs", "containerd-1.6-default.toml"))
    failed, result = run_module(nvidia_toolkit, dict(state="query", config_path=path))
    assert not failed and result["changed"] is False
    assert result["gpu_count"] == 2
    assert [g["pci_address"] for g in result["gpus"]] == ["0000:73:00.0", "0000:d5:00.0"]
    assert result["models"] == ["Quadro RTX 6000"] and result["gpus"][0]["memory_mib"] == 24576
    assert result["driver_version"] == "580.173.02" and result["reboot_required"] is False
    assert result["toolkit_version"] == "1.17.8"
    assert result["wired"] is False and result["default_runtime"] == "runc" and result["config_version"] == 2
    assert "not wired" in result["msg"]


def test_installed_driver_newer_than_loaded_needs_a_reboot(node):
    """The TrueNAS report: module 580.173.02 loaded, 580.178 installed, nvidia-smi fails with the mismatch."""
    quadro_node(node, installed="580.178")
    node.answer("nvidia-smi", 18, fixture("nvidia", "smi_version_mismatch_580.178_truenas.txt"))
    path = node.config("config.toml", fixture("runtime_configs", "containerd-1.6-default.toml"))
    failed, result = run_module(nvidia_toolkit, dict(state="query", config_path=path))
    assert not failed
    assert result["reboot_required"] is True
    assert result["reboot_reason"] == "loaded driver 580.173.02 differs from installed 580.178"
    assert result["models"] == ["Quadro RTX 6000/8000"]  # nvidia-smi failed: the name lspci gives (pci.ids)


def test_driver_installed_but_not_loaded_needs_a_reboot(node):
    node.t400_in_sysfs()  # no lspci on this node: sysfs
    node.answer("modinfo", 0, "550.127.05\n")
    path = node.config("config.toml", fixture("runtime_configs", "containerd-1.6-default.toml"))
    failed, result = run_module(nvidia_toolkit, dict(state="query", config_path=path))
    assert not failed and result["gpu_count"] == 1
    assert result["gpus"][0]["pci_id"] == "10de:1ff2" and result["gpus"][0]["pci_address"] == "0000:01:00.0"
    assert result["driver_loaded"] is False and result["reboot_required"] is True
    assert result["reboot_reason"] == "driver 550.127.05 is installed but not loaded"


def test_nvidia_smi_in_an_unexpected_form_warns_and_keeps_pci_names(node, monkeypatch):
    quadro_node(node)
    node.answer("nvidia-smi", 0, fixture("nvidia", "smi_query_2x_quadro_rtx6000_570_akash81.txt"))  # other fields
    warnings = []
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, text: warnings.append(text))
    path = node.config("config.toml", fixture("runtime_configs", "containerd-1.6-default.toml"))
    failed, result = run_module(nvidia_toolkit, dict(state="query", config_path=path))
    assert not failed and warnings and "unexpected form" in warnings[0]
    assert result["models"] == ["Quadro RTX 6000/8000"]


@pytest.mark.parametrize("name, runtimes, version", [
    ("containerd-1.6-default.toml", V2_RUNTIMES, 2),
    ("containerd-1.7-default.toml", V2_RUNTIMES, 2),
    ("containerd-2.1-default.toml", V3_RUNTIMES, 3),
])
def test_wiring_containerd_check_mode_predicts_then_idempotent(node, name, runtimes, version):
    quadro_node(node)
    text = fixture("runtime_configs", name)
    path = node.config("config.toml", text)
    args = dict(config_path=path, set_as_default=True)
    failed, predicted = run_module(nvidia_toolkit, args, check_mode=True, diff=True)
    assert not failed and predicted["changed"] is True and (node.root / "config.toml").read_text() == text
    failed, result = run_module(nvidia_toolkit, args, diff=True)
    assert not failed and result["changed"] is True
    assert result["diff"]["after"] == predicted["diff"]["after"] == (node.root / "config.toml").read_text()
    data = tomllib.loads((node.root / "config.toml").read_text())
    handler = at(data, runtimes + ("nvidia",))
    assert handler == {"runtime_type": "io.containerd.runc.v2", "options": {"BinaryName": RUNTIME, "SystemdCgroup": True}}
    assert at(data, runtimes[:-1] + ("default_runtime_name",)) == "nvidia"
    assert at(data, runtimes + ("runc", "runtime_type")) == "io.containerd.runc.v2"  # runc kept
    assert result["wired"] is True and result["default_runtime"] == "nvidia" and result["config_version"] == version
    assert "registered in containerd and set as default" in result["msg"]
    failed, again = run_module(nvidia_toolkit, args, check_mode=True)
    assert not failed and again["changed"] is False and again["wired"] is True
    assert "already registered" in run_module(nvidia_toolkit, args)[1]["msg"]


def test_not_default_any_more_restores_runc_and_repoints_the_toolkit_handler(node):
    quadro_node(node)
    path = node.config("config.toml", fixture("runtime_configs", "containerd-nvidia-toolkit.toml"))
    failed, result = run_module(nvidia_toolkit, dict(config_path=path, set_as_default=False))
    assert not failed and result["changed"] is True
    data = tomllib.loads((node.root / "config.toml").read_text())
    assert at(data, V2_RUNTIMES[:-1] + ("default_runtime_name",)) == "runc"
    assert at(data, V2_RUNTIMES + ("nvidia", "options", "BinaryName")) == RUNTIME  # was the GPU operator's path
    assert at(data, V2_RUNTIMES + ("nvidia-cdi",)) is not None  # other handlers stay
    assert result["wired"] is True and result["default_runtime"] == "runc"


def test_absent_removes_the_handler_and_gives_the_default_back_to_runc(node):
    quadro_node(node)
    path = node.config("config.toml", fixture("runtime_configs", "containerd-1.6-default.toml"))
    assert not run_module(nvidia_toolkit, dict(config_path=path, set_as_default=True))[0]
    failed, predicted = run_module(nvidia_toolkit, dict(config_path=path, state="absent"), check_mode=True)
    failed, result = run_module(nvidia_toolkit, dict(config_path=path, state="absent"))
    assert not failed and result["changed"] is True and predicted["changed"] is True
    assert tomllib.loads((node.root / "config.toml").read_text()) == tomllib.loads(
        fixture("runtime_configs", "containerd-1.6-default.toml"))
    assert result["wired"] is False and result["default_runtime"] == "runc" and "removed" in result["msg"]
    assert run_module(nvidia_toolkit, dict(config_path=path, state="absent"))[1]["changed"] is False


def test_crio_drop_in_created_then_removed(node):
    quadro_node(node)
    path = str(node.root / "99-nvidia.conf")
    failed, result = run_module(nvidia_toolkit, dict(runtime="crio", config_path=path, set_as_default=True))
    assert not failed and result["changed"] is True and result["wired"] is True
    data = tomllib.loads((node.root / "99-nvidia.conf").read_text())
    assert data["crio"]["runtime"] == {"default_runtime": "nvidia",
                                       "runtimes": {"nvidia": {"runtime_path": RUNTIME, "runtime_type": "oci"}}}
    assert run_module(nvidia_toolkit, dict(runtime="crio", config_path=path, set_as_default=True))[1]["changed"] is False
    failed, predicted = run_module(nvidia_toolkit, dict(runtime="crio", config_path=path, state="absent"), check_mode=True)
    assert predicted["changed"] is True and os.path.exists(path)
    failed, result = run_module(nvidia_toolkit, dict(runtime="crio", config_path=path, state="absent"))
    assert not failed and result["changed"] is True and not os.path.exists(path)
    assert run_module(nvidia_toolkit, dict(runtime="crio", config_path=path, state="absent"))[1]["changed"] is False


@pytest.mark.parametrize("missing", ["toolkit", "config"])
def test_wiring_before_the_toolkit_or_the_runtime_is_installed(node, missing):
    quadro_node(node)
    if missing == "toolkit":
        node.binaries.discard("nvidia-container-runtime")
        path = node.config("config.toml", fixture("runtime_configs", "containerd-1.6-default.toml"))
    else:
        path = str(node.root / "absent.toml")
    failed, predicted = run_module(nvidia_toolkit, dict(config_path=path), check_mode=True)
    assert not failed and predicted["changed"] is True and "check mode" in predicted["msg"]
    failed, result = run_module(nvidia_toolkit, dict(config_path=path))
    assert failed and result["changed"] is False and "nothing was changed" in result["msg"]
    assert ("nvidia-container-runtime" if missing == "toolkit" else "absent.toml") in result["msg"]


def test_broken_config_is_named_and_left_alone(node):
    quadro_node(node)
    path = node.config("config.toml", "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"\n")
    failed, result = run_module(nvidia_toolkit, dict(config_path=path))
    assert failed and path in result["msg"] and "does not parse" in result["msg"]
    assert (node.root / "config.toml").read_text() == "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"\n"


def test_unknown_runtime_and_contradiction_refused(node):
    failed, result = run_module(nvidia_toolkit, {"runtime": "docker"})
    assert failed and "docker" in result["msg"] and "containerd" in result["msg"]
    failed, result = run_module(nvidia_toolkit, {"state": "absent", "set_as_default": True})
    assert failed and "set_as_default=true contradicts state=absent" in result["msg"]


def test_crio_not_default_any_more_leaves_the_default_to_crio(node):
    quadro_node(node)
    path = str(node.root / "99-nvidia.conf")
    assert not run_module(nvidia_toolkit, dict(runtime="crio", config_path=path, set_as_default=True))[0]
    failed, result = run_module(nvidia_toolkit, dict(runtime="crio", config_path=path, set_as_default=False))
    assert not failed and result["changed"] is True and result["default_runtime"] is None
    data = tomllib.loads((node.root / "99-nvidia.conf").read_text())
    assert "default_runtime" not in data["crio"]["runtime"] and "nvidia" in data["crio"]["runtime"]["runtimes"]


def test_query_reports_an_unusable_config_without_failing(node):
    node.answer("lspci", 0, fixture("nvidia", "lspci_nn_thinkpad_t580_no_nvidia.txt"))
    node.answer("modinfo", 1, "", "modinfo: ERROR: Module nvidia not found.")
    path = node.config("config.toml", fixture("runtime_configs", "containerd.io-1.6.9-package.toml"))
    for args in (dict(state="query", config_path=path), dict(config_path=path)):
        failed, result = run_module(nvidia_toolkit, args)
        assert not failed and result["changed"] is False and "version 1" in result["msg"]
    quadro_node(node)
    failed, result = run_module(nvidia_toolkit, dict(config_path=path))
    assert failed and path in result["msg"]


def test_absent_with_a_handler_in_an_inline_table_names_the_file(node):
    quadro_node(node)
    text = fixture("runtime_configs", "containerd-1.6-default.toml").replace(
        '      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes]\n',
        '      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes]\n'
        '        nvidia = {runtime_type = "io.containerd.runc.v2"}\n', 1)
    path = node.config("config.toml", text)
    assert "nvidia = {" in text
    failed, result = run_module(nvidia_toolkit, dict(config_path=path, state="absent"))
    assert failed and path in result["msg"] and "inline table" in result["msg"]
    assert (node.root / "config.toml").read_text() == text
