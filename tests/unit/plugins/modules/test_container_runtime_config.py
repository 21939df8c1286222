# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpulab.cluster.container_runtime_config on real containerd and CRI-O files (tests/unit/plugins/fixtures/runtime_configs)."""
from __future__ import absolute_import, division, print_function

import copy
import os
import shutil

import pytest
from ansible.module_utils import basic

from ansible_collections.gpulab.cluster.plugins.modules import container_runtime_config

from .utils import run_module

__metaclass__ = type

tomllib = pytest.importorskip("tomllib")

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "runtime_configs")
V2 = ("plugins", "io.containerd.grpc.v1.cri")
V3_RUNTIME = ("plugins", "io.containerd.cri.v1.runtime")
V3_IMAGES = ("plugins", "io.containerd.cri.v1.images")
PAUSE = "registry.k8s.io/pause:3.10"


def fixture_text(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def at(data, path):
    for key in path:
        data = data[key]
    return data


def put(data, path, value):
    for key in path[:-1]:
        data = data.setdefault(key, {})
    data[path[-1]] = value


class FakeNode(object):
    """containerd on PATH (or not); `containerd config default` answers with the real 1.6 output."""

    def __init__(self, tmp_path):
        self.root = tmp_path
        self.binaries = {"containerd": "/usr/bin/containerd"}
        self.default = fixture_text("containerd-1.6-default.toml")
        self.default_rc = 0
        self.commands = []

    def path(self, name):
        return str(self.root / name)

    def put(self, name, text):
        with open(self.path(name), "w") as handle:
            handle.write(text)
        return self.path(name)

    def read(self, name):
        with open(self.path(name)) as handle:
            return handle.read()

    def run_command(self, args, **_kwargs):
        self.commands.append(list(args))
        if args[1:] == ["config", "default"]:
            return self.default_rc, self.default if self.default_rc == 0 else "", "" if self.default_rc == 0 else "boom"
        raise AssertionError("unexpected command %s" % args)


@pytest.fixture
def node(tmp_path, monkeypatch, module_harness):
    fake = FakeNode(tmp_path)
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, *a, **k: fake.binaries.get(name))
    monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, args, **kw: fake.run_command(args, **kw))
    return fake


def containerd_args(path, **extra):
    args = dict(runtime="containerd", config_path=path, sandbox_image=PAUSE, registry_config_path="/etc/containerd/certs.d")
    args.update(extra)
    return args


@pytest.mark.parametrize("name, version, runc, sandbox, registry", [
    ("containerd-1.6-default.toml", 2, V2 + ("containerd", "runtimes", "runc", "options"), V2 + ("sandbox_image",),
     V2 + ("registry", "config_path")),
    ("containerd-1.7-default.toml", 2, V2 + ("containerd", "runtimes", "runc", "options"), V2 + ("sandbox_image",),
     V2 + ("registry", "config_path")),
    ("containerd-2.1-default.toml", 3, V3_RUNTIME + ("containerd", "runtimes", "runc", "options"),
     V3_IMAGES + ("pinned_images", "sandbox"), V3_IMAGES + ("registry", "config_path")),
    ("containerd-nvidia-toolkit.toml", 2, V2 + ("containerd", "runtimes", "runc", "options"), V2 + ("sandbox_image",),
     V2 + ("registry", "config_path")),
    ("containerd-eks.toml", 2, V2 + ("containerd", "runtimes", "runc", "options"), V2 + ("sandbox_image",),
     V2 + ("registry", "config_path")),
])
def test_each_real_config_gets_exactly_the_kubeadm_settings(node, name, version, runc, sandbox, registry):
    before_text = fixture_text(name)
    path = node.put("config.toml", before_text)
    predicted_failed, predicted = run_module(container_runtime_config, containerd_args(path), check_mode=True, diff=True)
    assert not predicted_failed, predicted
    assert node.read("config.toml") == before_text  # check mode wrote nothing
    failed, result = run_module(container_runtime_config, containerd_args(path), diff=True)
    assert not failed, result
    assert result["changed"] is True and predicted["changed"] is True
    assert result["changes"] == predicted["changes"]
    assert result["diff"]["after"] == predicted["diff"]["after"] == node.read("config.toml")
    assert result["config_version"] == version
    after = tomllib.loads(node.read("config.toml"))
    assert at(after, runc)["SystemdCgroup"] is True
    assert at(after, sandbox) == PAUSE
    assert at(after, registry) == "/etc/containerd/certs.d"
    expected = copy.deepcopy(tomllib.loads(before_text))
    put(expected, runc + ("SystemdCgroup",), True)
    put(expected, runc[:-1] + ("runtime_type",), "io.containerd.runc.v2")  # already so, or added with the handler
    put(expected, sandbox, PAUSE)
    put(expected, registry, "/etc/containerd/certs.d")
    assert after == expected  # nothing else moved
    comments = [line for line in before_text.splitlines() if line.lstrip().startswith("#")]
    assert [line for line in node.read("config.toml").splitlines() if line.lstrip().startswith("#")] == comments
    again_failed, again = run_module(container_runtime_config, containerd_args(path), check_mode=True)
    assert not again_failed and again["changed"] is False and again["changes"] == []
    failed, second = run_module(container_runtime_config, containerd_args(path))
    assert not failed and second["changed"] is False


