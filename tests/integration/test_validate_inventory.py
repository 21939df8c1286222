# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""playbooks/validate_inventory.yml run for real: passes the site inventories, names every planted mistake.

The runs are independent and take about 1.5 s each, so they run in parallel, once per module.
"""

from __future__ import absolute_import, division, print_function

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

__metaclass__ = type

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HERE = os.path.join(ROOT, "tests", "integration", "inventories")
PLAYBOOK = os.path.join(ROOT, "playbooks", "validate_inventory.yml")
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")

# run id -> (inventory, extra arguments)
RUNS = {
    "production": (os.path.join(ROOT, "inventories", "production"), []),
    "lab": (os.path.join(ROOT, "inventories", "lab"), []),
    "bad_groups": (os.path.join(HERE, "bad_groups"), []),
    "bad_addresses": (os.path.join(HERE, "bad_addresses"), []),
    "bad_variables": (os.path.join(HERE, "bad_variables"), []),
    "bad_storage": (os.path.join(HERE, "bad_storage"), []),
    "bad_operations": (os.path.join(HERE, "bad_operations"), []),
    # the README's repair command: validation still runs under --tags and --limit
    "bad_addresses repair": (os.path.join(HERE, "bad_addresses"), ["--tags", "swap", "--limit", "gpu01"]),
}


def _run(inventory, extra):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0")
    # None of these addresses is reachable: a host contacted by mistake would time out and fail the run.
    env["ANSIBLE_TIMEOUT"] = "2"
    result = subprocess.run([ANSIBLE_PLAYBOOK, "-i", inventory, PLAYBOOK] + extra, cwd=ROOT, env=env, check=False,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=120)
    return result.returncode, result.stdout


@pytest.fixture(scope="module")
def runs():
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = dict((name, pool.submit(_run, *args)) for name, args in RUNS.items())
        return dict((name, future.result()) for name, future in futures.items())


@pytest.mark.parametrize("name, summary", [
    ("production", "inventory OK: 19 hosts (1 loadbalancer, 3 control_plane, 15 workers)"),
    ("lab", "inventory OK: 19 hosts (1 loadbalancer, 3 control_plane, 15 workers)"),
])
def test_valid_inventory_passes(runs, name, summary):
    rc, output = runs[name]
    assert rc == 0, output
    assert summary in output
    assert "unreachable=0" in output and "failed=0" in output


# Each tuple: words found together on one line of the failure.
MISTAKES = {
    "bad_groups": [
        ("control_plane", "cp01", "cp02", "odd"),
        ("cp02", "control_plane", "workers"),
        ("spare01",),
        ("'GPU02'",),
    ],
    "bad_addresses": [
        ("10.30.0.101", "gpu01", "gpu02"),
        ("gpu03", "10.31.0.103", "10.30.0.0/24"),
        ("gpu04", "10.30.0.255", "broadcast"),
        ("gpu05", "no ansible_host"),
        ("gpu06", "gpu06.broken.lan"),
    ],
    "bad_variables": [
        ("gpulab_domain", "not set"),
        ("gpulab_control_plane_endpoint", "10.30.0.11", "cp01", "lb01"),
        ("gpulab_control_plane_port", "70000"),
        ("gpulab_pod_subnet", "10.96.0.0/16", "gpulab_service_subnet", "10.96.0.0/12"),
        ("'kubernets'", "'kubernetes'"),
        ("gpulab_admin_user", "site_admin"),
    ],
    "bad_storage": [
        ("cp01", "storage_osd", "workers"),
        ("gpu04", "storage_osd_devices is empty"),
        ("gpu05", "storage_osd_force_devices", "/dev/sdb"),
        ("gpu06", "storage_osd_devices", "'sdb'", "/dev/"),
    ],
    "bad_operations": [
        ("gpulab_rollout_workers is 2", "gpu01 and gpu02", "3 copies"),
        ("gpulab_tenants Vision", "not a valid namespace name"),
        ("gpulab_tenants language.quota.memory '2Gi'", "below the LimitRange's max.memory '3584Mi'"),
        ("gpulab_tenants old-team", "delete_data is True", "repeat the tenant's name"),
        ("gpulab_timezone 'Europe/Berln'", "IANA"),
        ("gpulab_day_use items 1 and 2 overlap", "on fri", "18:30-22:00"),
        ("gpulab_metallb_pool item 1 192.168.50.110-192.168.50.120", "ansible_host of gpu10", "gpu15"),
    ],
}
MISTAKES["bad_addresses repair"] = MISTAKES["bad_addresses"]


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_mistakes_fail_and_are_named(runs, name):
    rc, output = runs[name]
    assert rc != 0, output
    assert "inventory has %d problem(s):" % len(MISTAKES[name]) in output, output
    lines = output.splitlines()
    for words in MISTAKES[name]:
        assert any(all(word in line for word in words) for line in lines), (words, output)
    assert "inventory OK" not in output
