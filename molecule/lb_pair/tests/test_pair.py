"""The API's virtual IP follows a working HAProxy: lb01 holds it, lb02 takes it when HAProxy on lb01 stops."""
import os
import time

import pytest
import testinfra
from standin_client import served_by

VIP = "10.77.19.9"  # gpulab_control_plane_vip of this scenario's inventory


@pytest.fixture(autouse=True)
def only_once(host):
    """Molecule's verifier runs every test on every host; these drive both load balancers from the controller."""
    if host.backend.get_hostname() != "lb01":
        pytest.skip("run once, from lb01's turn")


def _node(name):
    inventory = os.path.join(os.environ["MOLECULE_SCENARIO_DIRECTORY"], "inventory", "hosts.yml")
    return testinfra.get_host("ansible://%s" % name, ansible_inventory=inventory, sudo=True)


def _holder():
    """Which load balancer has the virtual IP on an interface ('' when none)."""
    holders = [name for name in ("lb01", "lb02") if " %s/" % VIP in _node(name).check_output("ip -4 -o addr show")]
    assert len(holders) <= 1, "both load balancers hold %s" % VIP
    return holders[0] if holders else ""


def _wait_holder(name, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if _holder() == name:
            return
        time.sleep(1)
    raise AssertionError("%s did not take %s within %ds (holder: %r)" % (name, VIP, seconds, _holder()))


def test_keepalived_runs_on_both_and_lb01_holds_the_vip():
    for name in ("lb01", "lb02"):
        assert _node(name).service("keepalived").is_running
    _wait_holder("lb01")
    assert served_by(VIP) in {"cp01", "cp02", "cp03"}


@pytest.fixture
def haproxy_stopped_on_lb01():
    lb01 = _node("lb01")
    lb01.check_output("systemctl stop haproxy")
    yield lb01
    lb01.check_output("systemctl start haproxy")


def test_the_vip_moves_to_lb02_when_haproxy_stops_and_comes_back(haproxy_stopped_on_lb01):
    _wait_holder("lb02")
    assert served_by(VIP) in {"cp01", "cp02", "cp03"}  # the API still answers through the virtual IP
    haproxy_stopped_on_lb01.check_output("systemctl start haproxy")
    _wait_holder("lb01")
    assert served_by(VIP) in {"cp01", "cp02", "cp03"}
