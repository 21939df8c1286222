"""Command line: gpulab-lab up|down|status|vm up|vm down|vm status."""

from __future__ import annotations

import argparse
import os
import sys

from . import containers, inventory, util, vm
from .util import LabError, Timer, log


def _table(header, rows) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *rows])


def cmd_up(args) -> int:
    topo = inventory.load(args.inventory)
    summary = containers.up(topo, args.timeout)
    rows = [(n.name, n.group, str(n.ip), topo.fqdn(n), action,
             f"ssh ok ({r.seconds:.1f}s)" if r.ok else f"ssh FAILED: {r.detail}") for n, action, r in summary]
    print(_table(("HOST", "GROUP", "ADDRESS", "FQDN", "CONTAINER", "SSH"), rows))
    failed = [result for _node, _action, result in summary if not result.ok]
    if failed:
        log(f"{len(failed)} of {len(summary)} hosts gave no SSH login within {args.timeout:.0f}s; "
            f"look inside with `podman exec -it NAME journalctl -b` (CONTAINERS_CONF={util.CONTAINERS_CONF})")
        return 1
    return 0


def cmd_down(_args) -> int:
    timer = Timer()
    removed, network = containers.down()
    if removed or network:
        print(f"removed {len(removed)} containers ({' '.join(removed) or '-'})"
              f"{' and the network ' + containers.NETWORK if network else ''} in {timer}; images kept")
    else:
        print("nothing to remove: no lab containers, no lab network")
    return 0


def cmd_status(args) -> int:
    try:
        topo = inventory.load(args.inventory)
    except LabError as exc:
        log(f"inventory not read ({exc}); showing the lab containers only")
        topo = None
    print(_table(("HOST", "GROUP", "STATE", "ADDRESS"), containers.status(topo)))
    return 0


def cmd_vm_up(args) -> int:
    topo = inventory.load(args.inventory)
    settings = vm.Settings(name=args.name, ssh_port=args.ssh_port, disks=args.disks, disk_size=args.disk_size,
                           memory=args.memory, cpus=args.cpus, user=topo.admin_user, forwards=args.forward)
    settings, action = vm.up(settings, topo.access, args.timeout)
    here = vm.vm_dir(settings.name)
    print(f"{settings.name}: {action}, {settings.accel}, disks {' '.join(vm.disk_names(settings.disks)) or '-'}")
    print(f"  ssh:       {vm.connection(settings)}")
    print(f"  inventory: {here / 'inventory.yml'}")
    print(f"  console:   {here / 'console.log'}")
    return 0


def cmd_vm_down(args) -> int:
    if not args.all and not args.name:
        raise LabError("vm down needs a VM name or --all")
    for name in vm.names() if args.all else [args.name]:
        print(f"{name}: stopped and removed" if vm.down(name) else f"{name}: no such VM, nothing to do")
    return 0


def cmd_vm_status(_args) -> int:
    rows = vm.status()
    print(_table(("VM", "STATE", "SSH", "PID", "DISKS", "MEMORY", "ACCEL"), rows) if rows else "no lab VMs")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="gpulab-lab", description="The gpulab test lab: 19 systemd+sshd containers and qemu VMs.")
    top.add_argument("-v", "--verbose", action="store_true", help="print every command run")
    sub = top.add_subparsers(dest="command", required=True)

    def with_inventory(p):
        p.add_argument("--inventory", "-i", default=inventory.DEFAULT_INVENTORY,
                       help="Ansible inventory with the lab hosts (default: %(default)s)")
        return p

    p = with_inventory(sub.add_parser("up", help="create/start the lab containers and wait for SSH"))
    p.add_argument("--timeout", type=float, default=180, help="seconds to wait for SSH (default: %(default)s)")
    p.set_defaults(func=cmd_up)
    sub.add_parser("down", help="remove the lab containers and network (keeps images)").set_defaults(func=cmd_down)
    with_inventory(sub.add_parser("status", help="table of lab hosts, state, address")).set_defaults(func=cmd_status)

    vmp = sub.add_parser("vm", help="qemu VMs for node-level tests").add_subparsers(dest="vm_command", required=True)
    p = with_inventory(vmp.add_parser("up", help="start a fresh VM and wait for SSH"))
    p.add_argument("name")
    p.add_argument("--ssh-port", type=int, required=True, help="loopback port forwarded to the VM's sshd")
    p.add_argument("--disks", type=int, default=0, help="extra empty virtio disks, /dev/vdb... (default: 0)")
    p.add_argument("--disk-size", default="8G", help="size of each extra disk (default: %(default)s)")
    p.add_argument("--memory", type=int, default=1024, help="MiB of RAM (default: %(default)s)")
    p.add_argument("--cpus", type=int, default=1, help="virtual CPUs (default: %(default)s)")
    p.add_argument("--forward", action="append", default=[], metavar="HOSTPORT:GUESTPORT",
                   help="forward another loopback TCP port to the VM (repeatable), e.g. to probe its firewall")
    p.add_argument("--timeout", type=float, default=300, help="seconds to wait for SSH (default: %(default)s)")
    p.set_defaults(func=cmd_vm_up)
    p = vmp.add_parser("down", help="stop a VM and delete its disks")
    p.add_argument("name", nargs="?")
    p.add_argument("--all", action="store_true", help="every lab VM")
    p.set_defaults(func=cmd_vm_down)
    vmp.add_parser("status", help="table of lab VMs").set_defaults(func=cmd_vm_status)
    return top


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    util.VERBOSE = args.verbose
    try:
        return args.func(args)
    except LabError as exc:
        print(f"gpulab-lab: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into head & co.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("gpulab-lab: interrupted", file=sys.stderr)
        return 130
