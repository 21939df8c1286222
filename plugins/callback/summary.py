# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: summary
type: aggregate
short_description: A table of what a run did, per host and per layer
version_added: 0.1.0
author: gpulab.cluster developers (@gpulab)
description:
  - At the end of a playbook run, prints one row per host with its ok, changed, failed, skipped and
    unreachable task counts and the layers (roles) in which something changed, then one line with the
    totals and the wall time.
  - Optionally writes the same summary as JSON, for scripts (C(make demo) compares two runs with it, the
    Molecule scenarios compare a check-mode run with the real run that follows it).
requirements:
  - Enable it with C(ANSIBLE_CALLBACKS_ENABLED=gpulab.cluster.summary) or C(callbacks_enabled) in ansible.cfg.
options:
  summary_file:
    description: Also write the summary as JSON to this file.
    type: path
    env:
      - name: GPULAB_SUMMARY_FILE
    ini:
      - section: callback_gpulab_summary
        key: summary_file
  summary_dir:
    description:
      - Also write the summary as JSON into this folder, one new file per run, never overwriting.
      - The file is C(NNN-check.json) for a run in check mode, C(NNN-run.json) otherwise, NNN counting up.
      - Per host it lists the tasks that changed (C(changed_tasks)) and, in check mode, the tasks check mode skipped
        that the real run may change (C(may_change_tasks)) - commands Ansible skipped saying they would have run, and
        tasks skipped by a condition on C(ansible_check_mode) (a role's own statement that check mode cannot see what
        the task edits yet, such as a file of a package the same run installs) with the handlers they notify - so
        that scripts/check-predicts-run can compare a check run with the real one.
    type: path
    env:
      - name: GPULAB_SUMMARY_DIR
    ini:
      - section: callback_gpulab_summary
        key: summary_dir
"""

import json
import os
import time

from ansible import context
from ansible.plugins.callback import CallbackBase

COUNTERS = ("ok", "changed", "failed", "skipped", "unreachable")
# What ansible.builtin.command and shell answer in check mode, skipping: the real run executes the command.
WOULD_RUN = "Command would have run if not in check mode"


def mentions_check_mode(task):
    """Whether the task (or a block around it) is conditional on ansible_check_mode."""
    node = task
    while node is not None:
        if any("ansible_check_mode" in str(condition) for condition in (getattr(node, "when", None) or [])):
            return True
        node = getattr(node, "_parent", None)
    return False


def layer_of(task, play_name):
    """The layer a task belongs to: its role's short name, else the play's name."""
    role = getattr(task, "_role", None)
    if role is not None:
        return role.get_name(include_role_fqcn=False)
    return play_name or "(play)"


def next_path(folder, check_mode):
    """A new file name in folder: NNN-check.json or NNN-run.json, NNN one above the highest there."""
    numbers = [int(name.split("-", 1)[0]) for name in os.listdir(folder)
               if name.endswith(".json") and name.split("-", 1)[0].isdigit()]
    return os.path.join(folder, "%03d-%s.json" % (max(numbers + [0]) + 1, "check" if check_mode else "run"))


def format_table(summary):
    """Render the summary dict as text lines (one per host, then a totals line)."""
    hosts = summary["hosts"]
    name_width = max([len("host")] + [len(h) for h in hosts])
    header = "%-*s %6s %8s %7s %8s %12s  %s" % (
        name_width, "host", "ok", "changed", "failed", "skipped", "unreachable", "changed in")
    lines = [header, "-" * len(header)]
    for host in sorted(hosts):
        row = hosts[host]
        layers = ", ".join("%s:%d" % (layer, n) for layer, n in sorted(row["changed_by_layer"].items()))
        lines.append("%-*s %6d %8d %7d %8d %12d  %s" % (
            name_width, host, row["ok"], row["changed"], row["failed"], row["skipped"], row["unreachable"],
            layers or "-"))
    totals = summary["totals"]
    lines.append("%d hosts; changed on %d, failed on %d, unreachable %d; %.1f s" % (
        len(hosts), totals["hosts_changed"], totals["hosts_failed"], totals["hosts_unreachable"],
        summary["seconds"]))
    return lines


class CallbackModule(CallbackBase):
    """Collects per-host, per-layer counts and prints them at the end of the run."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "gpulab.cluster.summary"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None):
        super(CallbackModule, self).__init__(display=display)
        self._started = time.time()
        self._play_name = None
        self._hosts = {}

    def _row(self, host):
        return self._hosts.setdefault(host, dict([(c, 0) for c in COUNTERS], changed_by_layer={}, changed_tasks=[],
                                                 may_change_tasks=[]))

    def _count(self, result, outcome):
        row = self._row(result._host.get_name())
        row[outcome] += 1
        if outcome == "ok" and result._result.get("changed", False):
            row["changed"] += 1
            layer = layer_of(result._task, self._play_name)
            row["changed_by_layer"][layer] = row["changed_by_layer"].get(layer, 0) + 1
            row["changed_tasks"].append(result._task.get_name())

    def v2_playbook_on_start(self, playbook):
        self._started = time.time()

    def v2_playbook_on_play_start(self, play):
        self._play_name = play.get_name().strip()

    def v2_runner_on_ok(self, result):
        self._count(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._count(result, "ok" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result):
        self._count(result, "skipped")
        task = result._task
        if result._result.get("msg") == WOULD_RUN or mentions_check_mode(task):
            may_change = self._row(result._host.get_name())["may_change_tasks"]
            may_change.append(task.get_name())
            role = getattr(task, "_role", None)
            notify = task.notify or []
            for handler in [notify] if isinstance(notify, str) else notify:  # a task may name one handler as a string
                may_change.append("%s : %s" % (role.get_name(), handler) if role is not None else handler)

    def v2_runner_on_unreachable(self, result):
        self._count(result, "unreachable")

    def summary(self):
        """The run so far as a plain dict (what the JSON file holds)."""
        hosts = self._hosts
        return {
            "check_mode": bool(context.CLIARGS.get("check", False)),
            "hosts": hosts,
            "seconds": round(time.time() - self._started, 1),
            "totals": {
                "hosts_changed": sum(1 for r in hosts.values() if r["changed"]),
                "hosts_failed": sum(1 for r in hosts.values() if r["failed"]),
                "hosts_unreachable": sum(1 for r in hosts.values() if r["unreachable"]),
            },
        }

    def v2_playbook_on_stats(self, stats):
        summary = self.summary()
        self._display.banner("GPULAB SUMMARY")
        for line in format_table(summary):
            self._display.display(line)
        paths = [self.get_option("summary_file")]
        folder = self.get_option("summary_dir")
        if folder:
            if not os.path.isdir(folder):
                os.makedirs(folder)
            paths.append(next_path(folder, summary["check_mode"]))
        for path in paths:
            if path:
                with open(path, "w") as handle:
                    json.dump(summary, handle, indent=2, sort_keys=True)
