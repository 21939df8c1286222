# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where swap comes from on a systemd host, as data: paths, and parsers for the tools' outputs.

Every host path goes through ``host_path``, which puts ``ROOT`` in front; ``ROOT`` is ``/`` on a real host
(unit tests point it at a temporary folder).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re

ROOT = "/"

# Where the module keeps the record of what it masked, so state=present undoes only its own work.
STATE_FILE = "/etc/gpulab/swap.json"

PROC_SWAPS = "/proc/swaps"
PROC_CMDLINE = "/proc/cmdline"
ZSWAP_ENABLED = "/sys/module/zswap/parameters/enabled"
# sd_booted(): systemd is the running init when this folder exists.
SYSTEMD_RUNNING = "/run/systemd/system"
# Used only when systemd-detect-virt is not installed: the files container managers leave.
CONTAINER_FILES = ("/run/.containerenv", "/.dockerenv", "/run/systemd/container")

UNIT_MASK_DIR = "/etc/systemd/system"
GENERATOR_MASK_DIR = "/etc/systemd/system-generators"
UNIT_DIRS = (
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
)
GENERATOR_DIRS = (
    "/usr/local/lib/systemd/system-generators",
    "/usr/lib/systemd/system-generators",
    "/lib/systemd/system-generators",
)
GPT_AUTO_GENERATOR = "systemd-gpt-auto-generator"
ZRAM_GENERATOR = "zram-generator"
# zram-generator(8): the first main file found in this order wins; drop-ins come from all of them.
ZRAM_CONF_DIRS = ("/run/systemd", "/etc/systemd", "/usr/local/lib/systemd", "/usr/lib/systemd", "/lib/systemd")
# Services that turn on swap themselves (swapon in a script), by package.
SWAP_SERVICES = (
    ("zram-config.service", "Ubuntu zram-config (init-zram-swapping)"),
    ("zramswap.service", "zram-tools (zramswap)"),
    ("dphys-swapfile.service", "dphys-swapfile"),
)
# Discoverable Partitions Specification: "Linux swap".
GPT_SWAP_TYPE = "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f"
# mkswap writes this at the end of the first page (page size 4 KiB to 64 KiB).
SWAP_SIGNATURES = (b"SWAPSPACE2", b"SWAP-SPACE")
PAGE_SIZES = (4096, 8192, 16384, 65536)

_HEX = re.compile(r"\\x([0-9a-fA-F]{2})")
_OCTAL = re.compile(r"\\([0-7]{3})")
_ZRAM_SECTION = re.compile(r"^zram[0-9]+$")
_FALSE = ("0", "no", "n", "false", "off")


def host_path(path):
    """path on the managed host (ROOT in front)."""
    return os.path.join(ROOT, path.lstrip("/"))


def unhex(value):
    """Undo the \\xNN escapes of util-linux --raw output and of systemd unit names."""
    return _HEX.sub(lambda m: chr(int(m.group(1), 16)), value)


