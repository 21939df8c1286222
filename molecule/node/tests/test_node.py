"""The node layer on a real kernel, after a reboot: disk layout, kernel, sysctl, sshd, firewall."""
import subprocess

testinfra_hosts = ["ansible://all"]


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
    result = subprocess.run(
        ["ssh", "-p", "2232", "-o", "BatchMode=yes", "-o", "PreferredAuthentications=password",
         "-o", "PubkeyAuthentication=no", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "root@127.0.0.1", "true"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 255, result.stderr
    assert "Permission denied" in result.stderr


def test_firewall_loaded_with_drop_policy(host):
    ruleset = host.check_output("sudo nft list ruleset")
    assert "policy drop" in ruleset
    assert "10250" in ruleset  # kubelet, on every node
    assert "30000-32767" in ruleset  # NodePorts, on workers
