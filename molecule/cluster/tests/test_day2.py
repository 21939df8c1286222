"""Day two on the converged lab: the gpulab command and the playbooks that can run here (runs once, on the controller).

After converge and idempotence: refusals that run nothing, status, plan and repair of a converged site, and one
node taken out (remove_node.yml: on the lab there is no Kubernetes or Ceph to drain, so it resets the host) and
added back with `gpulab add-node`, which must touch only that host's layers.
"""
import json
import os
import re
import subprocess
import sys

import pytest
import testinfra

PROJECT = os.environ["MOLECULE_PROJECT_DIRECTORY"]
INVENTORY = os.path.join(PROJECT, "inventories", "lab")
RECORD = "/etc/gpulab/cluster.json"


def _env():
    env = dict(os.environ)
    env.pop("GPULAB_SUMMARY_DIR", None)  # keep these runs out of the converge's check-vs-run comparison
    return env


def gpulab(*args):
    return subprocess.run([sys.executable, "-m", "gpulab_cli", "--project", PROJECT, "-i", INVENTORY] + list(args),
                          capture_output=True, text=True, env=_env(), timeout=1200, check=False)


def playbook(name, *args):
    return subprocess.run(["ansible-playbook", "-i", INVENTORY, os.path.join(PROJECT, "playbooks", name)] + list(args),
                          capture_output=True, text=True, env=_env(), cwd=PROJECT, timeout=1200, check=False)


def run_summary(result):
    """The gpulab.cluster.summary JSON of a gpulab run, from the artifacts folder it names last."""
    folder = re.findall(r"ansible-runner artifacts: (\S+)", result.stdout)[-1]
    with open(os.path.join(folder, "summary.json")) as handle:
        return json.load(handle)


def node(name):
    return testinfra.get_host("ansible://%s" % name, ansible_inventory=INVENTORY)


def test_refusals_run_nothing_and_list_the_choices():
    result = gpulab("repair", "nosuch", "--node", "gpu01")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no layer 'nosuch'; layers: preflight, node, container_runtime" in result.stderr
    assert "Nothing was run." in result.stderr and "artifacts" not in result.stdout
    result = gpulab("repair", "loadbalancer", "--node", "gpu01")
    assert result.returncode == 2
    assert "does not run on gpu01 (it runs on lb01); layers of gpu01: preflight, node, container_runtime, nvidia" \
        in result.stderr
    result = gpulab("add-node", "gpu16")
    assert result.returncode == 2 and "gpu16 not in the inventory; inventory hosts: lb01, cp01" in result.stderr


def test_add_node_refuses_a_host_of_the_cluster():
    result = gpulab("add-node", "gpu01")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "gpu01 is in the cluster already (%s)" % RECORD in result.stdout
    assert "inventory hosts not in the cluster: none" in result.stdout
    assert run_summary(result)["totals"]["hosts_changed"] == 0


def test_reset_and_remove_node_need_confirmation_by_name():
    result = playbook("reset.yml", "-e", "nodes=gpu15")
    assert result.returncode != 0 and "needs -e confirm=gpu15" in result.stdout
    result = playbook("remove_node.yml", "-e", "node=gpu15", "-e", "confirm=gpu14")
    assert result.returncode != 0 and "removing gpu15 needs -e confirm=gpu15" in result.stdout
    result = playbook("remove_node.yml", "-e", "node=cp01", "-e", "confirm=cp01")
    assert result.returncode != 0 and "cp01 is the first control plane" in result.stdout
    result = playbook("remove_node.yml", "-e", "node=cp03", "-e", "confirm=cp03")
    assert result.returncode != 0 and "would leave 2 control planes; etcd needs an odd number" in result.stdout
    result = playbook("remove_node.yml", "-e", "node=gpu15", "-e", "confirm=gpu15", "--limit", "gpu15")
    assert result.returncode != 0 and "needs -e confirm=gpu15 and no --limit" in result.stdout
    assert node("gpu15").file(RECORD).exists


def test_status_shows_every_host_a_member():
    result = gpulab("status")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if re.match(r"^(lb|cp|gpu)\d\d ", line)]
    assert len(rows) == 19
    assert all(row[2:4] == ["yes", "gpulab-lab"] for row in rows), rows
    assert all(row[-1] == "none" for row in rows if row[0].startswith("gpu"))  # no GPU in a container
    assert "Kubernetes: no cluster (no /etc/kubernetes/admin.conf on cp01)" in result.stdout


def test_plan_and_repair_of_a_converged_host_change_nothing():
    result = gpulab("plan", "--limit", "gpu03")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "nothing: every host is as the inventory describes it" in result.stdout
    assert run_summary(result)["check_mode"] is True
    result = gpulab("repair", "container_runtime", "--node", "gpu02")
    assert result.returncode == 0, result.stdout + result.stderr
    summary = run_summary(result)
    assert set(summary["hosts"]) <= {"gpu02", "localhost"}
    assert summary["hosts"]["gpu02"]["ok"] > 5 and summary["totals"]["hosts_changed"] == 0
    assert re.search(r"^layer container_runtime +1 hosts", result.stdout, re.M)


@pytest.mark.parametrize("name, take_out, own_layers, elsewhere", [
    ("gpu15", ["remove_node.yml", "-e", "node=gpu15", "-e", "confirm=gpu15"],
     ["preflight", "node", "container_runtime", "nvidia"], None),
    # A control plane (remove_node.yml refuses to leave two: reset.yml, as for a lost one): the load balancer's layer
    # runs too (HAProxy's backends), on lb01 alone.
    ("cp03", ["reset.yml", "-e", "nodes=cp03", "-e", "confirm=cp03"],
     ["preflight", "node", "container_runtime"], "loadbalancer"),
])
def test_take_out_then_add_node_touches_only_that_host(name, take_out, own_layers, elsewhere):
    result = playbook(*take_out)
    assert result.returncode == 0, result.stdout + result.stderr
    host = node(name)
    assert not host.file(RECORD).exists
    result = gpulab("add-node", name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(host.file(RECORD).content_string) == {"cluster": "gpulab-lab"}
    for layer in own_layers:
        assert re.search(r"^layer %s +1 hosts" % layer, result.stdout, re.M), result.stdout
    layers_run = re.findall(r"^layer (\w+) ", result.stdout, re.M)
    assert sorted(layers_run) == sorted(own_layers + ([elsewhere] if elsewhere else [])), layers_run
    if elsewhere:
        assert re.search(r"^layer %s +1 hosts" % elsewhere, result.stdout, re.M)
        assert run_summary(result)["hosts"]["lb01"]["ok"] > 5
    changed = {h: row["changed_by_layer"] for h, row in run_summary(result)["hosts"].items() if row["changed"]}
    assert list(changed) == [name], changed
