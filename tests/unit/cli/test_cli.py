"""The gpulab command: argument refusals, the layer map read from layers.yml, progress, plan and status text.

The runs themselves (ansible-runner over the lab) are tested in molecule/cluster/tests/test_day2.py.
"""
import io
import json
import pathlib
import sys
import types

import pytest

from gpulab_cli import main as cli
from gpulab_cli import project as proj
from gpulab_cli import report
from gpulab_cli.progress import Progress

ROOT = pathlib.Path(__file__).resolve().parents[3]

# The shape `ansible-inventory --list` prints (nested groups, merged host variables).
LISTING = {
    "_meta": {"hostvars": {
        "lb01": {"gpulab_layers": ["preflight", "node", "loadbalancer", "storage"]},
        "cp01": {"gpulab_layers": ["preflight", "node", "loadbalancer", "storage"]},
        "gpu01": {"gpulab_layers": ["preflight", "node", "loadbalancer", "storage"]},
        "gpu02": {"gpulab_layers": ["preflight", "node", "loadbalancer", "storage"]},
    }},
    "all": {"children": ["ungrouped", "loadbalancer", "control_plane", "workers"]},
    "loadbalancer": {"hosts": ["lb01"]},
    "control_plane": {"hosts": ["cp01"]},
    "workers": {"hosts": ["gpu01", "gpu02"], "children": ["storage_osd"]},
    "storage_osd": {"hosts": ["gpu02"]},
}


@pytest.fixture
def inventory():
    return proj.Inventory(LISTING)


@pytest.fixture
def layer_map():
    return proj.layer_groups(ROOT)


def test_layer_map_follows_the_plays_of_layers_yml(layer_map):
    assert list(layer_map)[:5] == ["preflight", "node", "container_runtime", "nvidia", "loadbalancer"]
    assert layer_map["preflight"] is None  # every host of the layer group
    assert layer_map["gpu"] == ["control_plane"]
    assert layer_map["storage"] == ["control_plane", "workers"]
    assert layer_map["loadbalancer"] == ["loadbalancer"]
    assert "schedule" in layer_map and len(layer_map) == 13


def test_inventory_groups_include_nested_children(inventory):
    assert inventory.groups_of("gpu02") == ["storage_osd", "workers"]
    assert inventory.hosts[0] == "lb01"


def test_layers_for_a_host_are_enabled_and_run_on_its_groups(inventory, layer_map):
    assert inventory.layers_for("gpu01", layer_map) == ["preflight", "node", "storage"]
    assert inventory.layers_for("lb01", layer_map) == ["preflight", "node", "loadbalancer"]


@pytest.mark.parametrize("layer, node, words", [
    ("nosuch", "gpu01", ["no layer 'nosuch'", "preflight, node, container_runtime"]),
    ("kubernetes", "gpu01", ["not enabled for gpu01", "enabled: preflight, node, loadbalancer, storage"]),
    ("loadbalancer", "gpu01", ["does not run on gpu01", "runs on lb01", "layers of gpu01: preflight, node, storage"]),
    ("node", "gpu99", ["gpu99 not in the inventory", "inventory hosts: lb01, cp01, gpu01, gpu02"]),
])
def test_repair_refusals_list_the_valid_choices(inventory, layer_map, layer, node, words):
    with pytest.raises(proj.UsageError) as error:
        proj.check_repair(inventory, layer_map, layer, node)
    for word in words:
        assert word in str(error.value)


def test_repair_of_a_layer_of_the_node_passes(inventory, layer_map):
    proj.check_repair(inventory, layer_map, "storage", "gpu02")


def test_add_node_needs_inventory_hosts(inventory):
    with pytest.raises(proj.UsageError, match="name at least one host"):
        proj.check_hosts(inventory, [], "add-node")
    with pytest.raises(proj.UsageError, match="gpu16 not in the inventory; inventory hosts: lb01"):
        proj.check_hosts(inventory, ["gpu01", "gpu16"], "add-node")


class NoRunner(types.ModuleType):
    def run(self, **kwargs):
        raise AssertionError("a refused command must not run a playbook")


@pytest.fixture
def fake_inventory(monkeypatch):
    monkeypatch.setattr(proj.Inventory, "load", classmethod(lambda cls, project, inventory=None: cls(LISTING)))
    monkeypatch.setitem(sys.modules, "ansible_runner", NoRunner("ansible_runner"))


