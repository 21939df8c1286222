# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpulab.cluster.rollout_workers and gpulab.cluster.tenant_objects as Ansible calls them."""
from __future__ import absolute_import, division, print_function

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.gpulab.cluster.plugins.filter.rollout import FilterModule as Rollout
from ansible_collections.gpulab.cluster.plugins.filter.tenants import FilterModule as Tenants

__metaclass__ = type

WORKERS = ["gpu%02d" % number for number in range(1, 16)]


@pytest.mark.parametrize("stage, expected", [
    ("all", WORKERS), (2, WORKERS[:2]), ("4", WORKERS[:4]), (15, WORKERS)])
def test_the_first_workers_in_inventory_order(stage, expected):
    assert Rollout().filters()["rollout_workers"](WORKERS, stage) == expected


def test_raising_the_stage_only_adds_workers():
    rollout = Rollout().filters()["rollout_workers"]
    stages = [rollout(WORKERS, stage) for stage in (2, 4, 8, "all")]
    for smaller, larger in zip(stages, stages[1:]):
        assert larger[:len(smaller)] == smaller and len(larger) > len(smaller)


@pytest.mark.parametrize("stage", [0, 16, "half", None, True])
def test_an_unusable_stage_is_refused(stage):
    with pytest.raises(AnsibleFilterError, match="gpulab_rollout_workers"):
        Rollout().filters()["rollout_workers"](WORKERS, stage)


def test_tenant_filter_refuses_with_the_problems():
    with pytest.raises(AnsibleFilterError, match="gpulab_tenants: gpulab_tenants x.quota is None"):
        Tenants().filters()["tenant_objects"]([{"name": "x", "owner": "a"}])


def test_tenant_filter_without_site_limits_takes_the_collections():
    tenants = [{"name": "x", "owner": "a", "quota": {"cpu": "4", "memory": "4Gi", "gpu": 1}}]
    (limit_range,) = [o for o in Tenants().filters()["tenant_objects"](tenants, {}, False) if o["kind"] == "LimitRange"]
    assert limit_range["spec"]["limits"][0]["max"] == {"cpu": "4", "memory": "3584Mi"}
    assert Tenants().filters()["tenant_summary"](tenants)["present"] == ["x"]
