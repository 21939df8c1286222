"""Swap from a file, a partition and a unit outside fstab: off after the converge and still off after a reboot."""

testinfra_hosts = ["ansible://all"]

MARKER = "#gpulab.cluster.swap#"


def test_the_vm_really_rebooted_since_the_converge(host):
    before = host.file("/var/tmp/gpulab-boot-id-before-reboot").content_string.strip()
    now = host.file("/proc/sys/kernel/random/boot_id").content_string.strip()
    assert before and before != now


def test_no_swap_is_active(host):
    assert host.file("/proc/swaps").content_string.strip().splitlines()[1:] == []
    assert host.run("swapon --show --noheadings").stdout.strip() == ""


def test_fstab_swap_lines_are_kept_and_commented(host):
    lines = host.file("/etc/fstab").content_string.splitlines()
    live_swap = [line for line in lines if not line.lstrip().startswith("#") and " swap " in " %s " % " ".join(line.split())]
    assert live_swap == []
    commented = [line for line in lines if line.startswith(MARKER)]
    assert any("/swap.img" in line for line in commented), commented
    assert any(line[len(MARKER):].lstrip().startswith("UUID=") for line in commented), commented


def test_swap_unit_outside_fstab_stays_down(host):
    unit = "'dev-disk-by\\x2dlabel-unitswap.swap'"
    assert host.run("systemctl is-active %s" % unit).stdout.strip() == "inactive"
    # masked (a /dev/null link) or, for a unit file in /etc, kept down by the module's drop-in
    enabled = host.run("systemctl is-enabled %s" % unit).stdout.strip()
    dropins = host.run("systemctl cat %s" % unit).stdout
    assert enabled == "masked" or "gpulab.cluster.swap" in dropins, (enabled, dropins)
