"""The one root filesystem build shared by lab containers and lab VMs.

1. `debootstrap_tarball`: debootstrap --variant=minbase of the distro with a flavor's packages, cached as
   an uncompressed tarball under build/lab/cache/ (the slow, network-bound step; independent of keys).
2. `prepare`: unpack the tarball into a scratch directory and make it a lab host: empty machine-id, no
   SSH host keys (generated per host at first boot), the admin user with the lab key and passwordless
   sudo, apt sources from the mirror, then the flavor's own touches (container or VM).

Containers import the prepared directory into podman; VMs turn it into a raw ext4 image. Image caches are
keyed by `fingerprint`, which covers this file, so changing what an image contains rebuilds it.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from . import distro as distro_mod
from .util import CACHE, LOGS, TMP, LabError, Timer, locked, log, require_root, run, run_logged, which

HOSTKEYS_UNIT = "gpulab-ssh-hostkeys.service"


@dataclass(frozen=True)
class Provision:
    """What makes a debootstrap tree a lab host."""
    distro: distro_mod.Distro
    flavor: str  # "container" or "vm"
    admin_user: str
    pubkey: str
    mirror: str

    def apt_sources(self) -> str:
        return distro_mod.image_sources(self.distro, self.mirror)

    def fingerprint(self) -> str:
        """Changes whenever the image built from this would differ."""
        digest = hashlib.sha256()
        for part in (self.distro.name, self.flavor, self.admin_user, self.pubkey.strip(), self.apt_sources(),
                     distro_mod.host_apt_conf(), _tarball_name(self.distro, self.flavor)):
            digest.update(part.encode() + b"\0")
        digest.update(Path(__file__).read_bytes())
        return digest.hexdigest()[:12]


def _tarball_name(distro, flavor: str) -> str:
    pkgs = ",".join(distro.packages(flavor))
    key = hashlib.sha256(f"{distro.suite}|{distro.components}|{pkgs}".encode()).hexdigest()[:10]
    return f"{distro.name}-{flavor}-{key}.tar"


def debootstrap_tarball(distro, flavor: str, mirror: str) -> Path:
    """The cached minbase tarball of `distro` with the flavor's packages, built if missing."""
    tarball = CACHE / _tarball_name(distro, flavor)
    if tarball.is_file():
        return tarball
    require_root("building a lab image")
    with locked(f"debootstrap-{tarball.stem}"):
        if tarball.is_file():  # another run built it while we waited
            return tarball
        debootstrap = which("debootstrap")
        keyring = distro_mod.keyring(distro)
        target = TMP / tarball.stem
        remove_tree(target)
        target.mkdir(parents=True)
        timer = Timer()
        log(f"debootstrap {distro.suite} ({flavor}) from {mirror} - a few minutes, log in {LOGS}")
        run_logged(
            [debootstrap, "--variant=minbase", "--arch=amd64", f"--components={','.join(distro.components)}",
             f"--include={','.join(distro.packages(flavor))}", f"--keyring={keyring}",
             distro.suite, target, mirror],
            LOGS / f"debootstrap-{tarball.stem}.log", env={"DEBIAN_FRONTEND": "noninteractive"},
            what=f"debootstrap of {distro.suite} from {mirror} (set LAB_MIRROR to use another mirror)")
        # Package caches are not part of the image.
        run([which("chroot"), target, "apt-get", "clean"])
        for lists in (target / "var/lib/apt/lists").glob("*_*"):
            lists.unlink()
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = tarball.with_suffix(".partial")
        run([which("tar"), "--numeric-owner", "--xattrs", "-C", target, "-cf", partial, "."])
        partial.rename(tarball)
        remove_tree(target)
        for older in CACHE.glob(f"{distro.name}-{flavor}-*.tar"):  # an older package list's
            if older != tarball:
                older.unlink()
        log(f"cached {tarball.name} ({tarball.stat().st_size >> 20} MiB) in {timer}")
    return tarball


def prepare(spec: Provision, workdir: Path) -> Path:
    """Unpack the cached tarball into workdir/rootfs and make it a lab host of the spec's flavor."""
    require_root("building a lab image")
    tarball = debootstrap_tarball(spec.distro, spec.flavor, spec.mirror)
    root = workdir / "rootfs"
    remove_tree(root)
    root.mkdir(parents=True)
    run([which("tar"), "--numeric-owner", "--xattrs", "-C", root, "-xf", tarball])
    _common(root, spec)
    if spec.flavor == "vm":
        _vm(root)
    else:
        _container(root)
    return root


def _write(root: Path, path: str, text: str, mode: int = 0o644) -> Path:
    dest = root / path.lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text, encoding="utf-8")
    dest.chmod(mode)
    return dest


def _enable(root: Path, unit: str, target: str = "multi-user.target") -> None:
    """`systemctl enable` without running systemctl: the [Install] symlink."""
    wants = root / "etc/systemd/system" / f"{target}.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / unit
    if link.is_symlink() or link.exists():
        link.unlink()
    src = f"/etc/systemd/system/{unit}"
    if not (root / src.lstrip("/")).exists():
        src = f"/lib/systemd/system/{unit}"
    link.symlink_to(src)