def unoctal(value):
    """Undo the \\NNN escapes of /proc/swaps."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), value)


def _swap(name, kind, size, used, prio):
    deleted = name.endswith(" (deleted)")
    if deleted:
        name = name[: -len(" (deleted)")]
    return {
        "name": name,
        "type": kind,
        "size": int(size),
        "used": int(used),
        "priority": int(prio),
        "deleted": deleted,
    }


def parse_swapon_show(out):
    """`swapon --show=NAME,TYPE,SIZE,USED,PRIO --bytes --noheadings --raw`: one swap area a line."""
    swaps = []
    for line in out.splitlines():
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            raise ValueError("unexpected swapon --show line: %r" % line)
        swaps.append(_swap(unhex(fields[0]), fields[1], fields[2], fields[3], fields[4]))
    return swaps


def parse_proc_swaps(text):
    """/proc/swaps: a header, then name, type, size and used in KiB, priority."""
    swaps = []
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0] == "Filename":
            continue
        if len(fields) != 5:
            raise ValueError("unexpected /proc/swaps line: %r" % line)
        swaps.append(
            _swap(unoctal(fields[0]), fields[1], int(fields[2]) * 1024, int(fields[3]) * 1024, fields[4])
        )
    return swaps


def parse_list_units(out):
    """`systemctl list-units --type=swap --all --no-legend --plain`: unit load active sub description."""
    units = []
    for line in out.splitlines():
        fields = line.split()
        if fields and fields[0] in ("\u25cf", "*"):  # failed/not-found bullet
            fields = fields[1:]
        if len(fields) < 4 or not fields[0].endswith(".swap"):
            continue
        units.append(
            {
                "unit": fields[0],
                "load": fields[1],
                "active": fields[2],
                "sub": fields[3],
                "description": " ".join(fields[4:]),
            }
        )
    return units


def parse_list_unit_files(out):
    """`systemctl list-unit-files --type=swap --no-legend`: unit state [preset]."""
    files = []
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 2 or not fields[0].endswith(".swap"):
            continue
        files.append({"unit": fields[0], "state": fields[1]})
    return files


def unit_name_to_path(unit):
    """The path a swap/mount unit name stands for (systemd-escape --unescape --path)."""
    name = unit.rsplit(".", 1)[0]
    if name == "-":
        return "/"
    return "/" + unhex(name.replace("-", "/"))


def parse_lsblk(out):
    """`lsblk --json --list --paths --output NAME,TYPE,PARTTYPE`: every block device, flattened."""
    data = json.loads(out) if out.strip() else {}
    found = []

    def walk(devices):
        for dev in devices or []:
            found.append(
                {
                    "name": dev.get("name"),
                    "type": dev.get("type"),
                    "parttype": (dev.get("parttype") or "").lower() or None,
                }
            )
            walk(dev.get("children"))

    walk(data.get("blockdevices"))
    return found


def gpt_swap_partitions(devices):
    """Names of partitions whose GPT type is Linux swap."""
    return [dev["name"] for dev in devices if dev["type"] == "part" and dev["parttype"] == GPT_SWAP_TYPE]


def parse_cmdline(text):
    """Kernel command line as {key: value or None}; the last one of a key wins."""
    params = {}
    for word in (text or "").split():
        key, sep, value = word.partition("=")
        params[key] = value if sep else None
    return params


def cmdline_false(params, key):
    """True when the kernel command line sets key to a false value."""
    return key in params and params[key] is not None and params[key].lower() in _FALSE


def read_file(path):
    """Text of a host file, or None when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")
    except (IOError, OSError):
        return None


def is_dev_null_link(path):
    """True when path is a symlink to /dev/null (a systemd mask)."""
    return os.path.islink(path) and os.readlink(path) == "/dev/null"


def _ini_sections(text):
    """{section: {key: value}} of a systemd-style ini text."""
    sections = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1].strip(), {})
        elif current is not None and "=" in line:
            key, value = line.split("=", 1)
            current[key.strip()] = value.strip()
    return sections


def zram_generator_config():
    """The zram-generator configuration as the generator reads it.

    Returns (files, devices): the files that count (host paths without ROOT) and
    {device: {"swap": bool, "files": [...]}} for every [zramN] section.
    """
    files = []
    for folder in ZRAM_CONF_DIRS:
        main = host_path(folder + "/zram-generator.conf")
        if os.path.isfile(main):
            files.append(folder + "/zram-generator.conf")
            break
    dropins = {}
    for folder in ZRAM_CONF_DIRS:
        conf_d = host_path(folder + "/zram-generator.conf.d")
        if not os.path.isdir(conf_d):
            continue
        for name in sorted(os.listdir(conf_d)):
            if name.endswith(".conf") and name not in dropins:
                dropins[name] = folder + "/zram-generator.conf.d/" + name
    files.extend(dropins[name] for name in sorted(dropins))
    merged = {}
    for path in files:
        for section, keys in _ini_sections(read_file(host_path(path)) or "").items():
            if not _ZRAM_SECTION.match(section):
                continue
            device = merged.setdefault(section, {"keys": {}, "files": []})
            device["keys"].update(keys)
            device["files"].append(path)
    devices = {}
    for section, device in merged.items():
        devices[section] = {"swap": not device["keys"].get("mount-point"), "files": device["files"]}
    return files, devices


def find_generator(name):
    """Host path (without ROOT) of an installed generator binary, or None."""
    for folder in GENERATOR_DIRS:
        if os.path.exists(host_path(folder + "/" + name)):
            return folder + "/" + name
    return None


def find_unit_file(unit):
    """Host paths (without ROOT) where a unit file of that name exists, best first."""
    return [folder + "/" + unit for folder in UNIT_DIRS if os.path.lexists(host_path(folder + "/" + unit))]


def has_swap_signature(path):
    """True when the file starts with a mkswap header (any supported page size)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(max(PAGE_SIZES))
    except (IOError, OSError):
        return False
    for size in PAGE_SIZES:
        if head[size - 10:size] in SWAP_SIGNATURES:
            return True
    return False
