"""The lab key pair, known_hosts upkeep, and waiting until hosts really accept an SSH login."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .util import LabError, debug, run, which


@dataclass(frozen=True)
class Access:
    """How Ansible logs in to lab hosts: the private key and the known_hosts file (from the inventory)."""
    key: Path
    known_hosts: Path

    def ensure_keypair(self) -> None:
        """The key pair, generated once (ssh-keygen, ed25519, no passphrase)."""
        pub = Path(f"{self.key}.pub")
        if not (self.key.is_file() and pub.is_file()):
            missing = [d for d in (self.key.parent, *self.key.parent.parents) if not d.exists()]
            for folder in reversed(missing):  # like ~/.ssh: private
                folder.mkdir(mode=0o700)
            for stale in (self.key, pub):
                if stale.exists():
                    stale.unlink()
            run([which("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", "gpulab-lab", "-f", self.key])

    def public_key(self) -> str:
        self.ensure_keypair()
        return Path(f"{self.key}.pub").read_text(encoding="utf-8").strip()


def _host_patterns(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def _matches(field: str, names: set) -> bool:
    for entry in field.split(","):
        if entry.startswith("|1|"):  # HashKnownHosts: |1|base64(salt)|base64(hmac-sha1(salt, host))
            try:
                _empty, _kind, salt, digest = entry.split("|")
                salt_b, digest_b = base64.b64decode(salt), base64.b64decode(digest)
            except ValueError:
                continue
            if any(hmac.compare_digest(hmac.new(salt_b, n.encode(), hashlib.sha1).digest(), digest_b) for n in names):
                return True
        elif entry in names:
            return True
    return False


def forget_hosts(known_hosts: Path, hosts, port: int = 22) -> int:
    """Drop the lines of known_hosts for these names/addresses (their host keys are about to change)."""
    if not known_hosts.is_file():
        return 0
    names = {_host_patterns(h, port) for h in hosts}
    kept, dropped = [], 0
    for line in known_hosts.read_text(encoding="utf-8").splitlines(keepends=True):
        words = line.split()
        if words and words[0].startswith("@"):  # @cert-authority / @revoked marker
            words = words[1:]
        if words and not line.lstrip().startswith("#") and _matches(words[0], names):
            dropped += 1
        else:
            kept.append(line)
    if dropped:
        known_hosts.write_text("".join(kept), encoding="utf-8")
    return dropped


@dataclass
class Target:
    name: str
    address: str
    port: int = 22


@dataclass
class Result:
    target: Target
    ok: bool
    seconds: float
    detail: str


def ssh_command(target: Target, user: str, key: Path, known_hosts: Path, command: str = "true",
                connect_timeout: int = 5) -> list:
    return [which("ssh"), "-i", str(key), "-p", str(target.port),
            "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", f"ConnectTimeout={connect_timeout}",
            "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=accept-new",
            "-o", "HashKnownHosts=no", "-o", "LogLevel=ERROR", "-o", "ControlMaster=no",
            f"{user}@{target.address}", command]


def wait_for_ssh(targets, user: str, access: Access, timeout: float, known_hosts: Path | None = None) -> list:
    """Log in as `user` with the lab key and run `true` on every target, in parallel, until `timeout`.

    Each probe records the host key in a known_hosts of its own; accepted keys are appended to
    `known_hosts` (default: access.known_hosts) once the login worked, so concurrent probes never write
    one file.
    """
    access.ensure_keypair()
    known_hosts = known_hosts or access.known_hosts
    known_hosts.parent.mkdir(parents=True, exist_ok=True)
    known_hosts.touch()
    lock = threading.Lock()
    start = time.monotonic()
    deadline = start + timeout

    def probe(target: Target) -> Result:
        handle, name = tempfile.mkstemp(dir=known_hosts.parent, prefix=f".probe-{target.name}-")
        os.close(handle)
        scratch = Path(name)
        detail = "no answer"
        try:
            while True:
                scratch.write_text(known_hosts.read_text(encoding="utf-8"), encoding="utf-8")
                before = scratch.read_text(encoding="utf-8")
                proc = subprocess.run(ssh_command(target, user, access.key, scratch), capture_output=True, text=True,
                                      stdin=subprocess.DEVNULL, check=False)
                if proc.returncode == 0:
                    new = scratch.read_text(encoding="utf-8")[len(before):]
                    if new:
                        with lock, open(known_hosts, "a", encoding="utf-8") as out:
                            out.write(new)
                    return Result(target, True, time.monotonic() - start, "ok")
                detail = (proc.stderr.strip().splitlines() or [f"ssh rc={proc.returncode}"])[-1]
                debug(f"{target.name}: {detail}")
                if "REMOTE HOST IDENTIFICATION HAS CHANGED" in proc.stderr or "Host key verification failed" in proc.stderr:
                    return Result(target, False, time.monotonic() - start,
                                  f"host key differs from {known_hosts}: remove its line there")
                if time.monotonic() + 1 > deadline:
                    return Result(target, False, time.monotonic() - start, detail)
                time.sleep(1)
        finally:
            if scratch.exists():
                scratch.unlink()

    targets = list(targets)
    if not targets:
        return []
    with ThreadPoolExecutor(max_workers=min(len(targets), 32)) as pool:
        return list(pool.map(probe, targets))


def require_all(results) -> None:
    failed = [r for r in results if not r.ok]
    if failed:
        raise LabError("no SSH login on " + ", ".join(f"{r.target.name} ({r.detail})" for r in failed))
