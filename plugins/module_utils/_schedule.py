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
not listed) it trains. A window whose ``to`` is earlier than its ``from`` ends the next day (a night shift). Any two
runs are at least ``GAP_MINUTES`` apart: a wind-down and a wind-up never overlap (each may take up to its timeout).
``problems(windows, timezone)`` lists what is wrong; ``cron_jobs(windows)`` gives one wind-down and one wind-up
schedule per window, as cron lines in local time: the CronJobs carry ``timeZone``, so Kubernetes keeps the local hour
across daylight-saving changes.
"""

from __future__ import absolute_import, division, print_function

import re

__metaclass__ = type

DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # cron numbers them 0-6 from Sunday
_TIME = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
WINDOW_KEYS = ("days", "from", "to")
WEEK = 7 * 24 * 60
DAY = 24 * 60
# A run may take the schedule's timeout (900 s by default) plus the Job's margin: runs closer than this could overlap.
GAP_MINUTES = 20
# Names Python's time zone database knows but Kubernetes' (Go's) does not.
NOT_ZONES = ("localtime", "posixrules", "Factory")


def minutes(text):
    """"HH:MM" as minutes after midnight, or None."""
    match = _TIME.match(text) if isinstance(text, str) else None
    if not match:
        return None
    return int(match.group(1)) * 60 + int(match.group(2))


def timezone_problem(name):
    """Why a time zone name is unusable, or None (unchecked where Python has no zoneinfo)."""
    if not isinstance(name, str) or not name.strip() or name in NOT_ZONES:
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
    if start is not None and end is not None and (end - start) % DAY < GAP_MINUTES:
        found.append("%s: from %s to %s is %s; a window lasts at least %d minutes (a to earlier than from ends the "
                     "next day)" % (where, window["from"], window["to"],
                                    "no time" if start == end else "%d minutes" % ((end - start) % DAY), GAP_MINUTES))
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
    found.extend(_overlaps(windows, parsed))
    return found


def _intervals(days, start, end):
    """The window's stretches of the week, in minutes from Sunday 00:00 (a night shift runs into the next day)."""
    length = (end - start) % DAY
    return [(DAYS.index(day) * DAY + start, DAYS.index(day) * DAY + start + length) for day in days]


def _apart(first, second):
    """Minutes between two stretches of the (circular) week; 0 when they overlap."""
    (a_start, a_end), (b_start, b_end) = first, second
    best = None
    for shift in (-WEEK, 0, WEEK):
        s2, e2 = b_start + shift, b_end + shift
        gap = max(s2 - a_end, a_start - e2, 0)
        best = gap if best is None else min(best, gap)
    return best


def _overlaps(windows, parsed):
    found = []
    for index, (first, value_a) in enumerate(parsed):
        for second, value_b in parsed[index + 1:]:
            clashes = [one for one in _intervals(*value_a) for other in _intervals(*value_b)
                       if _apart(one, other) < GAP_MINUTES]
            if clashes:
                found.append("gpulab_day_use items %d and %d overlap or lie less than %d minutes apart on %s "
                             "(%s-%s and %s-%s); merge them into one window or move them apart"
                             % (first, second, GAP_MINUTES, DAYS[(clashes[0][0] // DAY) % 7],
                                windows[first - 1]["from"], windows[first - 1]["to"], windows[second - 1]["from"],
                                windows[second - 1]["to"]))
    # a window on consecutive days that meets itself (a night shift running into the next day's start)
    for position, value in parsed:
        stretches = _intervals(*value)
        for index, one in enumerate(stretches):
            if any(_apart(one, other) < GAP_MINUTES for other in stretches[index + 1:]):
                found.append("gpulab_day_use item %d runs into itself from one day to the next (%s-%s); shorten it"
                             % (position, windows[position - 1]["from"], windows[position - 1]["to"]))
                break
    return found


def cron_jobs(windows):
    """[{name, action, schedule, window}] for valid windows: wind-down at each from, wind-up at each to."""
    found = problems(windows, "UTC")
    if found:
        raise ValueError("; ".join(found))
    jobs = []
    for position, window in enumerate(windows, start=1):
        start, end = minutes(window["from"]), minutes(window["to"])
        for action, at, shift in (("wind-down", start, 0), ("wind-up", end, 1 if end < start else 0)):
            days = ",".join(str(number) for number in sorted((DAYS.index(day) + shift) % 7 for day in window["days"]))
            jobs.append({"name": "gpulab-%s-%d" % (action, position), "action": action, "window": position,
                         "schedule": "%d %d * * %s" % (at % 60, at // 60, days)})
    return jobs
