"""HAProxy on lb01 in front of the stand-in API servers of cp01-03: only ready backends get connections."""
import os
import time

import pytest
import testinfra
from standin_client import served_by

testinfra_hosts = ["ansible://lb01"]


@pytest.fixture(autouse=True)
def only_on_lb01(host):
    """Molecule's verifier runs every test on every host (its `hosts: all` wins over testinfra_hosts)."""
    if host.backend.get_hostname() != "lb01":
        pytest.skip("the load balancer is lb01")


LB = ("10.77.19.10", 6443)  # lb01 in inventories/lab
CONTROL_PLANES = {"cp01", "cp02", "cp03"}


def _inventory():
    return os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "inventories", "lab")


def _node(name):
    return testinfra.get_host("ansible://%s" % name, ansible_inventory=_inventory(), sudo=True)


def _state(host, server):
    """HAProxy's view of one backend server (UP, DOWN, ...), from its statistics page on lb01's loopback."""
    csv = host.check_output("python3 -c \"import urllib.request as u; "
                            "print(u.urlopen('http://127.0.0.1:8404/stats;csv').read().decode())\"")
    for line in csv.splitlines():
        fields = line.split(",")
        if fields[:2] == ["kubernetes-api", server]:
            return fields[17]
    raise AssertionError("server %s not in HAProxy's statistics:\n%s" % (server, csv))


def _wait_state(host, server, wanted, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if _state(host, server).startswith(wanted):
            return
        time.sleep(1)
    raise AssertionError("%s did not become %s in %ds (now %s)" % (server, wanted, seconds, _state(host, server)))


def test_haproxy_runs_with_a_checked_config_and_private_stats(host):
    assert host.service("haproxy").is_running and host.service("haproxy").is_enabled
    assert host.run("sudo haproxy -c -f /etc/haproxy/haproxy.cfg").rc == 0
    assert host.socket("tcp://0.0.0.0:6443").is_listening
    assert host.socket("tcp://127.0.0.1:8404").is_listening
    assert not host.socket("tcp://0.0.0.0:8404").is_listening


def test_every_ready_control_plane_serves_through_the_lb(host):
    for server in sorted(CONTROL_PLANES):
        _wait_state(host, server, "UP")
    assert {served_by(*LB) for dummy in range(9)} == CONTROL_PLANES


@pytest.fixture
def cp02_not_ready():
    cp02 = _node("cp02")
    cp02.check_output("rm -f /run/gpulab-standin/ready")
    yield cp02
    cp02.check_output("touch /run/gpulab-standin/ready")


def test_a_backend_failing_readyz_is_taken_out_and_comes_back(host, cp02_not_ready):
    _wait_state(host, "cp02", "DOWN")
    assert "cp02" not in {served_by(*LB) for dummy in range(9)}
    cp02_not_ready.check_output("touch /run/gpulab-standin/ready")
    _wait_state(host, "cp02", "UP")
    assert "cp02" in {served_by(*LB) for dummy in range(12)}
