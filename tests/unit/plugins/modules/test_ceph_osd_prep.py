# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpulab.cluster.ceph_osd_prep: argument validation of the 0.1.0 interface (behaviour: issue 6)."""
from __future__ import absolute_import, division, print_function

import pytest

from ansible_collections.gpulab.cluster.plugins.modules import ceph_osd_prep

from .utils import run_module

__metaclass__ = type


def _assert_not_implemented(failed, result):
    assert failed
    assert result["changed"] is False
    assert "gpulab.cluster.ceph_osd_prep is not implemented in this release (0.1.0)" in result["msg"]
    assert "issue #6" in result["msg"]
    assert "Nothing was changed." in result["msg"]


@pytest.mark.parametrize("check_mode", [False, True])
@pytest.mark.parametrize("args", [
    {"device": "/dev/sda4"},
    {"device": "/dev/sda4", "wipe": True},
    {"device": "/dev/disk/by-id/ata-ST1000DM010-2EP102_Z9A1B2C3-part4", "wipe": True, "force": True},
])
def test_valid_arguments_reach_not_implemented(module_harness, args, check_mode):
    _assert_not_implemented(*run_module(ceph_osd_prep, args, check_mode=check_mode))


def test_device_is_required(module_harness):
    failed, result = run_module(ceph_osd_prep, {"wipe": True})
    assert failed
    assert "missing required arguments: device" in result["msg"]


@pytest.mark.parametrize("check_mode", [False, True])
def test_force_without_wipe_is_refused_with_the_option_named(module_harness, check_mode):
    failed, result = run_module(ceph_osd_prep, {"device": "/dev/sda4", "force": True}, check_mode=check_mode)
    assert failed
    assert result["changed"] is False
    assert "not implemented" not in result["msg"]
    assert "force=true needs wipe=true for /dev/sda4" in result["msg"]


def test_non_boolean_wipe_is_refused(module_harness):
    failed, result = run_module(ceph_osd_prep, {"device": "/dev/sda4", "wipe": "please"})
    assert failed
    assert "wipe" in result["msg"]


def test_permissions_default_to_off():
    spec = ceph_osd_prep.argument_spec()
    assert spec["wipe"]["default"] is False
    assert spec["force"]["default"] is False