def test_missing_config_starts_from_containerd_config_default(node):
    path = node.path("config.toml")
    failed, predicted = run_module(container_runtime_config, containerd_args(path), check_mode=True)
    assert not failed and predicted["changed"] is True and predicted["created"] is True
    assert not os.path.exists(path)
    failed, result = run_module(container_runtime_config, containerd_args(path))
    assert not failed and result["created"] is True and result["changes"] == predicted["changes"]
    assert ["/usr/bin/containerd", "config", "default"] in node.commands
    data = tomllib.loads(node.read("config.toml"))
    assert data["version"] == 2
    assert data["plugins"]["io.containerd.grpc.v1.cri"]["sandbox_image"] == PAUSE
    assert os.stat(path).st_mode & 0o777 == 0o644
    assert run_module(container_runtime_config, containerd_args(path))[1]["changed"] is False


def test_docker_package_stub_is_replaced_by_the_defaults_with_cri_enabled(node):
    path = node.put("config.toml", fixture_text("containerd.io-1.6.9-package.toml"))
    failed, result = run_module(container_runtime_config, containerd_args(path), diff=True)
    assert not failed, result
    assert "disabled_plugins = [\"cri\"]" in result["diff"]["before"]
    data = tomllib.loads(node.read("config.toml"))
    assert data["disabled_plugins"] == [] and data["version"] == 2
    assert "stub" in result["changes"][0]
    assert run_module(container_runtime_config, containerd_args(path))[1]["changed"] is False


def test_cri_listed_in_disabled_plugins_is_enabled_other_entries_kept(node):
    text = fixture_text("containerd-1.6-default.toml").replace(
        "disabled_plugins = []", 'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.zfs"]')
    path = node.put("config.toml", text)
    failed, result = run_module(container_runtime_config, containerd_args(path))
    assert not failed
    assert tomllib.loads(node.read("config.toml"))["disabled_plugins"] == ["io.containerd.snapshotter.v1.zfs"]


def test_check_mode_before_containerd_is_installed_predicts_a_change(node):
    node.binaries = {}
    failed, result = run_module(container_runtime_config, containerd_args(node.path("config.toml")), check_mode=True)
    assert not failed and result["changed"] is True and "once containerd is installed" in result["msg"]
    failed, result = run_module(container_runtime_config, containerd_args(node.path("config.toml")))
    assert failed and "containerd is not installed" in result["msg"] and "config.toml" in result["msg"]


def test_containerd_config_default_failing_is_reported(node):
    node.default_rc = 1
    failed, result = run_module(container_runtime_config, containerd_args(node.path("config.toml")))
    assert failed and "rc=1" in result["msg"] and "boom" in result["msg"]
    assert not os.path.exists(node.path("config.toml"))


@pytest.mark.parametrize("text, words", [
    ("[plugins.cri]\nsandbox_image = 'x'\n", ["version 1", "containerd config migrate"]),
    ("version = 4\n", ["version 4"]),
    ("version = 2\n[plugins\n", ["does not parse as TOML", "line 2"]),
])
def test_unusable_config_is_refused_and_left_as_it_was(node, text, words):
    path = node.put("config.toml", text)
    failed, result = run_module(container_runtime_config, containerd_args(path))
    assert failed and result["changed"] is False
    assert path in result["msg"]
    for word in words:
        assert word in result["msg"]
    assert node.read("config.toml") == text


def test_cgroupfs_driver_and_settings_left_alone_when_not_given(node):
    text = fixture_text("containerd-1.6-default.toml")
    path = node.put("config.toml", text)
    failed, result = run_module(container_runtime_config, dict(config_path=path, cgroup_driver="cgroupfs"))
    assert not failed and result["changed"] is False  # SystemdCgroup is already false; nothing else asked
    assert node.read("config.toml") == text


def test_backup_keeps_the_old_file(node, monkeypatch):
    path = node.put("config.toml", fixture_text("containerd-1.6-default.toml"))
    backups = []

    def backup_local(self, fn):
        copy_path = fn + ".bak"
        shutil.copy(fn, copy_path)
        backups.append(copy_path)
        return copy_path

    monkeypatch.setattr(basic.AnsibleModule, "backup_local", backup_local)
    failed, result = run_module(container_runtime_config, containerd_args(path, backup=True))
    assert not failed and result["backup_file"] == backups[0]
    assert node.read("config.toml.bak") == fixture_text("containerd-1.6-default.toml")


@pytest.mark.parametrize("driver, expected", [
    ("systemd", {"cgroup_manager": "systemd", "conmon_cgroup": "pod"}),
    ("cgroupfs", {"cgroup_manager": "cgroupfs"}),
])
def test_crio_drop_in_of_our_own(node, driver, expected):
    path = node.path("10-gpulab.conf")
    args = dict(runtime="crio", config_path=path, cgroup_driver=driver, sandbox_image=PAUSE)
    failed, predicted = run_module(container_runtime_config, args, check_mode=True)
    assert not failed and predicted["changed"] is True and not os.path.exists(path)
    failed, result = run_module(container_runtime_config, args)
    assert not failed and result["changes"] == predicted["changes"] and result["config_version"] is None
    data = tomllib.loads(node.read("10-gpulab.conf"))
    assert data["crio"]["runtime"] == expected
    assert data["crio"]["image"]["pause_image"] == PAUSE
    assert run_module(container_runtime_config, args)[1]["changed"] is False


def test_crio_drop_in_edits_keep_a_real_drop_in_intact(node):
    text = fixture_text("crio-openshift-00-default.conf")
    path = node.put("00-default.conf", text)
    failed, result = run_module(container_runtime_config, dict(runtime="crio", config_path=path, sandbox_image=PAUSE))
    assert not failed, result
    before, after = tomllib.loads(text), tomllib.loads(node.read("00-default.conf"))
    before["crio"]["runtime"].update(cgroup_manager="systemd", conmon_cgroup="pod")
    before["crio"].setdefault("image", {})["pause_image"] = PAUSE
    assert after == before
