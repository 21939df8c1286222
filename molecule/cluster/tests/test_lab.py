"""The 19-host lab after site.yml: every node a systemd host reached over SSH, each with its own identity."""
import pytest

testinfra_hosts = ["ansible://all"]


def test_systemd_and_sshd_run(host):
    state = host.run("systemctl is-system-running").stdout.strip()
    assert state == "running", state
    assert host.service("ssh").is_running


def _name(host):
    return host.ansible.get_variables()["inventory_hostname"]


def test_hostname_is_the_inventory_name(host):
    assert host.check_output("hostname") == _name(host)


def test_admin_user_has_passwordless_sudo(host):
    assert host.run("sudo -n true").rc == 0


def test_python_for_modules(host):
    version = host.check_output("python3 -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])'")
    assert tuple(int(p) for p in version.split(".")) >= (3, 8)


@pytest.fixture(scope="module")
def identities():
    return {}


def test_machine_id_and_host_key_unique(host, identities):
    machine_id = host.file("/etc/machine-id").content_string.strip()
    host_key = host.file("/etc/ssh/ssh_host_ed25519_key.pub").content_string.split()[1]
    name = _name(host)
    for other, (mid, key) in identities.items():
        assert mid != machine_id, "%s and %s share machine-id %s" % (name, other, mid)
        assert key != host_key, "%s and %s share an SSH host key" % (name, other)
    identities[name] = (machine_id, host_key)
