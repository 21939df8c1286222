# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The gradual roll-out of a gpulab.cluster site: which workers are in the cluster.

``gpulab_rollout_workers`` is ``all`` (the default) or a number N: the first N workers of the inventory's
``workers`` group, in inventory order, are in the cluster (seed 002 rolled out 2, then 4, then 8, then all). The
other workers are prepared (node, container runtime, NVIDIA layers) but not joined, and no cluster layer counts them.
Raising N joins the next workers; lowering it never removes a node (that is remove_node's job).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

ALL = "all"


def stage_problem(stage, workers):
    """Why gpulab_rollout_workers is unusable for these workers, or None."""
    if stage == ALL:
        return None
    if isinstance(stage, bool) or not isinstance(stage, int):
        if isinstance(stage, str) and stage.isdigit():
            stage = int(stage)
        else:
            return "gpulab_rollout_workers is %r; it must be 'all' or a number of workers (e.g. 2, 4, 8)" % (stage,)
    if stage < 1:
        return "gpulab_rollout_workers is %d; at least one worker must be in the cluster" % stage
    if stage > len(workers):
        return ("gpulab_rollout_workers is %d but group workers has %d host(s); raise it only up to %d, or use 'all'"
                % (stage, len(workers), len(workers)))
    return None


def members(workers, stage=ALL):
    """The workers in the cluster at this stage, in inventory order; raises ValueError for an unusable stage."""
    workers = list(workers or [])
    problem = stage_problem(stage, workers)
    if problem:
        raise ValueError(problem)
    if stage == ALL:
        return workers
    return workers[:int(stage)]
