# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

import json

from ansible_collections.gpulab.cluster.plugins.callback import summary

__metaclass__ = type


class FakeDisplay(object):
    verbosity = 0

    def __init__(self):
        self.lines = []

    def banner(self, text):
        self.lines.append("== %s ==" % text)

    def display(self, text, *args, **kwargs):
        self.lines.append(text)


class FakeHost(object):
    def __init__(self, name):
        self.name = name

    def get_name(self):
        return self.name


class FakeRole(object):
    def __init__(self, name):
        self.name = name

    def get_name(self, include_role_fqcn=True):
        return self.name if include_role_fqcn else self.name.split(".")[-1]


class FakeTask(object):
    def __init__(self, role=None, name="a task"):
        self._role = FakeRole(role) if role else None
        self.name = name
        self.when = []
        self.notify = None
        self._parent = None

    def get_name(self):
        return self.name


class FakeResult(object):
    def __init__(self, host, changed=False, role=None, msg=None):
        self._host = FakeHost(host)
        self._result = {"changed": changed}
        if msg is not None:
            self._result["msg"] = msg
        self._task = FakeTask(role)


class FakePlay(object):
    def __init__(self, name):
        self.name = name

    def get_name(self):
        return self.name


def make(tmp_path=None, folder=None):
    display = FakeDisplay()
    callback = summary.CallbackModule(display=display)
    path = str(tmp_path / "summary.json") if tmp_path else None
    options = {"summary_file": path, "summary_dir": folder}
    callback.get_option = options.get
    return callback, display, path


def test_counts_changes_per_host_and_layer(tmp_path):
    callback, display, path = make(tmp_path)
    callback.v2_playbook_on_start(None)
    callback.v2_playbook_on_play_start(FakePlay("Layer node: base OS"))
    callback.v2_runner_on_ok(FakeResult("gpu07", changed=True, role="gpulab.cluster.node"))
    callback.v2_runner_on_ok(FakeResult("gpu07", changed=True, role="gpulab.cluster.node"))
    callback.v2_runner_on_ok(FakeResult("gpu07", changed=True))  # a play-level task
    callback.v2_runner_on_ok(FakeResult("cp01", changed=False, role="gpulab.cluster.node"))
    callback.v2_runner_on_skipped(FakeResult("cp01"))
    callback.v2_runner_on_failed(FakeResult("cp02"))
    callback.v2_runner_on_failed(FakeResult("cp03"), ignore_errors=True)
    callback.v2_runner_on_unreachable(FakeResult("lb01"))
    callback.v2_playbook_on_stats(None)

    written = json.load(open(path))
    gpu07 = written["hosts"]["gpu07"]
    assert (gpu07["ok"], gpu07["changed"]) == (3, 3)
    assert gpu07["changed_by_layer"] == {"node": 2, "Layer node: base OS": 1}
    assert written["hosts"]["cp01"]["skipped"] == 1 and written["hosts"]["cp01"]["changed"] == 0
    assert written["hosts"]["cp02"]["failed"] == 1
    assert written["hosts"]["cp03"]["failed"] == 0 and written["hosts"]["cp03"]["ok"] == 1
    assert written["totals"] == {"hosts_changed": 1, "hosts_failed": 1, "hosts_unreachable": 1}

    text = "\n".join(display.lines)
    assert "GPULAB SUMMARY" in text
    gpu_line = [line for line in display.lines if line.startswith("gpu07")][0]
    assert "node:2" in gpu_line
    assert display.lines[-1].startswith("5 hosts; changed on 1, failed on 1, unreachable 1")


def test_no_file_when_option_unset():
    callback, display, path = make()
    callback.v2_runner_on_ok(FakeResult("cp01"))
    callback.v2_playbook_on_stats(None)
    assert path is None
    assert [line for line in display.lines if line.startswith("cp01")][0].endswith("-")


def test_layer_of_play_task_without_play_name():
    assert summary.layer_of(FakeTask(), None) == "(play)"


def test_summary_dir_gets_one_new_file_per_run_named_by_mode(tmp_path, monkeypatch):
    folder = str(tmp_path / "runs")
    for check in (True, False, False):
        monkeypatch.setattr(summary.context, "CLIARGS", {"check": check})
        callback, display, path = make(folder=folder)
        callback.v2_runner_on_ok(FakeResult("gpu07", changed=True, role="gpulab.cluster.node"))
        callback.v2_playbook_on_stats(None)
    names = sorted((tmp_path / "runs").iterdir())
    assert [p.name for p in names] == ["001-check.json", "002-run.json", "003-run.json"]
    first = json.loads(names[0].read_text())
    assert first["check_mode"] is True
    assert first["hosts"]["gpu07"]["changed_tasks"] == ["a task"]
    assert json.loads(names[1].read_text())["check_mode"] is False


def test_next_path_ignores_foreign_files(tmp_path):
    (tmp_path / "notes.json").write_text("{}")
    (tmp_path / "007-run.json").write_text("{}")
    (tmp_path / "readme.txt").write_text("")
    assert summary.next_path(str(tmp_path), True).endswith("008-check.json")


def test_tasks_check_mode_cannot_predict_are_recorded_with_their_handlers(tmp_path, monkeypatch):
    monkeypatch.setattr(summary.context, "CLIARGS", {"check": True})
    callback, display, path = make(folder=str(tmp_path))
    callback.v2_runner_on_skipped(FakeResult("gpu07", msg="Command would have run if not in check mode"))
    callback.v2_runner_on_skipped(FakeResult("gpu07", msg="Conditional result was False"))
    skipped_in_check = FakeResult("gpu07", role="gpulab.cluster.node", msg="Conditional result was False")
    block = FakeTask()
    block.when = ["not (ansible_check_mode and _node_time_package is changed)"]
    skipped_in_check._task._parent = block
    skipped_in_check._task.notify = "Restart chrony"  # as the task result's copy of the task holds a single handler
    callback.v2_runner_on_skipped(skipped_in_check)
    callback.v2_playbook_on_stats(None)
    row = json.loads((tmp_path / "001-check.json").read_text())["hosts"]["gpu07"]
    assert row["may_change_tasks"] == ["a task", "a task", "gpulab.cluster.node : Restart chrony"]
    assert row["skipped"] == 3 and row["changed_tasks"] == []
