"""The node layer on a real kernel, after a reboot: disk layout, kernel, sysctl, sshd, firewall."""
import os
import socket
import subprocess
import time

import pytest
import yaml

testinfra_hosts = ["ansible://all"]

# create.yml forwards these loopback ports to the VM: one to a port the firewall opens to the node network
# (the kubelet's), one to a port no rule opens. qemu's user network delivers them from 10.0.2.2, an address
# of the node network (gpulab_node_network 10.0.2.0/24 in this scenario's inventory).
PROBES = {"open": (2250, 10250), "closed": (2299, 9999)}


def _ssh_port():
    path = os.path.join(os.environ["MOLECULE_SCENARIO_DIRECTORY"], "inventory", "hosts.yml")
    with open(path, encoding="utf-8") as handle:
        hosts = yaml.safe_load(handle)["all"]["children"]["workers"]["hosts"]
    return int(next(iter(hosts.values()))["ansible_port"])


def _http_answer(port, timeout=15.0):
    """The first bytes an HTTP server behind 127.0.0.1:port answers, or '' when nothing comes back."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return sock.recv(64).decode("ascii", "replace")
    except ConnectionRefusedError:  # nothing listens on the host side: the forward is missing, not a firewall
        raise
    except OSError:  # qemu accepts on the host side, then closes when the guest never answers
        return ""


def test_disk_layout_created_and_mounted_after_reboot(host):
    parts = host.check_output("lsblk -nro PARTLABEL,FSTYPE,MOUNTPOINT /dev/vdb").splitlines()
    assert any(p.split()[:3] == ["srv", "ext4", "/srv/gpulab"] for p in parts), parts
    assert any(p.split() == ["data"] for p in parts), parts  # raw, no filesystem: kept for a Ceph OSD
    fstab = host.file("/etc/fstab").content_string
    assert any(line.startswith("UUID=") and " /srv/gpulab " in " %s " % " ".join(line.split())
               for line in fstab.splitlines()), fstab


def test_kernel_modules_and_sysctls_live(host):
    modules = host.check_output("cut -d' ' -f1 /proc/modules").split()
    assert "overlay" in modules and "br_netfilter" in modules
    assert host.check_output("cat /proc/sys/net/ipv4/ip_forward") == "1"
    assert host.check_output("cat /proc/sys/net/bridge/bridge-nf-call-iptables") == "1"


def test_sshd_refuses_root_and_passwords(host):
    config = host.check_output("sudo sshd -T")
    settings = dict(line.split(None, 1) for line in config.splitlines() if " " in line)
    assert settings["permitrootlogin"] == "no"
    assert settings["passwordauthentication"] == "no"
    assert settings["kbdinteractiveauthentication"] == "no"


def test_password_login_is_refused_from_outside():
    """sshd names the methods it still accepts when it refuses: public keys only, for root and for the admin."""
    for user in ("root", "gpulab"):
        result = subprocess.run(
            ["ssh", "-p", str(_ssh_port()), "-o", "BatchMode=yes", "-o", "PubkeyAuthentication=no",
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "%s@127.0.0.1" % user, "true"],
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert result.returncode == 255, result.stderr
        assert "Permission denied (publickey)." in result.stderr, (user, result.stderr)


def test_firewall_loaded_with_drop_policy(host):
    ruleset = host.check_output("sudo nft list ruleset")
    assert "policy drop" in ruleset
    assert "10250" in ruleset  # kubelet, on every node
    assert "30000-32767" in ruleset  # NodePorts, on workers


@pytest.fixture(name="listeners")
def fixture_listeners(host):
    """An HTTP server on each probed guest port, proven to answer inside the VM before any probe."""
    units = []
    for _host_port, guest_port in PROBES.values():
        unit = "gpulab-probe-%d" % guest_port
        host.run("sudo systemctl stop %s", unit)
        host.check_output("sudo systemd-run --collect --unit %s python3 -m http.server %s", unit, str(guest_port))
        units.append(unit)
    for _host_port, guest_port in PROBES.values():
        for _attempt in range(30):
            local = host.run("python3 -c \"import urllib.request as u; u.urlopen('http://127.0.0.1:%s/', timeout=5)\"",
                             str(guest_port))
            if local.rc == 0:
                break
            time.sleep(1)
        assert local.rc == 0, "the probe server on guest port %d does not answer inside the VM: %s" % (
            guest_port, local.stderr)
    yield
    for unit in units:
        host.run("sudo systemctl stop %s", unit)


@pytest.mark.usefixtures("listeners")
def test_firewall_lets_the_kubelet_port_through_from_the_node_network():
    assert _http_answer(PROBES["open"][0]).startswith("HTTP/1.0 200")


@pytest.mark.usefixtures("listeners")
def test_firewall_drops_a_port_no_rule_opens():
    assert _http_answer(PROBES["closed"][0]) == ""
