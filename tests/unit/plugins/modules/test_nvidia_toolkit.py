# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpulab.cluster.nvidia_toolkit: argument validation of the 0.1.0 interface (behaviour: issue 4)."""
from __future__ import absolute_import, division, print_function

import pytest

from ansible_collections.gpulab.cluster.plugins.modules import nvidia_toolkit

from .utils import run_module

__metaclass__ = type


def _assert_not_implemented(failed, result):
    assert failed
    assert result["changed"] is False
    assert "gpulab.cluster.nvidia_toolkit is not implemented in this release (0.1.0)" in result["msg"]
    assert "issue #4" in result["msg"]
    assert "Nothing was changed." in result["msg"]


@pytest.mark.parametrize("check_mode", [False, True])
@pytest.mark.parametrize("args", [
    {},
    {"runtime": "containerd", "set_as_default": True, "runtime_class": "nvidia"},
    {"runtime": "crio", "config_path": "/etc/crio/crio.conf.d/99-nvidia.conf",
     "runtime_path": "/usr/bin/nvidia-container-runtime"},
    {"state": "absent", "backup": True},
    {"require_gpu": True, "systemd_cgroup": False, "runtime_name": "nvidia-legacy"},
])
def test_valid_arguments_reach_not_implemented(module_harness, args, check_mode):
    _assert_not_implemented(*run_module(nvidia_toolkit, args, check_mode=check_mode))


def test_unknown_runtime_is_refused_with_the_value_named(module_harness):
    failed, result = run_module(nvidia_toolkit, {"runtime": "docker"})
    assert failed
    assert "runtime" in result["msg"] and "docker" in result["msg"]
    assert "containerd" in result["msg"] and "crio" in result["msg"]


def test_unknown_state_is_refused(module_harness):
    failed, result = run_module(nvidia_toolkit, {"state": "wired"})
    assert failed
    assert "state" in result["msg"] and "wired" in result["msg"]


@pytest.mark.parametrize("check_mode", [False, True])
def test_absent_with_set_as_default_is_refused(module_harness, check_mode):
    failed, result = run_module(nvidia_toolkit, {"state": "absent", "set_as_default": True}, check_mode=check_mode)
    assert failed
    assert result["changed"] is False
    assert "not implemented" not in result["msg"]
    assert "set_as_default=true contradicts state=absent" in result["msg"]


def test_non_boolean_is_refused(module_harness):
    failed, result = run_module(nvidia_toolkit, {"set_as_default": "sometimes"})
    assert failed
    assert "set_as_default" in result["msg"]


def test_defaults_match_the_documented_reference_setup():
    spec = nvidia_toolkit.argument_spec()
    assert spec["runtime"]["default"] == "containerd"
    assert spec["runtime_name"]["default"] == "nvidia"
    assert spec["runtime_class"]["default"] == "nvidia"
    assert spec["set_as_default"]["default"] is False
    assert spec["systemd_cgroup"]["default"] is True
