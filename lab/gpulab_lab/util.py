"""Shared plumbing: paths, errors, logging, running commands, tool checks, locks."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

LAB_DIR = Path(__file__).resolve().parent.parent
ROOT = LAB_DIR.parent
BUILD = ROOT / "build" / "lab"
CACHE = BUILD / "cache"
TMP = BUILD / "tmp"
LOGS = BUILD / "logs"
VM_DIR = BUILD / "vm"
CONTAINERS_CONF = LAB_DIR / "containers.conf"

# The Debian package that provides each external tool, for error messages.
APT_PACKAGES = {
    "podman": "podman",
    "runc": "runc",
    "debootstrap": "debootstrap",
    "chroot": "coreutils",
    "tar": "tar",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "mkfs.ext4": "e2fsprogs",
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
}

VERBOSE = False


class LabError(Exception):
    """A failure the user can act on: the message names what is wrong and how to fix it."""


def log(msg: str) -> None:
    print(f"gpulab-lab: {msg}", file=sys.stderr, flush=True)


def debug(msg: str) -> None:
    if VERBOSE:
        log(msg)


def which(tool: str) -> str:
    """Absolute path of an external tool (sbin included), or a LabError naming the apt package."""
    path = shutil.which(tool) or shutil.which(tool, path="/usr/local/sbin:/usr/sbin:/sbin")
    if not path:
        pkg = APT_PACKAGES.get(tool, tool)
        raise LabError(f"{tool} not found: install it with `apt-get install -y {pkg}`")
    return path


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise LabError(f"{what} needs root (rootful podman, debootstrap, chroot): run it as root or with sudo")


def run(cmd, *, check=True, capture=True, stdin_text=None, env=None, cwd=None, timeout=None):
    """Run an argument list; on failure raise a LabError with the command and the end of its stderr."""
    cmd = [str(c) for c in cmd]
    debug("$ " + " ".join(cmd))
    full_env = None
    if env:
        full_env = dict(os.environ)
        full_env.update(env)
    try:
        proc = subprocess.run(
            cmd, input=stdin_text, env=full_env, cwd=cwd, timeout=timeout, text=True, check=False,
            stdout=subprocess.PIPE if capture else None, stderr=subprocess.PIPE if capture else None,
        )
    except FileNotFoundError as exc:
        raise LabError(f"{cmd[0]} not found: install it with `apt-get install -y "
                       f"{APT_PACKAGES.get(Path(cmd[0]).name, Path(cmd[0]).name)}`") from exc
    if check and proc.returncode != 0:
        err = (proc.stderr or "").strip().splitlines()[-15:] if capture else []
        raise LabError(f"command failed (rc={proc.returncode}): {' '.join(cmd)}" + ("\n  " + "\n  ".join(err) if err else ""))
    return proc


def run_logged(cmd, logfile: Path, *, env=None, what: str) -> None:
    """Run a long command with its output in logfile; on failure show the log's last lines."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    cmd = [str(c) for c in cmd]
    debug("$ " + " ".join(cmd) + f"  > {logfile}")
    full_env = dict(os.environ)
    full_env.update(env or {})
    with open(logfile, "w", encoding="utf-8") as out:
        rc = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT, env=full_env)
    if rc != 0:
        tail = logfile.read_text(encoding="utf-8", errors="replace").splitlines()[-20:]
        raise LabError(f"{what} failed (rc={rc}); full log: {logfile}\n  " + "\n  ".join(tail))


@contextlib.contextmanager
def locked(name: str):
    """Serialise lab operations that share state (image builds, the container lab)."""
    (BUILD / "locks").mkdir(parents=True, exist_ok=True)
    with open(BUILD / "locks" / name, "w", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another gpulab-lab run holding the {name} lock")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


class Timer:
    def __init__(self):
        self.start = time.monotonic()

    def __str__(self):
        return f"{time.monotonic() - self.start:.1f}s"
