# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The after-hours schedule of a gpulab.cluster site, as pure functions.

The inventory gives the hours the machines belong to their day users, in the site's time zone::

    gpulab_timezone: Europe/Berlin
    gpulab_day_use:
      - {days: [mon, tue, wed, thu, fri], from: "08:00", to: "18:00"}
      - {days: [sat], from: "10:00", to: "16:00"}

The cluster winds down at each window's ``from`` and winds up at its ``to``; outside the windows (nights, the days
not listed) it trains. ``problems(windows, timezone)`` lists what is wrong; ``cron_jobs(windows)`` gives one
wind-down and one wind-up schedule per window, as cron lines in local time: the CronJobs carry ``timeZone``, so
Kubernetes keeps the local hour across daylight-saving changes.
"""

from __future__ import absolute_import, division, print_function

import re

__metaclass__ = type

DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # cron numbers them 0-6 from Sunday
_TIME = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
WINDOW_KEYS = ("days", "from", "to")


def minutes(text):
    """"HH:MM" as minutes after midnight, or None."""
    match = _TIME.match(text) if isinstance(text, str) else None
    if not match:
        return None
    return int(match.group(1)) * 60 + int(match.group(2))


def timezone_problem(name):
    """Why a time zone name is unusable, or None (unchecked where Python has no zoneinfo)."""
    if not isinstance(name, str) or not name.strip():
        return "gpulab_timezone is %r; set it to the site's IANA time zone (e.g. Europe/Berlin)" % (name,)
    try:
        import zoneinfo  # Python 3.9+; the controller has it
    except ImportError:
        return None
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return "gpulab_timezone %r is not an IANA time zone (e.g. Europe/Berlin, America/New_York, UTC)" % name
    return None


def _window_problems(position, window):
    where = "gpulab_day_use item %d" % position
    if not isinstance(window, dict):
        return ["%s is %r; each window is a mapping with days, from and to" % (where, window)], None
    found = []
    unknown = sorted(str(key) for key in window if key not in WINDOW_KEYS)
    if unknown:
        found.append("%s has unknown key(s) %s; the keys are days, from and to" % (where, ", ".join(unknown)))
    days = window.get("days")
    if not isinstance(days, (list, tuple)) or not days or not all(day in DAYS for day in days):
        found.append("%s: days is %r; list days as %s" % (where, days, ", ".join(DAYS[1:] + DAYS[:1])))
    elif len(set(days)) != len(days):
        found.append("%s: days lists a day twice (%s)" % (where, ", ".join(days)))
    start, end = minutes(window.get("from")), minutes(window.get("to"))
    for key, value in (("from", start), ("to", end)):
        if value is None:
            found.append("%s: %s is %r; give a time of day as \"HH:MM\" (quoted, 24-hour)"
                         % (where, key, window.get(key)))
    if start is not None and end is not None and start >= end:
        found.append("%s: from %s is not before to %s; a window ends on the day it starts (split one that crosses "
                     "midnight into two)" % (where, window["from"], window["to"]))
    if found:
        return found, None
    return [], (days, start, end)


def problems(windows, timezone=None):
    """Every problem of gpulab_day_use (and gpulab_timezone), one sentence each naming the window and the value."""
    if not isinstance(windows, (list, tuple)):
        return ["gpulab_day_use is %r; it must be a list of windows ({days, from, to})" % (windows,)]
    found = []
    if windows:
        problem = timezone_problem(timezone)
        if problem:
            found.append(problem)
    parsed = []
    for position, window in enumerate(windows, start=1):
        window_problems, value = _window_problems(position, window)
        found.extend(window_problems)
        if value:
            parsed.append((position, value))
    for index, (first, (days_a, start_a, end_a)) in enumerate(parsed):
        for second, (days_b, start_b, end_b) in parsed[index + 1:]:
            shared = [day for day in days_a if day in days_b]
            # touching windows count too: the wind-up and the wind-down would race in the same minute
            if shared and start_a <= end_b and start_b <= end_a:
                found.append("gpulab_day_use items %d and %d overlap on %s (%s-%s and %s-%s); merge them into one "
                             "window" % (first, second, ", ".join(shared), windows[first - 1]["from"],
                                         windows[first - 1]["to"], windows[second - 1]["from"],
                                         windows[second - 1]["to"]))
    return found


def cron_jobs(windows):
    """[{name, action, schedule, window}] for valid windows: wind-down at each from, wind-up at each to."""
    found = problems(windows, "UTC")
    if found:
        raise ValueError("; ".join(found))
    jobs = []
    for position, window in enumerate(windows, start=1):
        days = ",".join(str(DAYS.index(day)) for day in sorted(window["days"], key=DAYS.index))
        for action, key in (("wind-down", "from"), ("wind-up", "to")):
            at = minutes(window[key])
            jobs.append({"name": "gpulab-%s-%d" % (action, position), "action": action, "window": position,
                         "schedule": "%d %d * * %s" % (at % 60, at // 60, days)})
    return jobs
