"""Throw-away qemu VMs for node-level tests: a real kernel, real virtual disks, reboots.

Each VM boots the cached base image (raw ext4, shared read-only) through a qcow2 overlay of its own, so
`vm up` after `vm down` always starts from a fresh machine. Direct kernel boot (-kernel/-initrd from the
image's /boot), SSH on a loopback port, serial console in build/lab/vm/NAME/console.log.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import distro as distro_mod
from . import rootfs, ssh
from .util import CACHE, TMP, VM_DIR, LabError, Timer, locked, log, require_root, run, which

ROOT_SIZE = "8G"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
SIZE_RE = re.compile(r"^[1-9][0-9]*[KMGT]?$")
FORWARD_RE = re.compile(r"^([0-9]{1,5}):([0-9]{1,5})$")


@dataclass
class Settings:
    name: str
    ssh_port: int
    disks: int
    disk_size: str
    memory: int
    cpus: int
    base: str = ""
    accel: str = ""
    user: str = ""
    key: str = ""
    # The lab's shared known_hosts (the inventory's), from which this VM's old host keys are removed.
    lab_known_hosts: str = ""
    # Extra TCP forwards "HOSTPORT:GUESTPORT" (loopback on the host), e.g. to probe the guest's firewall.
    forwards: list = field(default_factory=list)

    def host_ports(self) -> list:
        return [self.ssh_port] + [int(f.split(":")[0]) for f in self.forwards]

    def same_machine(self, other: "Settings") -> bool:
        keys = ("ssh_port", "disks", "disk_size", "memory", "cpus", "forwards")
        return all(getattr(self, k) == getattr(other, k) for k in keys)


def vm_dir(name: str) -> Path:
    return VM_DIR / name


# ------------------------------------------------------------------------------------------ base image

def base_image(spec: rootfs.Provision) -> Path:
    """build/lab/cache/vm-<distro>-<fingerprint>/ with disk.img (raw ext4), vmlinuz, initrd.img."""
    base = CACHE / f"vm-{spec.distro.name}-{spec.fingerprint()}"
    if (base / "disk.img").is_file():
        return base
    with locked(base.name):
        if (base / "disk.img").is_file():
            return base
        timer = Timer()
        TMP.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=TMP, prefix="vm-image-") as work:
            root = rootfs.prepare(spec, Path(work))
            vmlinuz, initrd = rootfs.kernel_files(root)
            partial = Path(work) / "base"
            partial.mkdir()
            shutil.copy2(vmlinuz, partial / "vmlinuz")
            shutil.copy2(initrd, partial / "initrd.img")
            log(f"writing the VM base image ({ROOT_SIZE} sparse ext4)")
            run([which("mkfs.ext4"), "-q", "-F", "-L", "gpulab-root", "-d", root, partial / "disk.img", ROOT_SIZE])
            rootfs.remove_tree(root)
            base.parent.mkdir(parents=True, exist_ok=True)
            partial.rename(base)
        log(f"VM base image {base.name} ready in {timer}")
    return base


def _prune_bases(keep: Path) -> None:
    """Drop base images of older fingerprints that no VM uses (and no `vm up` is about to: an hour old)."""
    used = {str(keep)}
    for settings_file in VM_DIR.glob("*/vm.json"):
        used.add(json.loads(settings_file.read_text(encoding="utf-8")).get("base", ""))
    for old in CACHE.glob("vm-*"):
        if old.is_dir() and str(old) not in used and time.time() - old.stat().st_mtime > 3600:
            shutil.rmtree(old)


# ------------------------------------------------------------------------------------------------ qemu

def kvm_usable() -> bool:
    """KVM only when it really works: /dev/kvm usable and the CPU offers vmx or svm."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            flags = {w for line in cpuinfo if line.startswith("flags") for w in line.split()}
    except OSError:
        return False
    return bool(flags & {"vmx", "svm"})


def _accel() -> list:
    wanted = os.environ.get("LAB_VM_ACCEL", "auto")
    if wanted == "kvm" or (wanted == "auto" and kvm_usable()):
        return ["-machine", "accel=kvm", "-cpu", "host"]
    return ["-machine", "accel=tcg", "-cpu", "max"]


