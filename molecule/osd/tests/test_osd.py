"""molecule/osd: ceph_osd_prep on a real kernel, after the converge (see files/make-osd-states.sh for the states).

The converged devices are clean and stay unmounted; every refused device is refused again here, with the reason
named, and what it holds is byte for byte what prepare recorded.
"""
import pytest

testinfra_hosts = ["ansible://all"]

MODULE = "gpulab.cluster.ceph_osd_prep"
DISK = "/dev/vdb"
MARKER = "#gpulab.cluster.ceph_osd_prep# "


def prep(host, check=False, **args):
    """Run the module on the VM; (failed, result). testinfra's ansible runner drops the "failed" key of a failed
    module; a module result with a message is a failure here (a success of this module carries none)."""
    text = " ".join("%s=%s" % (key, value) for key, value in args.items())
    try:
        result = host.ansible(MODULE, text, check=check, become=True)
    except host.ansible.AnsibleException as exc:
        result = dict(exc.result, failed=True)
    return bool(result.get("failed")) or "msg" in result, result


@pytest.mark.parametrize("label", ["data", "oldosd", "raidold", "olddata", "lvold", "clean"])
def test_converged_partitions_carry_no_signature(host, label):
    device = host.run("readlink -f /dev/disk/by-partlabel/%s", label).stdout.strip()
    assert device.startswith(DISK)
    with host.sudo():
        probe = host.run("wipefs --no-act --noheadings %s", device)
        blkid = host.run("blkid -p -o export %s", device).stdout
        head = host.run("head -c 22 %s | od -An -c", device).stdout
    assert probe.rc == 0 and probe.stdout.strip() == "", probe.stdout
    # blkid still reports the GPT entry (PART_ENTRY_*), which the partition keeps; no content type is left
    assert "PART_ENTRY_NAME=%s" % label in blkid
    assert not [line for line in blkid.splitlines() if line.startswith(("TYPE=", "USAGE=", "UUID="))], blkid
    assert "b   l   u   e" not in head


def test_data_is_unmounted_and_its_fstab_line_commented_not_deleted(host):
    assert not host.mount_point("/data").exists
    fstab = host.file("/etc/fstab").content_string.splitlines()
    commented = [line for line in fstab if line.startswith(MARKER)]
    assert len(commented) == 1 and commented[0].endswith(" /data ext4 defaults 0 1")
    assert not [line for line in fstab if " /data " in line and not line.startswith("#")]
    assert "data.mount" not in host.run("systemctl list-units --all --plain --no-legend 'data.mount'").stdout


def test_the_forced_volume_group_is_gone_and_the_idle_one_stays(host):
    with host.sudo():
        vgs = host.run("vgs --noheadings -o vg_name").stdout.split()
    assert "vgold" not in vgs
    assert "vgidle" in vgs and "vgbusy" in vgs


def test_a_second_check_reports_ready_and_the_stable_name_for_rook(host):
    failed, result = prep(host, check=True, device="/dev/disk/by-partlabel/data", wipe="true")
    assert not failed
    assert result["changed"] is False and result["ready"] is True and result["actions"] == []
    assert result["rook_device"] == "/dev/disk/by-id/virtio-gpulab-vmosd-disk1-part1"
    assert host.run("readlink -f %s", result["rook_device"]).stdout.strip() == DISK + "1"
    assert result["size_bytes"] == 5184 * 1024 * 1024 and result["kind"] == "part"


