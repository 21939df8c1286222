"""Node-level truth on the VM: a real kernel with its own block devices (not a container)."""

testinfra_hosts = ["ansible://all"]


def test_real_kernel_not_a_container(host):
    virt = host.run("systemd-detect-virt --container")
    assert virt.rc != 0, "the node scenario must run on a VM, got container %s" % virt.stdout
    assert host.run("systemd-detect-virt --vm").stdout.strip() in ("qemu", "kvm")


def test_extra_disks_are_real_block_devices(host):
    for disk in ("/dev/vdb", "/dev/vdc"):
        assert host.run("test -b %s" % disk).rc == 0, disk
        size = int(host.run("lsblk -bdno SIZE %s" % disk).stdout.strip())
        assert size == 8 * 1024 ** 3, (disk, size)


def test_admin_user_has_passwordless_sudo(host):
    assert host.run("sudo -n true").rc == 0


def test_sshd_runs(host):
    assert host.service("ssh").is_running
