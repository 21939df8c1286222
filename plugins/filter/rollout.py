# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""gpulab.cluster.rollout_workers: the workers in the cluster at the roll-out stage (documented in
rollout_workers.yml); the rule lives in the collection's module_utils/_rollout.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.gpulab.cluster.plugins.module_utils import _rollout


def rollout_workers(workers, stage="all"):
    """The first ``stage`` workers in inventory order, or all of them."""
    try:
        return _rollout.members(workers, stage)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    """gpulab.cluster roll-out filters."""

    def filters(self):
        return {
            "rollout_workers": rollout_workers,
        }
