#!/bin/sh
# Lays out one empty disk with a partition in every state gpulab.cluster.ceph_osd_prep must tell apart
# (molecule/osd prepare; also how tests/unit/plugins/fixtures/blockdev was recorded). Needs lvm2 and mdadm.
# Usage: make-osd-states.sh DISK   (an empty disk of 48 GiB or more; a disk with a partition table is refused)
set -eu
disk=$1
if [ -n "$(blkid -p -o value -s PTTYPE "$disk" 2>/dev/null || true)" ]; then
    echo "$disk already has a partition table; refusing" >&2
    exit 1
fi
sfdisk --quiet --label gpt "$disk" <<SFDISK
size=5184MiB, name=data
size=5184MiB, name=files
size=256MiB, name=busy
size=256MiB, name=lvbusy
size=1GiB, name=small
size=5184MiB, name=oldosd
size=128MiB, type=S, name=swap
size=5184MiB, name=lvidle
size=5184MiB, name=clean
size=256MiB, name=raidbusy
size=5184MiB, name=raidold
size=5184MiB, name=olddata
size=5184MiB, name=lvold
size=5184MiB, name=liveosd
SFDISK
udevadm settle
p() { echo "${disk}$1"; }

# 1 data: the Ubuntu installer's empty /data (ext4, mounted, in fstab by UUID)
mkfs.ext4 -q "$(p 1)"
mkdir -p /data
printf '/dev/disk/by-uuid/%s /data ext4 defaults 0 1\n' "$(blkid -s UUID -o value "$(p 1)")" >> /etc/fstab
systemctl daemon-reload
mount /data

# 2 files and 12 olddata: unmounted ext4 holding a dataset
for n in 2 12; do
    mkfs.ext4 -q "$(p $n)"
    mkdir -p /mnt/fill && mount "$(p $n)" /mnt/fill
    mkdir /mnt/fill/dataset && head -c 4M /dev/urandom > /mnt/fill/dataset/shard-0000.bin
    umount /mnt/fill
done

# 3 busy: mounted ext4 holding files
mkfs.ext4 -q "$(p 3)"
mkdir -p /srv/busy && mount "$(p 3)" /srv/busy
echo "results of a running job" > /srv/busy/results.txt

# 4 lvbusy: LVM physical volume whose logical volume is mounted
pvcreate -q "$(p 4)" && vgcreate -q vgbusy "$(p 4)" && lvcreate -q -y -L 128M -n lvbusy vgbusy
mkfs.ext4 -q /dev/vgbusy/lvbusy
mkdir -p /srv/lvm && mount /dev/vgbusy/lvbusy /srv/lvm
echo "database pages" > /srv/lvm/pages.db

# 5 small: clean but below Ceph's minimum OSD size (nothing to do)

# 6 oldosd: an old Ceph OSD (BlueStore label at the start of the device)
printf 'bluestore block device\n%s\n' "$(cat /proc/sys/kernel/random/uuid)" | dd of="$(p 6)" conv=notrunc status=none

# 14 liveosd: an OSD of the running cluster (verify names it in adopted, and holds a lock on it as ceph-osd does)
printf 'bluestore block device\n%s\n' "$(cat /proc/sys/kernel/random/uuid)" | dd of="$(p 14)" conv=notrunc status=none

# 7 swap: active swap
mkswap -q "$(p 7)" >/dev/null && swapon "$(p 7)"

# 8 lvidle: LVM volume group with a logical volume holding data, not active
pvcreate -q "$(p 8)" && vgcreate -q vgidle "$(p 8)" && lvcreate -q -y -L 512M -n lvidle vgidle
mkfs.ext4 -q /dev/vgidle/lvidle
vgchange -q -an vgidle >/dev/null

# 13 lvold: the same, to be destroyed with force
pvcreate -q "$(p 13)" && vgcreate -q vgold "$(p 13)" && lvcreate -q -y -L 512M -n lvold vgold
mkfs.ext4 -q /dev/vgold/lvold
vgchange -q -an vgold >/dev/null

# 9 clean: nothing on it

# 10 raidbusy: member of a running (degraded) RAID1
mdadm --create /dev/md/busy --quiet --run --level=1 --raid-devices=2 --metadata=1.2 "$(p 10)" missing

# 11 raidold: member of an array that is not assembled
mdadm --create /dev/md/old --quiet --run --level=1 --raid-devices=2 --metadata=1.2 "$(p 11)" missing
mdadm --stop /dev/md/old --quiet
udevadm settle