def _common(root: Path, spec: Provision) -> None:
    chroot = which("chroot")
    user = spec.admin_user
    # Identity: systemd generates a machine-id per host at first boot (an image-wide id would give every
    # container the same MAC address and break the bridge); sshd host keys likewise.
    _write(root, "/etc/machine-id", "", 0o444)
    dbus_id = root / "var/lib/dbus/machine-id"
    if dbus_id.exists() and not dbus_id.is_symlink():
        dbus_id.unlink()
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    _write(root, f"/etc/systemd/system/{HOSTKEYS_UNIT}", (
        "[Unit]\n"
        "Description=Generate this host's own SSH host keys (gpulab lab, first boot)\n"
        "Before=ssh.service\n"
        "ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key\n\n"
        "[Service]\n"
        "Type=oneshot\n"
        "ExecStart=/usr/bin/ssh-keygen -A\n"
        "RemainAfterExit=yes\n\n"
        "[Install]\n"
        "WantedBy=multi-user.target ssh.service\n"))
    _enable(root, HOSTKEYS_UNIT)
    _enable(root, HOSTKEYS_UNIT, "ssh.service")
    _write(root, "/etc/ssh/sshd_config.d/gpulab-lab.conf", (
        "# gpulab lab: keys only; the node role hardens SSH further.\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\n"
        "UseDNS no\n"))
    _write(root, "/etc/hostname", "localhost\n")
    _write(root, "/etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")

    # apt: the same mirror (and snapshot settings) the host uses.
    _write(root, "/etc/apt/sources.list", spec.apt_sources())
    apt_conf = distro_mod.host_apt_conf()
    if apt_conf:
        _write(root, "/etc/apt/apt.conf.d/80gpulab-lab", "// copied from the lab host's apt settings\n" + apt_conf)

    # The admin user Ansible logs in as: key only, passwordless sudo without a tty (pipelining).
    run([chroot, root, "useradd", "--create-home", "--shell", "/bin/bash", "--user-group",
         "--groups", "sudo", "--comment", "gpulab lab admin", user])
    run([chroot, root, "usermod", "--password", "*", user])  # no password, but not a locked account
    _write(root, f"/etc/sudoers.d/{user}", f"{user} ALL=(ALL:ALL) NOPASSWD: ALL\nDefaults:{user} !requiretty\n", 0o440)
    run([chroot, root, "visudo", "-c", "-q", "-f", f"/etc/sudoers.d/{user}"])
    _write(root, f"/home/{user}/.ssh/authorized_keys", spec.pubkey.strip() + "\n", 0o600)
    (root / f"home/{user}/.ssh").chmod(0o700)
    run([chroot, root, "chown", "-R", f"{user}:{user}", f"/home/{user}/.ssh"])


def _container(root: Path) -> None:
    # Podman keeps a systemd container's journal on tmpfs, i.e. in memory: 16 MB per host by default.
    _write(root, "/etc/systemd/journald.conf.d/gpulab-lab.conf",
           "# gpulab lab container: the journal lives in memory (podman's tmpfs); keep it small.\n"
           "[Journal]\nSystemMaxUse=4M\nSystemMaxFileSize=1M\nRuntimeMaxUse=4M\nRuntimeMaxFileSize=1M\n")


def _vm(root: Path) -> None:
    _write(root, "/etc/fstab", "/dev/vda\t/\text4\tdefaults,errors=remount-ro\t0\t1\n")
    # qemu's user network: DHCP on the virtio NIC, slirp's DNS forwarder.
    _write(root, "/etc/systemd/network/10-gpulab-lab.network",
           "[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\n")
    _enable(root, "systemd-networkd.service")
    resolv = root / "etc/resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    _write(root, "/etc/resolv.conf", "nameserver 10.0.2.3\n")


def kernel_files(root: Path) -> tuple:
    """(vmlinuz, initrd) of the newest kernel in a VM rootfs."""
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise LabError(f"no kernel in {root}/boot: the VM image needs the distro's kernel package")
    version = kernels[-1].name[len("vmlinuz-"):]
    initrd = root / "boot" / f"initrd.img-{version}"
    if not initrd.is_file():
        raise LabError(f"kernel {version} in the VM image has no initrd ({initrd})")
    return kernels[-1], initrd


def remove_tree(path: Path) -> None:
    """rm -rf, refusing to descend into anything still mounted (a failed debootstrap leaves /proc mounted)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
        return
    if not path.exists():
        return
    prefix = str(path.resolve()) + "/"
    with open("/proc/mounts", encoding="utf-8") as mounts:
        inside = sorted((line.split()[1] for line in mounts if line.split()[1].startswith(prefix)), reverse=True)
    for mountpoint in inside:
        run(["umount", "--lazy", mountpoint], check=False)
    with open("/proc/mounts", encoding="utf-8") as mounts:
        if any(line.split()[1].startswith(prefix) for line in mounts):
            raise LabError(f"{path} still has mounts inside: unmount them, then run again")
    shutil.rmtree(path)
