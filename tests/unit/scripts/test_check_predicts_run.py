# -*- coding: utf-8 -*-
"""scripts/check-predicts-run: the comparison Molecule's verify relies on, run as the command it is."""
from __future__ import absolute_import, division, print_function

import json
import os
import subprocess
import sys

__metaclass__ = type

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "..", "scripts", "check-predicts-run")


def summary(**hosts):
    return {"hosts": {name: {"changed_tasks": tasks} for name, tasks in hosts.items()}}


def run(tmp_path, check, real, *args):
    (tmp_path / "001-check.json").write_text(json.dumps(check))
    (tmp_path / "002-run.json").write_text(json.dumps(real))
    return subprocess.run([sys.executable, SCRIPT, str(tmp_path)] + list(args),
                          capture_output=True, text=True, check=False)


def test_same_changes_on_every_host_pass(tmp_path):
    result = run(tmp_path, summary(a=["r : t1"], b=[]), summary(a=["r : t1"], b=[]))
    assert result.returncode == 0, result.stdout
    assert "1 changed tasks on 2 hosts" in result.stdout


def test_a_change_check_mode_missed_fails_naming_host_and_task(tmp_path):
    result = run(tmp_path, summary(a=["r : t1"]), summary(a=["r : t1", "r : t2"]))
    assert result.returncode == 1
    assert "a: check mode predicted ['r : t1'], the real run changed ['r : t1', 'r : t2']" in result.stdout


def test_unpredictable_tasks_from_options_and_file_are_left_out(tmp_path):
    listed = tmp_path / "unpredictable.txt"
    listed.write_text("# why these cannot be predicted\nr : t2\n\n")
    check, real = summary(a=["r : t1"]), summary(a=["r : t1", "r : t2", "r : t3"])
    assert run(tmp_path, check, real, "--unpredictable-file", str(listed)).returncode == 1
    result = run(tmp_path, check, real, "--unpredictable-file", str(listed), "--unpredictable", "r : t3")
    assert result.returncode == 0, result.stdout


def test_missing_pair_and_bad_options_exit_2(tmp_path):
    empty = subprocess.run([sys.executable, SCRIPT, str(tmp_path)], capture_output=True, text=True, check=False)
    assert empty.returncode == 2 and "no check-mode summary" in empty.stdout
    bad = run(tmp_path, summary(a=[]), summary(a=[]), "--unknown", "x")
    assert bad.returncode == 2


def test_tasks_check_mode_skipped_count_when_they_change(tmp_path):
    check = summary(a=["r : t1"])
    check["hosts"]["a"]["may_change_tasks"] = ["r : cmd", "r : other cmd"]
    assert run(tmp_path, check, summary(a=["r : t1", "r : cmd"])).returncode == 0
    assert run(tmp_path, check, summary(a=["r : t1"])).returncode == 0  # ran, its changed_when said no change
    assert run(tmp_path, check, summary(a=["r : t1", "r : t9"])).returncode == 1


def test_a_task_changing_twice_must_be_predicted_twice(tmp_path):
    assert run(tmp_path, summary(a=["r : t", "r : t"]), summary(a=["r : t", "r : t"])).returncode == 0
    assert run(tmp_path, summary(a=["r : t"]), summary(a=["r : t", "r : t"])).returncode == 1


def test_failed_or_unreachable_hosts_are_no_prediction(tmp_path):
    failed = summary(a=["r : t"])
    failed["hosts"]["a"]["failed"] = 1
    result = run(tmp_path, failed, failed)
    assert result.returncode == 1 and "a: check mode failed or was unreachable" in result.stdout