@pytest.mark.parametrize("device, force, reason", [
    ("/dev/vda", True, "/dev/vda: it holds /."),
    (DISK, True, "its partition /dev/vdb3 is in use: it is mounted at /srv/busy and holds files (results.txt)"),
    (DISK + "2", False, "/dev/vdb2's ext4 filesystem holds files (dataset). Set force=true"),
    (DISK + "3", True, "/dev/vdb3: it is mounted at /srv/busy and holds files (results.txt)"),
    (DISK + "4", True, "LVM physical volume of vgbusy whose logical volume /dev/vgbusy/lvbusy is in use"),
    (DISK + "5", True, "its size, 1.0 GiB, is below Ceph's minimum OSD size of 5.0 GiB"),
    (DISK + "7", True, "/dev/vdb7: it is active swap"),
    (DISK + "8", False, "volume group vgidle holds the logical volume(s) /dev/vgidle/lvidle. Set force=true"),
    (DISK + "10", True, "member of the running RAID array /dev/md127"),
    (DISK + "14", False, "/dev/vdb14 is a Ceph OSD (BlueStore label): its objects are the cluster's data. Set force=true"),
])
def test_refused_devices_are_refused_with_the_reason(host, device, force, reason):
    failed, result = prep(host, device=device, wipe="true", force=str(force).lower())
    assert failed, result
    assert reason in result["msg"]
    assert result["msg"].endswith("Nothing was changed.")
    assert result["changed"] is False


def test_a_file_is_not_a_device(host):
    failed, result = prep(host, device="/etc/hostname", wipe="true")
    assert failed and "a file, not a block device" in result["msg"]


def test_refused_devices_hold_what_they_held(host):
    # after the converge and the refusals above (pytest runs this file in order)
    with host.sudo():
        recorded = host.run("cat /root/osd-refused.sha256").stdout.splitlines()
        assert len(recorded) == 3
        for line in recorded:
            device, digest = line.split()[0], line.split()[1]
            now = host.run("head -c 16M %s | sha256sum", device).stdout.split()[0]
            assert now == digest, "%s changed" % device
        assert host.run("mount -o ro %s2 /mnt/fill", DISK).rc == 0
        try:
            check = host.run("sha256sum --check /root/osd-files.sha256")
        finally:
            host.run("umount /mnt/fill")
    assert check.rc == 0, check.stdout + check.stderr
    assert host.mount_point("/srv/busy").exists and host.mount_point("/srv/lvm").exists
    assert DISK + "7" in host.file("/proc/swaps").content_string
    assert "md127 : active raid1 vdb10" in host.file("/proc/mdstat").content_string


def test_the_clusters_own_osd_is_left_alone(host):
    failed, result = prep(host, device="/dev/disk/by-partlabel/liveosd", wipe="true", force="true",
                          adopted="/dev/disk/by-partlabel/liveosd")
    assert not failed, result
    assert result["adopted"] is True and result["changed"] is False and result["actions"] == []
    with host.sudo():
        head = host.run("head -c 22 %s14", DISK).stdout
    assert head == "bluestore block device"


LOCKER = (
    "import fcntl, os, time\n"
    "fd = os.open('/dev/vdb14', os.O_RDWR)\n"
    "fcntl.lockf(fd, fcntl.LOCK_EX)\n"
    "open('/run/osd-lock.pid', 'w').write(str(os.getpid()))\n"
    "time.sleep(120)\n"
)


def test_a_device_a_running_process_holds_locked_is_refused_even_with_force(host):
    # ceph-osd locks its block device; a process holds the same kind of lock while the module looks
    with host.sudo():
        host.run("printf %s > /run/osd-locker.py", LOCKER)
        holder = host.run("nohup python3 /run/osd-locker.py >/dev/null 2>&1 & "
                          "for i in 1 2 3 4 5 6 7 8 9 10; do test -s /run/osd-lock.pid && break; sleep 1; done; "
                          "test -s /run/osd-lock.pid")
    assert holder.rc == 0, holder.stderr
    try:
        failed, result = prep(host, device=DISK + "14", wipe="true", force="true")
    finally:
        with host.sudo():
            host.run("kill $(cat /run/osd-lock.pid); rm -f /run/osd-lock.pid /run/osd-locker.py")
    assert failed
    assert "/dev/vdb14: a running process holds it locked (a Ceph OSD locks its device so)" in result["msg"]
    with host.sudo():
        assert host.run("head -c 22 %s14", DISK).stdout == "bluestore block device"
