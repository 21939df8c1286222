# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The day-use windows (module_utils/_schedule.py): their rules, their cron lines, their place in the inventory
rules. That the CronJobs fire at the right local hours across daylight saving: tests/integration/test_manifests.py."""
from __future__ import absolute_import, division, print_function

import pytest

from ansible_collections.gpulab.cluster.plugins.module_utils import _schedule as s
from ansible_collections.gpulab.cluster.plugins.module_utils._inventory_rules import validate

__metaclass__ = type

WEEK = {"days": ["mon", "tue", "wed", "thu", "fri"], "from": "08:00", "to": "18:00"}


def test_cron_lines_in_local_time_with_cron_day_numbers():
    saturday = {"days": ["sun", "sat"], "from": "09:30", "to": "16:05"}
    assert s.cron_jobs([WEEK, saturday]) == [
        {"name": "gpulab-wind-down-1", "action": "wind-down", "window": 1, "schedule": "0 8 * * 1,2,3,4,5"},
        {"name": "gpulab-wind-up-1", "action": "wind-up", "window": 1, "schedule": "0 18 * * 1,2,3,4,5"},
        {"name": "gpulab-wind-down-2", "action": "wind-down", "window": 2, "schedule": "30 9 * * 0,6"},
        {"name": "gpulab-wind-up-2", "action": "wind-up", "window": 2, "schedule": "5 16 * * 0,6"}]


def test_no_windows_no_jobs():
    assert s.cron_jobs([]) == [] and s.problems([], None) == []


@pytest.mark.parametrize("windows, problem", [
    ([dict(WEEK, days=["monday"])], "gpulab_day_use item 1: days is ['monday']; list days as mon, tue"),
    ([dict(WEEK, days=[])], "gpulab_day_use item 1: days is []"),
    ([dict(WEEK, days=["mon", "mon"])], "gpulab_day_use item 1: days lists a day twice (mon, mon)"),
    ([dict(WEEK, **{"from": "8:00"})], 'gpulab_day_use item 1: from is \'8:00\'; give a time of day as "HH:MM"'),
    ([dict(WEEK, to=1080)], "gpulab_day_use item 1: to is 1080"),
    ([dict(WEEK, to="24:00")], "gpulab_day_use item 1: to is '24:00'"),
    ([dict(WEEK, **{"from": "22:00", "to": "22:00"})],
     "gpulab_day_use item 1: from 22:00 to 22:00 is no time; a window lasts at least 20 minutes"),
    ([dict(WEEK, **{"from": "22:00", "to": "22:10"})], "gpulab_day_use item 1: from 22:00 to 22:10 is 10 minutes"),
    ([dict(WEEK, days=["mon", "tue"], **{"from": "08:00", "to": "07:50"})],
     "gpulab_day_use item 1 runs into itself from one day to the next (08:00-07:50)"),
    ([dict(WEEK, until="18:00")], "gpulab_day_use item 1 has unknown key(s) until"),
    ([WEEK, {"days": ["fri", "sat"], "from": "17:00", "to": "20:00"}],
     "gpulab_day_use items 1 and 2 overlap or lie less than 20 minutes apart on fri (08:00-18:00 and 17:00-20:00)"),
    ([WEEK, {"days": ["wed"], "from": "18:00", "to": "20:00"}], "gpulab_day_use items 1 and 2 overlap or lie less"),
    ([WEEK, {"days": ["wed"], "from": "18:10", "to": "20:00"}], "gpulab_day_use items 1 and 2 overlap or lie less"),
    # the split that a night shift used to need: wind-up Friday 23:59, wind-down Saturday 00:00
    ([{"days": ["fri"], "from": "20:00", "to": "23:59"}, {"days": ["sat"], "from": "00:00", "to": "06:00"}],
     "gpulab_day_use items 1 and 2 overlap or lie less than 20 minutes apart on fri"),
    # across the end of the week: Saturday night into Sunday morning
    ([{"days": ["sat"], "from": "20:00", "to": "02:00"}, {"days": ["sun"], "from": "02:10", "to": "06:00"}],
     "gpulab_day_use items 1 and 2 overlap or lie less than 20 minutes apart on sat"),
    ([{"days": ["sun"], "from": "20:00", "to": "23:00"}, {"days": ["sat"], "from": "23:10", "to": "23:50"},
      {"days": ["sun"], "from": "00:00", "to": "02:00"}],
     "gpulab_day_use items 2 and 3 overlap or lie less than 20 minutes apart on sat"),
    (["08:00-18:00"], "gpulab_day_use item 1 is '08:00-18:00'; each window is a mapping"),
    ("weekdays", "gpulab_day_use is 'weekdays'; it must be a list"),
])
def test_each_problem_names_the_window_and_value(windows, problem):
    found = s.problems(windows, "Europe/Berlin")
    assert any(line.startswith(problem) for line in found), found
    if isinstance(windows, list):
        with pytest.raises(ValueError):
            s.cron_jobs(windows)


def test_windows_on_other_days_or_apart_do_not_overlap():
    assert s.problems([WEEK, {"days": ["sat"], "from": "08:00", "to": "18:00"},
                       {"days": ["mon"], "from": "18:20", "to": "20:00"}], "UTC") == []


def test_a_night_shift_winds_up_the_next_day():
    night = {"days": ["fri", "sat"], "from": "20:00", "to": "06:00"}
    assert s.problems([night], "UTC") == []
    assert [job["schedule"] for job in s.cron_jobs([night])] == ["0 20 * * 5,6", "0 6 * * 0,6"]


@pytest.mark.parametrize("zone, ok", [("Europe/Berlin", True), ("UTC", True), ("Europe/Berlln", False),
                                      ("", False), (None, False), ("CET+1", False), ("localtime", False)])
def test_time_zone_names(zone, ok):
    assert (s.timezone_problem(zone) is None) == ok


def test_inventory_rules_require_windows_with_the_schedule_layer():
    base = {"gpulab_layers": ["preflight", "schedule"]}
    problems = validate({"groups": {"all": ["cp01"]}, "hostvars": {"cp01": base}})
    assert any(p.startswith("gpulab_layers has 'schedule' but gpulab_day_use is not set") for p in problems)
    with_windows = dict(base, gpulab_day_use=[WEEK], gpulab_timezone="Mars/Olympus")
    problems = validate({"groups": {"all": ["cp01"]}, "hostvars": {"cp01": with_windows}})
    assert "gpulab_timezone 'Mars/Olympus' is not an IANA time zone (e.g. Europe/Berlin, America/New_York, UTC)" \
        in problems
    assert not [p for p in problems if "gpulab_day_use" in p]


def test_day_use_node_must_be_a_boolean():
    hosts = {"cp01": {"gpulab_day_use": [WEEK], "gpulab_timezone": "UTC"},
             "gpu01": {"gpulab_day_use_node": "no"}, "gpu02": {"gpulab_day_use_node": False}}
    problems = validate({"groups": {"all": ["cp01", "gpu01", "gpu02"], "workers": ["gpu01", "gpu02"]},
                         "hostvars": hosts})
    assert "host gpu01: gpulab_day_use_node is 'no' (str); write true or false (unquoted)" in problems
    assert not [p for p in problems if "gpu02" in p and "gpulab_day_use_node" in p]
