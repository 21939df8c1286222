"""The API's virtual IP follows a working HAProxy: lb01 holds it, lb02 takes it when HAProxy on lb01 stops."""
import os
import socket
import ssl
import time

import pytest
import testinfra

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


def _served_by():
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((VIP, 6443), timeout=10) as raw:
        with context.wrap_socket(raw) as tls:
            tls.sendall(b"GET /whoami HTTP/1.0\r\n\r\n")
            answer = b""
            while True:
                chunk = tls.recv(4096)
                if not chunk:
                    break
                answer += chunk
    return answer.split(b"\r\n\r\n", 1)[1].decode().strip()


def test_keepalived_runs_on_both_and_lb01_holds_the_vip():
    for name in ("lb01", "lb02"):
        assert _node(name).service("keepalived").is_running
    _wait_holder("lb01")
    assert _served_by() in {"cp01", "cp02", "cp03"}


@pytest.fixture
def haproxy_stopped_on_lb01():
    lb01 = _node("lb01")
    lb01.check_output("systemctl stop haproxy")
    yield lb01
    lb01.check_output("systemctl start haproxy")


def test_the_vip_moves_to_lb02_when_haproxy_stops_and_comes_back(haproxy_stopped_on_lb01):
    _wait_holder("lb02")
    assert _served_by() in {"cp01", "cp02", "cp03"}  # the API still answers through the virtual IP
    haproxy_stopped_on_lb01.check_output("systemctl start haproxy")
    _wait_holder("lb01")
    assert _served_by() in {"cp01", "cp02", "cp03"}