@pytest.mark.parametrize("argv, words", [
    (["repair", "nosuch", "--node", "gpu01"], "no layer 'nosuch'"),
    (["add-node", "gpu16"], "gpu16 not in the inventory"),
    (["deploy", "--limit", "gpu16"], "--limit: gpu16 is neither a host nor a group"),
    (["plan", "--limit", "nosuch"], "groups: all, control_plane, loadbalancer"),
])
def test_refused_commands_run_nothing_and_exit_2(fake_inventory, capsys, argv, words):
    assert cli.main(["--project", str(ROOT)] + argv) == 2
    err = capsys.readouterr().err
    assert words in err and "Nothing was run." in err


def test_unknown_command_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["reset"])
    assert done.value.code == 2
    assert "invalid choice: 'reset'" in capsys.readouterr().err


def test_no_checkout_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.delenv("GPULAB_PROJECT", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(proj, "__file__", str(tmp_path / "a" / "b" / "project.py"))
    with pytest.raises(proj.UsageError, match="no gpulab.cluster checkout found"):
        proj.find_project(str(tmp_path))


def events(*items):
    return [{"event": kind, "event_data": data} for kind, data in items]


def run_events(progress, items):
    for event in events(*items):
        assert progress(event) is True


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        self.now += 1.5
        return self.now


RUN = (
    ("playbook_on_play_start", {"play": "Validate the inventory"}),
    ("playbook_on_task_start", {"task": "Check"}),
    ("runner_on_ok", {"host": "localhost", "res": {"changed": False}}),
    ("playbook_on_play_start", {"play": "Layer preflight: hardware and OS facts"}),
    ("playbook_on_task_start", {"task": "Facts"}),
    ("runner_on_ok", {"host": "gpu01", "res": {"changed": False}}),
    ("runner_on_ok", {"host": "gpu02", "res": {"changed": False}}),
    ("playbook_on_play_start", {"play": "Layer kubernetes: packages"}),  # a layer no host runs: says nothing
    ("playbook_on_play_start", {"play": "Layer node: base OS"}),
    ("playbook_on_task_start", {"task": "Swap"}),
    ("runner_on_ok", {"host": "gpu01", "res": {"changed": True}}),
    ("runner_on_failed", {"host": "gpu02", "task": "Swap", "res": {"msg": "swap is\n on"}}),
    ("runner_on_failed", {"host": "gpu01", "task": "Probe", "ignore_errors": True, "res": {"msg": "x"}}),
    ("runner_on_unreachable", {"host": "gpu03", "task": "Swap", "res": {"msg": "ssh: no route"}}),
    ("playbook_on_stats", {}),
)


def test_progress_lines_failures_and_layer_rows():
    out = io.StringIO()
    progress = Progress(out, layers_total=2, tty=False, clock=Clock())
    run_events(progress, RUN)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("play  Validate the inventory") and lines[0].endswith("no change")
    assert lines[1].startswith("layer preflight") and "2 hosts" in lines[1]
    assert lines[2] == "FAILED gpu02 [node] Swap: swap is on"
    assert lines[3] == "UNREACHABLE gpu03 [node] Swap: ssh: no route"
    assert lines[4].startswith("layer node") and "changed on 1; FAILED on gpu02; UNREACHABLE gpu03" in lines[4]
    assert len(lines) == 5 and "\r" not in out.getvalue()  # no terminal: no redrawn line, no kubernetes line
    assert [f["host"] for f in progress.failures] == ["gpu02", "gpu03"]
    assert progress.layer_rows() == [("Validate the inventory", 1, 0, 0, 1.5), ("preflight", 2, 0, 0, 1.5),
                                     ("node", 3, 1, 2, 1.5)]


def test_progress_bar_counts_layers_that_reached_hosts_on_a_terminal():
    out = io.StringIO()
    progress = Progress(out, layers_total=2, tty=True, clock=Clock())
    run_events(progress, RUN[:9])  # up to the node layer's start
    assert progress.layers_done() == 1
    assert progress.progress_bar(width=10) == "[#####-----] 1/2 layers"
    run_events(progress, RUN[9:11])
    assert progress.status_line() == "[##########----------] 1/2 layers  node  Swap  1/1 hosts"
    assert "\r[##########----------] 1/2 layers  node  Swap  1/1 hosts" in out.getvalue()


def test_progress_bar_never_shows_more_layers_done_than_the_total():
    progress = Progress(io.StringIO(), layers_total=1, tty=False, clock=Clock())
    run_events(progress, RUN[:10])  # preflight and node reached hosts; the estimate said one layer
    assert progress.progress_bar(width=4) == "[####] 1/1 layers"
    run_events(progress, RUN[10:])
    assert progress.layers_done() == 2 and progress.progress_bar(width=4) == "[####] 2/2 layers"


def test_host_patterns_beyond_names_and_groups_are_left_to_ansible(fake_inventory):
    ctx = types.SimpleNamespace(inv=proj.Inventory(LISTING))
    assert cli.limited_hosts(ctx, "workers:!gpu01") is None
    assert cli.limited_hosts(ctx, "gpu0*") is None
    assert cli.limited_hosts(ctx, "workers,lb01") == ["gpu01", "gpu02", "lb01"]


def test_progress_without_a_layer_count_counts_plays():
    progress = Progress(io.StringIO(), tty=False)
    run_events(progress, RUN[:2])
    assert progress.progress_bar(width=4) == "[....] play 1"


SUMMARY = {
    "check_mode": True, "seconds": 12.5,
    "totals": {"hosts_changed": 1, "hosts_failed": 0, "hosts_unreachable": 0},
    "hosts": {
        "gpu01": {"ok": 10, "changed": 2, "failed": 0, "skipped": 1, "unreachable": 0,
                  "changed_by_layer": {"node": 2}, "changed_tasks": ["Swap off", "Write fstab"],
                  "may_change_tasks": ["Restart sshd"]},
        "gpu02": {"ok": 10, "changed": 0, "failed": 0, "skipped": 1, "unreachable": 0,
                  "changed_by_layer": {}, "changed_tasks": [], "may_change_tasks": []},
    },
}


def test_plan_names_the_changes_and_counts_what_check_mode_could_not_see():
    out = io.StringIO()
    report.plan(out, SUMMARY)
    text = out.getvalue()
    assert "gpu01: 2 change(s) (node 2)\n    will change: Swap off\n    will change: Write fstab\n" in text
    assert "no change on: gpu02\n" in text
    assert "check mode could not look at gpu01: 1 task(s); gpulab plan --unseen lists them" in text
    assert "Restart sshd" not in text
    out = io.StringIO()
    report.plan(out, SUMMARY, unseen=True)
    assert "    gpu01: Restart sshd\n" in out.getvalue()


def test_plan_of_a_converged_site_says_nothing_changes():
    quiet = json.loads(json.dumps(SUMMARY))
    quiet["hosts"]["gpu01"].update(changed=0, changed_by_layer={}, changed_tasks=[], may_change_tasks=[])
    out = io.StringIO()
    report.plan(out, quiet)
    assert "nothing: every host is as the inventory describes it" in out.getvalue()


def test_run_end_prints_the_callbacks_table_and_the_failures(tmp_path):
    folder = ROOT / "build" / "gpulab-runs" / "unit-test"
    progress = Progress(io.StringIO(), tty=False, clock=Clock())
    run_events(progress, RUN)
    out = io.StringIO()
    report.run_end(out, progress, SUMMARY, 2, folder)
    text = out.getvalue()
    assert "gpu01     10        2       0        1            0  node:2" in text  # format_table's row
    assert "- gpu02 failed in node, task 'Swap': swap is on" in text
    assert text.rstrip().endswith("FAILED (rc 2); ansible-runner artifacts: %s" % folder)


def test_status_table_and_cluster_lines(inventory):
    data = {
        "nodes": {
            "lb01": {"reachable": True, "member": "lab", "kubelet_conf": False, "gpus": None},
            "cp01": {"reachable": True, "member": "lab", "kubelet_conf": True, "gpus": None},
            "gpu01": {"reachable": True, "member": "lab", "kubelet_conf": True,
                      "gpus": {"count": 1, "models": ["NVIDIA T400 4GB"], "driver_version": "550.127.05"}},
            "gpu02": {"reachable": False},
        },
        "cluster": {"exists": True, "version": "v1.33.5", "ceph_health": "HEALTH_OK",
                    "kubeflow": {"total": 20, "available": 19}, "schedule": {"cronjobs": 4},
                    "nodes": [{"name": "cp01", "ready": True, "day_use": False},
                              {"name": "gpu01", "ready": False, "day_use": True}]},
    }
    out = io.StringIO()
    report.status(out, data, inventory)
    lines = out.getvalue().splitlines()
    assert lines[2].split() == ["lb01", "loadbalancer", "yes", "lab", "-", "-"]
    assert lines[4].split()[:6] == ["gpu01", "workers", "yes", "lab", "NotReady", "day-use"]
    assert lines[4].endswith("1 x NVIDIA T400 4GB (550.127.05)")
    assert lines[5].split() == ["gpu02", "workers", "NO", "?", "-", "?"]
    assert "Kubernetes: v1.33.5, 1/2 nodes Ready" in lines
    assert "Storage:    HEALTH_OK" in lines and "Kubeflow:   19/20 Deployments available" in lines
    assert "Schedule:   4 CronJobs; day use now: gpu01 tainted" in lines


def test_status_without_a_cluster(inventory):
    out = io.StringIO()
    cluster = {"exists": False, "host": "cp01", "kubeconfig": "/etc/kubernetes/admin.conf"}
    report.status(out, {"nodes": {}, "cluster": cluster}, inventory)
    assert out.getvalue().rstrip().endswith("Kubernetes: no cluster (no /etc/kubernetes/admin.conf on cp01)")


class FakeRunner(types.ModuleType):
    """Stands in for ansible_runner.run: records the call, plays back events, writes the callback's summary."""

    def __init__(self):
        super().__init__("ansible_runner")
        self.calls = []

    def run(self, **kwargs):
        self.calls.append(kwargs)
        for event in events(*RUN[3:7] + (RUN[-1],)):
            kwargs["event_handler"](event)
        pathlib.Path(kwargs["envvars"]["GPULAB_SUMMARY_FILE"]).write_text(json.dumps(SUMMARY))
        return types.SimpleNamespace(rc=0)


def test_runs_go_through_ansible_runner_with_the_checkouts_settings(monkeypatch, capsys):
    fake = FakeRunner()
    monkeypatch.setitem(sys.modules, "ansible_runner", fake)
    monkeypatch.setattr(proj.Inventory, "load", classmethod(lambda cls, project, inventory=None: cls(LISTING)))
    monkeypatch.setenv("GPULAB_SUMMARY_DIR", "/somewhere/else")
    assert cli.main(["--project", str(ROOT), "-i", "inv", "repair", "storage", "--node", "gpu02"]) == 0
    call = fake.calls[0]
    assert call["playbook"] == str(ROOT / "playbooks" / "site.yml")
    assert (call["limit"], call["tags"], call["inventory"]) == ("gpu02", "storage", "inv")
    assert call["envvars"]["ANSIBLE_CONFIG"] == str(ROOT / "ansible.cfg")
    assert call["envvars"]["ANSIBLE_CALLBACKS_ENABLED"] == "gpulab.cluster.summary"
    # overrides the caller's, inside the run's own folder
    assert call["envvars"]["GPULAB_SUMMARY_DIR"] == call["private_data_dir"] + "/summaries"
    assert "HOME" not in call["envvars"]  # only overrides: the caller's environment is not written to artifacts
    assert "cmdline" not in call
    assert "layer preflight" in capsys.readouterr().out
    assert cli.main(["--project", str(ROOT), "plan", "--limit", "workers"]) == 0
    assert fake.calls[1]["cmdline"] == "--check --diff" and fake.calls[1]["limit"] == "workers"
    assert "gpu01: 2 change(s) (node 2)" in capsys.readouterr().out
    assert cli.main(["--project", str(ROOT), "add-node", "gpu01,gpu02"]) == 0
    assert fake.calls[2]["extravars"] == {"nodes": "gpu01,gpu02"}
    assert fake.calls[2]["playbook"].endswith("add_node.yml")
    assert "inventory" not in fake.calls[2]  # none given: the checkout's ansible.cfg decides


def test_a_relative_inventory_path_is_made_absolute(monkeypatch, tmp_path):
    # ansible-runner runs ansible-playbook in its own folder: a path relative to the caller's folder must not reach it
    fake = FakeRunner()
    monkeypatch.setitem(sys.modules, "ansible_runner", fake)
    monkeypatch.setattr(proj.Inventory, "load", classmethod(lambda cls, project, inventory=None: cls(LISTING)))
    (tmp_path / "inventories" / "site").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["--project", str(ROOT), "-i", "inventories/site", "deploy"]) == 0
    assert fake.calls[0]["inventory"] == str(tmp_path / "inventories" / "site")


def test_inventory_load_reads_the_lab_inventory():
    inventory = proj.Inventory.load(ROOT, ROOT / "inventories" / "lab")
    assert len(inventory.hosts) == 19 and inventory.hosts[0] == "lb01"
    assert inventory.groups["control_plane"] == ["cp01", "cp02", "cp03"]
    assert "loadbalancer" in inventory.enabled_layers("gpu07")


def test_inventory_load_reports_a_broken_inventory(tmp_path):
    broken = tmp_path / "hosts.yml"
    broken.write_text("all: [not, a, mapping\n")
    with pytest.raises(proj.UsageError, match="ansible-inventory could not read the inventory"):
        proj.Inventory.load(ROOT, broken)
