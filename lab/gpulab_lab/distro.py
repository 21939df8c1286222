"""The distributions a lab image can be built from, and the apt mirror to build it from.

The mirror is never written down here: it is read at run time from the host's apt sources
(/etc/apt/sources.list, /etc/apt/sources.list.d/*.list and deb822 *.sources), or taken from LAB_MIRROR.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .util import LabError

SOURCES_LIST = Path("/etc/apt/sources.list")
SOURCES_DIR = Path("/etc/apt/sources.list.d")

# What every lab host has, container or VM: enough for Ansible (python3, python3-apt, sudo over SSH) and
# the tools later layers expect on a node.
_COMMON = [
    "apt-transport-https", "ca-certificates", "curl", "dbus", "gnupg", "iproute2", "iptables",
    "iputils-ping", "kmod", "less", "netbase", "nftables", "openssh-server", "procps", "python3",
    "python3-apt", "sudo", "systemd", "systemd-sysv",
]
# What a VM adds: a kernel it boots, udev for its disks, the disk tools node-level tests use (lvm2 and mdadm
# make the OSD states of molecule/osd), and nss-myhostname (a VM's name comes from the kernel command line).
_VM = ["e2fsprogs", "fdisk", "gdisk", "libnss-myhostname", "lvm2", "mdadm", "parted", "udev", "util-linux"]


# Release names of each archive: a host source serving one of them is a mirror of that archive.
FAMILY_SUITES = {
    "debian": {"buster", "bullseye", "bookworm", "trixie", "forky", "sid",
               "oldoldstable", "oldstable", "stable", "testing", "unstable"},
    "ubuntu": {"bionic", "focal", "jammy", "noble", "oracular", "plucky", "questing"},
}


@dataclass(frozen=True)
class Distro:
    name: str
    family: str
    suite: str
    components: tuple
    keyring: str
    keyring_package: str
    kernel_package: str
    # Suites, besides `suite`, written into the image's apt sources when no host source describes them.
    extra_suites: tuple = ()

    def packages(self, flavor: str) -> list:
        pkgs = set(_COMMON)
        if flavor == "vm":
            pkgs |= set(_VM) | {self.kernel_package}
        return sorted(pkgs)


DISTROS = {
    "debian12": Distro(
        name="debian12", family="debian", suite="bookworm", components=("main",),
        keyring="/usr/share/keyrings/debian-archive-keyring.gpg", keyring_package="debian-archive-keyring",
        kernel_package="linux-image-cloud-amd64", extra_suites=("bookworm-updates",),
    ),
    # The reference site's OS. Needs a mirror that serves Ubuntu (LAB_MIRROR=http://.../ubuntu) and the
    # Ubuntu archive keyring (package ubuntu-keyring on Ubuntu hosts, or LAB_KEYRING=/path/to/keyring.gpg).
    "ubuntu2204": Distro(
        name="ubuntu2204", family="ubuntu", suite="jammy", components=("main", "universe"),
        keyring="/usr/share/keyrings/ubuntu-archive-keyring.gpg", keyring_package="ubuntu-keyring",
        kernel_package="linux-image-virtual", extra_suites=("jammy-updates", "jammy-security"),
    ),
}


def get_distro(name: str | None = None, sources=None) -> Distro:
    """LAB_DISTRO; unset, the distro whose archive the host's apt uses (debian12 on Debian hosts, ubuntu2204
    on Ubuntu hosts), else debian12."""
    name = name or os.environ.get("LAB_DISTRO")
    if not name:
        sources = host_sources() if sources is None else sources
        name = next((d.name for d in DISTROS.values() if _family_source(d, sources)), "debian12")
    try:
        return DISTROS[name]
    except KeyError:
        raise LabError(f"unknown LAB_DISTRO={name!r}: use one of {', '.join(sorted(DISTROS))}") from None


@dataclass(frozen=True)
class Source:
    """One apt source: a URI and the suites and components it serves."""
    uri: str
    suites: tuple
    components: tuple


def _parse_one_line(text: str):
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):  # options: [arch=amd64 signed-by=...]
            while words and not words[0].endswith("]"):
                words.pop(0)
            words = words[1:]
        if len(words) >= 2:
            yield Source(words[0].rstrip("/"), (words[1],), tuple(words[2:]))


def _parse_deb822(text: str):
    for stanza in text.split("\n\n"):
        fields = {}
        key = None
        for raw in stanza.splitlines():
            if raw.startswith("#") or not raw.strip():
                continue
            if raw[0] in " \t" and key:  # continuation line
                fields[key] += " " + raw.strip()
                continue
            key, _sep, value = raw.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            yield Source(uri.rstrip("/"), tuple(fields.get("suites", "").split()),
                         tuple(fields.get("components", "").split()))


def host_sources(sources_list: Path = SOURCES_LIST, sources_dir: Path = SOURCES_DIR) -> list:
    """Every `deb` source the host's apt uses, in apt's order."""
    found = []
    if sources_list.is_file():
        found += _parse_one_line(sources_list.read_text(encoding="utf-8", errors="replace"))
    if sources_dir.is_dir():
        for path in sorted(sources_dir.iterdir()):
            text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
            if path.suffix == ".list":
                found += _parse_one_line(text)
            elif path.suffix == ".sources":
                found += _parse_deb822(text)
    return found


def _family_source(distro: Distro, sources) -> Source | None:
    """The first source serving a release (not an -updates/-security pocket) of the distro's archive."""
    return next((s for s in sources if FAMILY_SUITES[distro.family] & set(s.suites)), None)


