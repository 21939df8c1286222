# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpulab.cluster.disk_layout: argument validation of the 0.1.0 interface (behaviour: issue 3)."""
from __future__ import absolute_import, division, print_function

import pytest

from ansible_collections.gpulab.cluster.plugins.modules import disk_layout

from .utils import run_module

__metaclass__ = type

REFERENCE = [
    {"name": "root", "number": 1, "size": "50GiB", "fs": "ext4", "mount": "/"},
    {"name": "home", "number": 2, "size": "50GiB", "fs": "ext4", "mount": "/home"},
    {"name": "swap", "number": 3, "size": "16GiB", "type": "swap", "fs": "swap"},
    {"name": "data", "number": 4, "size": "512GiB"},
    {"name": "var", "number": 5, "size": "34GiB", "fs": "ext4", "mount": "/var", "mount_opts": "defaults,noatime"},
]


def _args(**extra):
    args = {"device": "/dev/sda", "partitions": [dict(p) for p in REFERENCE]}
    args.update(extra)
    return args


def _assert_not_implemented(failed, result):
    assert failed
    assert result["changed"] is False
    assert "gpulab.cluster.disk_layout is not implemented in this release (0.1.0)" in result["msg"]
    assert "issue #3" in result["msg"]
    assert "Nothing was changed." in result["msg"]


@pytest.mark.parametrize("check_mode", [False, True])
def test_valid_layout_reaches_not_implemented(module_harness, check_mode):
    _assert_not_implemented(*run_module(disk_layout, _args(), check_mode=check_mode))


@pytest.mark.parametrize("identity", [
    {"disk_serial": "Z9A1B2C3"},
    {"disk_wwn": "0x5000c500a1b2c3d4"},
    {"disk_size_bytes": 1000204886016},
])
def test_allow_destructive_with_one_identity_option_is_valid(module_harness, identity):
    _assert_not_implemented(*run_module(disk_layout, _args(allow_destructive=True, **identity), check_mode=True))


def test_allow_destructive_without_identity_is_refused(module_harness):
    failed, result = run_module(disk_layout, _args(allow_destructive=True))
    assert failed
    assert "not implemented" not in result["msg"]
    assert "allow_destructive is True but any of the following are missing" in result["msg"]
    for option in ("disk_serial", "disk_wwn", "disk_size_bytes"):
        assert option in result["msg"]


def test_identity_without_allow_destructive_is_valid(module_harness):
    _assert_not_implemented(*run_module(disk_layout, _args(disk_serial="Z9A1B2C3")))


def test_mount_without_fs_is_refused(module_harness):
    args = _args()
    args["partitions"][3]["mount"] = "/data"
    failed, result = run_module(disk_layout, args)
    assert failed
    assert "missing parameter(s) required by 'mount': fs" in result["msg"]
    assert "partitions" in result["msg"]


def test_mount_opts_without_mount_is_refused(module_harness):
    args = _args()
    args["partitions"][2]["mount_opts"] = "sw"
    failed, result = run_module(disk_layout, args)
    assert failed
    assert "missing parameter(s) required by 'mount_opts': mount" in result["msg"]


@pytest.mark.parametrize("missing", ["name", "size"])
def test_partition_without_required_suboption_is_refused(module_harness, missing):
    args = _args()
    del args["partitions"][0][missing]
    failed, result = run_module(disk_layout, args)
    assert failed
    assert "missing required arguments: %s" % missing in result["msg"]


@pytest.mark.parametrize("missing", ["device", "partitions"])
def test_missing_required_option_is_refused(module_harness, missing):
    args = _args()
    del args[missing]
    failed, result = run_module(disk_layout, args)
    assert failed
    assert "missing required arguments: %s" % missing in result["msg"]


@pytest.mark.parametrize("option, value", [
    ("type", "ntfs"),
    ("fs", "zfs"),
])
def test_partition_choices_are_enforced(module_harness, option, value):
    args = _args()
    args["partitions"][0][option] = value
    failed, result = run_module(disk_layout, args)
    assert failed
    assert option in result["msg"] and value in result["msg"]


def test_mount_state_choices_are_enforced(module_harness):
    failed, result = run_module(disk_layout, _args(mount_state="now"))
    assert failed
    assert "mount_state" in result["msg"]


def test_unknown_partition_option_is_refused(module_harness):
    args = _args()
    args["partitions"][0]["label"] = "root"
    failed, result = run_module(disk_layout, args)
    assert failed
    assert "label" in result["msg"]


def test_argument_spec_is_a_fresh_copy_each_time():
    first = disk_layout.argument_spec()
    first["device"]["required"] = False
    assert disk_layout.argument_spec()["device"]["required"] is True