def _pid(name: str) -> int | None:
    """The pid of VM `name`'s qemu if it runs (the pid file alone could name a recycled pid)."""
    pidfile = vm_dir(name) / "qemu.pid"
    try:
        pid = int(pidfile.read_text(encoding="utf-8").strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if f"gpulab-{name}".encode() in cmdline else None


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _qemu_command(settings: Settings, base: Path, here: Path, accel: list) -> list:
    cmd = [which("qemu-system-x86_64"), "-name", f"gpulab-{settings.name}", "-nodefaults", *accel,
           "-smp", str(settings.cpus), "-m", str(settings.memory),
           "-kernel", base / "vmlinuz", "-initrd", base / "initrd.img",
           "-append", f"root=/dev/vda rw console=ttyS0 systemd.hostname={settings.name}",
           "-drive", f"file={here / 'root.qcow2'},if=none,id=root,format=qcow2",
           "-device", "virtio-blk-pci,drive=root,serial=gpulab-root"]
    for i in range(1, settings.disks + 1):
        cmd += ["-drive", f"file={here / f'disk{i}.qcow2'},if=none,id=disk{i},format=qcow2",
                "-device", f"virtio-blk-pci,drive=disk{i},serial=gpulab-{settings.name}-disk{i}"]
    forwards = [f"{settings.ssh_port}:22"] + list(settings.forwards)
    netdev = "user,id=n0" + "".join(
        f",hostfwd=tcp:127.0.0.1:{host}-:{guest}" for host, guest in (f.split(":") for f in forwards))
    cmd += ["-netdev", netdev,
            "-device", "virtio-net-pci,netdev=n0", "-device", "virtio-rng-pci",
            "-display", "none", "-serial", f"file:{here / 'console.log'}",
            "-monitor", f"unix:{here / 'monitor.sock'},server,nowait",
            "-daemonize", "-pidfile", here / "qemu.pid"]
    return cmd


def disk_names(count: int) -> list:
    return [f"/dev/vd{chr(ord('b') + i)}" for i in range(count)]


def _write_inventory(settings: Settings, here: Path) -> Path:
    """An Ansible inventory with this one VM, for Molecule and ad-hoc runs."""
    def q(value) -> str:
        return json.dumps(str(value))  # a JSON string is a valid YAML double-quoted scalar
    disks = ", ".join(q(d) for d in disk_names(settings.disks))
    ssh_args = f"-o UserKnownHostsFile={here / 'known_hosts'} -o StrictHostKeyChecking=accept-new"
    text = (
        "---\n"
        f"# Written by `lab/gpulab-lab vm up {settings.name}`; removed by `vm down {settings.name}`.\n"
        "all:\n"
        "  hosts:\n"
        f"    {settings.name}:\n"
        "      ansible_host: 127.0.0.1\n"
        f"      ansible_port: {settings.ssh_port}\n"
        f"      ansible_user: {q(settings.user)}\n"
        f"      ansible_ssh_private_key_file: {q(settings.key)}\n"
        f"      ansible_ssh_common_args: {q(ssh_args)}\n"
        "      ansible_python_interpreter: /usr/bin/python3\n"
        f"      gpulab_lab_vm_disks: [{disks}]\n"
    )
    path = here / "inventory.yml"
    path.write_text(text, encoding="utf-8")
    return path


def _console_tail(here: Path, lines: int = 15) -> str:
    log_file = here / "console.log"
    if not log_file.is_file():
        return ""
    tail = log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    return f"\n  last lines of {log_file}:\n  " + "\n  ".join(tail)


def connection(settings: Settings) -> str:
    here = vm_dir(settings.name)
    return (f"ssh -i {settings.key} -p {settings.ssh_port} -o UserKnownHostsFile={here / 'known_hosts'} "
            f"{settings.user}@127.0.0.1")


def _access(settings: Settings) -> ssh.Access:
    return ssh.Access(key=Path(settings.key), known_hosts=vm_dir(settings.name) / "known_hosts")


def _forget_in_lab(settings: Settings) -> None:
    """A new VM on this port has new host keys: drop the port's old lines from the lab's known_hosts."""
    if settings.lab_known_hosts:
        ssh.forget_hosts(Path(settings.lab_known_hosts), ["127.0.0.1", "localhost"], port=settings.ssh_port)


def _load(name: str) -> Settings:
    return Settings(**json.loads((vm_dir(name) / "vm.json").read_text(encoding="utf-8")))


def validate(settings: Settings) -> None:
    if not NAME_RE.match(settings.name):
        raise LabError(f"VM name {settings.name!r}: use lower-case letters, digits and '-' (up to 31)")
    if not 1024 <= settings.ssh_port <= 65535:
        raise LabError(f"--ssh-port {settings.ssh_port}: use a port between 1024 and 65535")
    if not 0 <= settings.disks <= 24:
        raise LabError(f"--disks {settings.disks}: use 0 to 24 extra disks")
    if not SIZE_RE.match(settings.disk_size):
        raise LabError(f"--disk-size {settings.disk_size!r}: use a size like 8G or 512M")
    if settings.memory < 256:
        raise LabError(f"--memory {settings.memory}: a VM needs at least 256 (MiB)")
    if settings.cpus < 1:
        raise LabError(f"--cpus {settings.cpus}: at least 1")
    for forward in settings.forwards:
        match = FORWARD_RE.match(forward)
        if not match or not 1024 <= int(match.group(1)) <= 65535 or not 1 <= int(match.group(2)) <= 65535:
            raise LabError(f"--forward {forward!r}: use HOSTPORT:GUESTPORT, the host port between 1024 and 65535")
    ports = settings.host_ports()
    if len(set(ports)) != len(ports):
        raise LabError(f"host ports {ports}: --ssh-port and every --forward need a loopback port of their own")


def up(settings: Settings, access: ssh.Access, timeout: float) -> tuple:
    """Start VM settings.name (fresh, unless it already runs with the same settings); wait for SSH.

    settings.user logs in with access.key; access.known_hosts is the lab's shared file.
    """
    require_root("vm up")
    validate(settings)
    here = vm_dir(settings.name)
    if _pid(settings.name):
        current = _load(settings.name)
        if not current.same_machine(settings):
            raise LabError(f"VM {settings.name} already runs with other settings (--ssh-port {current.ssh_port} "
                           f"--disks {current.disks} --disk-size {current.disk_size} --memory {current.memory} "
                           f"--cpus {current.cpus} --forward {','.join(current.forwards) or '-'}): "
                           f"`vm down {settings.name}` first")
        log(f"VM {settings.name} already runs")
        result = ssh.wait_for_ssh([ssh.Target(settings.name, "127.0.0.1", current.ssh_port)], current.user,
                                  _access(current), timeout)
        ssh.require_all(result)
        return current, "unchanged"

    for other in VM_DIR.glob("*/vm.json"):
        used = Settings(**json.loads(other.read_text(encoding="utf-8")))
        clash = set(used.host_ports()) & set(settings.host_ports())
        if used.name != settings.name and clash and _pid(used.name):
            raise LabError(f"port(s) {sorted(clash)} are used by VM {used.name}: pick others")
    for port in settings.host_ports():
        if not _port_free(port):
            raise LabError(f"127.0.0.1:{port} is already in use (--ssh-port/--forward); pick another port")

    timer = Timer()
    distro = distro_mod.get_distro()
    spec = rootfs.Provision(distro=distro, flavor="vm", admin_user=settings.user, pubkey=access.public_key(),
                            mirror=distro_mod.find_mirror(distro))
    base = base_image(spec)
    if here.exists():
        shutil.rmtree(here)  # left over from a VM that stopped: start fresh
    here.mkdir(parents=True)
    qemu_img = which("qemu-img")
    run([qemu_img, "create", "-q", "-f", "qcow2", "-F", "raw", "-b", base / "disk.img", here / "root.qcow2"])
    for i in range(1, settings.disks + 1):
        run([qemu_img, "create", "-q", "-f", "qcow2", here / f"disk{i}.qcow2", settings.disk_size])
    accel = _accel()
    settings.base, settings.accel = str(base), accel[1].split("=", 1)[1]
    settings.key, settings.lab_known_hosts = str(access.key), str(access.known_hosts)
    (here / "vm.json").write_text(json.dumps(asdict(settings), indent=2) + "\n", encoding="utf-8")
    _write_inventory(settings, here)
    (here / "known_hosts").touch()
    _forget_in_lab(settings)
    log(f"starting VM {settings.name} ({settings.accel}, {settings.memory} MiB, {settings.disks} extra disks)")
    run(_qemu_command(settings, base, here, accel))
    _prune_bases(base)
    result = ssh.wait_for_ssh([ssh.Target(settings.name, "127.0.0.1", settings.ssh_port)], settings.user,
                              _access(settings), timeout)
    if not result[0].ok:
        raise LabError(f"VM {settings.name} gave no SSH login within {timeout:.0f}s ({result[0].detail}); "
                       f"it still runs - `vm down {settings.name}` removes it" + _console_tail(here))
    log(f"VM {settings.name} answers SSH after {timer}")
    return settings, "started"


def down(name: str) -> bool:
    """Stop VM `name` and delete its overlay, disks and files. False if there was none."""
    here = vm_dir(name)
    pid = _pid(name)
    if (here / "vm.json").is_file():
        _forget_in_lab(_load(name))
    if pid:
        os.kill(pid, signal.SIGTERM)
        for _tick in range(100):
            if not _pid(name):
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
    if here.exists():
        shutil.rmtree(here)
        return True
    return bool(pid)


def names() -> list:
    return sorted(p.parent.name for p in VM_DIR.glob("*/vm.json"))


def status() -> list:
    rows = []
    for name in names():
        settings = _load(name)
        pid = _pid(name)
        rows.append((name, "running" if pid else "stopped", f"127.0.0.1:{settings.ssh_port}", str(pid or "-"),
                     str(settings.disks), f"{settings.memory}M", settings.accel))
    return rows
