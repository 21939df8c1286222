# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""gpulab.cluster.schedule_cron_jobs: the wind-down and wind-up schedules of the inventory's day-use windows
(documented in schedule_cron_jobs.yml); the rules live in the collection's module_utils/_schedule.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.gpulab.cluster.plugins.module_utils import _schedule


def schedule_cron_jobs(windows):
    """[{name, action, schedule, window}]: wind-down at each window's from, wind-up at its to (local time)."""
    try:
        return _schedule.cron_jobs(windows)
    except ValueError as exc:
        raise AnsibleFilterError("gpulab_day_use: %s" % exc)


class FilterModule(object):
    """gpulab.cluster schedule filters."""

    def filters(self):
        return {
            "schedule_cron_jobs": schedule_cron_jobs,
        }