def find_mirror(distro: Distro, sources=None) -> str:
    """LAB_MIRROR, else the first host apt source that serves the distro's suite, else one that serves
    another release of the same archive (an Ubuntu 24.04 host's mirror also serves 22.04)."""
    env = os.environ.get("LAB_MIRROR", "").strip()
    if env:
        return env.rstrip("/")
    sources = host_sources() if sources is None else sources
    for src in sources:
        if distro.suite in src.suites:
            return src.uri
    src = _family_source(distro, sources)
    if src:
        return src.uri
    raise LabError(
        f"no apt mirror for {distro.name} ({distro.suite}) in the host's apt sources "
        f"({SOURCES_LIST}, {SOURCES_DIR}/*.list, *.sources): set LAB_MIRROR to a mirror that serves it, "
        f"e.g. LAB_MIRROR=http://<mirror>/{'ubuntu' if distro.name.startswith('ubuntu') else 'debian'}")


def image_sources(distro: Distro, mirror: str, sources=None) -> str:
    """The apt sources.list written into lab images.

    Without LAB_MIRROR, the host's own sources for the distro's suites (bookworm, bookworm-updates,
    bookworm-security, ...) are copied; otherwise the mirror serves the suite and its extra suites.
    """
    lines = []
    if not os.environ.get("LAB_MIRROR"):
        for src in host_sources() if sources is None else sources:
            for suite in src.suites:
                if suite == distro.suite or suite.startswith(distro.suite + "-"):
                    comps = " ".join(c for c in src.components if c in distro.components) or "main"
                    line = f"deb {src.uri} {suite} {comps}"
                    if line not in lines:
                        lines.append(line)
    if not lines:
        comps = " ".join(distro.components)
        lines = [f"deb {mirror} {suite} {comps}" for suite in (distro.suite, *distro.extra_suites)]
    return "\n".join(lines) + "\n"


def keyring(distro: Distro) -> str:
    path = os.environ.get("LAB_KEYRING") or distro.keyring
    if not Path(path).is_file():
        raise LabError(f"archive keyring {path} for {distro.name} not found: install it with "
                       f"`apt-get install -y {distro.keyring_package}` or set LAB_KEYRING=/path/to/keyring.gpg")
    return path


def host_apt_conf() -> str:
    """apt settings of the host that images must share to use the same mirror.

    A host whose mirror serves an archive snapshot turns off Valid-Until checks; the lab hosts then need
    the same setting or `apt-get update` fails on their security suite.
    """
    try:
        out = subprocess.run(["apt-config", "dump"], capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:
        return ""
    keep = []
    for line in out.splitlines():
        key = line.split(" ", 1)[0]
        if key in ("Acquire::Check-Valid-Until", "Acquire::Check-Date") and line.endswith('"false";'):
            keep.append(line)
    return "\n".join(keep) + "\n" if keep else ""
