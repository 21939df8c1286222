# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The NVIDIA read side, as data: the commands and files the module reads, and pure parsers for their text.

Nothing here runs a command or opens a file; ``nvidia_toolkit`` runs ``LSPCI_COMMAND`` and ``NVIDIA_SMI_QUERY``,
reads ``PROC_DRIVER_VERSION`` and the ``SYSFS_PCI_ATTRIBUTES`` of each device under ``SYSFS_PCI_DEVICES``, and hands
the text to the functions below. PCI addresses are always returned in lspci's ``-D`` form, ``0000:01:00.0``, so a
GPU found on the PCI bus and the same GPU in nvidia-smi (``00000000:01:00.0``) compare equal.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

NVIDIA_VENDOR = "10de"
# PCI class codes of a GPU function (pci.ids "C 03" display controllers). The HDMI/DP audio function of a GPU is
# 0403 and NVIDIA's USB-C controllers (0c03), NVSwitch bridges (0680) are other classes: none of them is a GPU.
NVIDIA_GPU_CLASSES = {"0300": "VGA compatible controller", "0302": "3D controller", "0380": "Display controller"}

# Whole bus, numeric and textual IDs, with the PCI domain; parse_lspci keeps the NVIDIA GPUs (it also reads
# ``lspci -n`` and the detail lines of ``lspci -nnk``/``-nnv``, which it skips).
LSPCI_COMMAND = ["lspci", "-nn", "-D"]
# Fallback when lspci (pciutils) is not installed: read these files of every device folder.
SYSFS_PCI_DEVICES = "/sys/bus/pci/devices"
SYSFS_PCI_ATTRIBUTES = ("vendor", "device", "class")
PROC_DRIVER_VERSION = "/proc/driver/nvidia/version"

NVIDIA_SMI_FIELDS = ("index", "name", "uuid", "pci.bus_id", "driver_version", "memory.total")
NVIDIA_SMI_QUERY = ["nvidia-smi", "--query-gpu=" + ",".join(NVIDIA_SMI_FIELDS), "--format=csv,noheader,nounits"]

# nvidia-smi query fields -> keys of parse_nvidia_smi_query's dicts (the aliases are nvidia-smi's own).
_SMI_KEYS = {
    "index": "index", "name": "name", "gpu_name": "name", "uuid": "uuid", "gpu_uuid": "uuid",
    "pci.bus_id": "pci_bus_id", "gpu_bus_id": "pci_bus_id", "driver_version": "driver_version",
    "memory.total": "memory_total_mib", "pci.device_id": "pci_id",
}
_SMI_EMPTY = ("", "N/A", "[N/A]", "[Not Supported]", "[Unknown Error]")
_SMI_HEADER_CELL = re.compile(r"^[a-z][a-z0-9_.]*(?: \[[^\]]*\])?$")

_ADDRESS = re.compile(r"^(?:([0-9a-fA-F]{1,8}):)?([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$")
# lspci -nn: "0000:01:00.0 VGA compatible controller [0300]: NVIDIA Corporation TU117GL [T400 4GB] [10de:1ff2] (rev a1)"
_LSPCI_NN = re.compile(
    r"^(?P<address>\S+)\s+(?P<class_name>.+?)\s+\[(?P<class_code>[0-9a-fA-F]{4})\]:\s+(?P<description>.*?)\s*"
    r"\[(?P<vendor_id>[0-9a-fA-F]{4}):(?P<device_id>[0-9a-fA-F]{4})\]"
)
# lspci -n: "00:04.0 0302: 10de:20b0 (rev a1)"
_LSPCI_N = re.compile(r"^(?P<address>\S+)\s+(?P<class_code>[0-9a-fA-F]{4}):\s+(?P<vendor_id>[0-9a-fA-F]{4}):(?P<device_id>[0-9a-fA-F]{4})\b")
# "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.129.03  ..." or
# "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  565.57.01  Release Build  ..."
_NVRM = re.compile(r"^NVRM version:\s+NVIDIA UNIX\b(?P<flavour>.*?)\bKernel Module\b(?:\s+for\s+\S+)?\s+(?P<version>\d+(?:\.\d+)+)\b", re.M)
_VERSION = re.compile(r"^(?:\d+:)?(\d+(?:\.\d+)+)(?:[-~+].*)?$")
_NEVRA_VERSION = re.compile(r"-(?:\d+:)?(\d+(?:\.\d+)+)-[^-]+$")


def normalize_pci_address(text):
    """'00000000:01:00.0', '01:00.0' or '0000:01:00.0' -> '0000:01:00.0'; None when the text is no PCI address."""
    match = _ADDRESS.match((text or "").strip())
    if not match:
        return None
    domain, bus, slot, function = match.groups()
    return "%04x:%s:%s.%s" % (int(domain or "0", 16), bus.lower(), slot.lower(), function)


def _model_from_description(description):
    """'NVIDIA Corporation TU117GL [T400 4GB / T400E]' -> 'T400 4GB / T400E'; None for an unnamed 'Device'."""
    name = re.sub(r"^nvidia corporation\s*", "", description.strip(), flags=re.I)
    if name.endswith("]") and "[" in name:
        return name[name.rindex("[") + 1:-1].strip()
    if not name or name == "Device" or name.startswith("Device "):
        return None
    return name


def _gpu(address, class_code, vendor_id, device_id, **extra):
    gpu = dict(address=address, class_code=class_code, vendor_id=vendor_id, device_id=device_id,
               pci_id="%s:%s" % (vendor_id, device_id))
    gpu.update(extra)
    return gpu


def parse_lspci(text):
    """The NVIDIA GPU functions in ``lspci -nn [-D]`` (or ``lspci -n``) output, in bus order.

    Returns dicts: address, class_code, class_name, vendor_id, device_id, pci_id, model (the pci.ids name in the
    last brackets, None when lspci's database does not know the device) and description (lspci's text). Functions
    of other classes (the GPU's audio function 0403, NVIDIA bridges and USB controllers) and other vendors are left
    out; indented detail lines and grep's ``--`` separators are skipped.
    """
    gpus = []
    for line in (text or "").splitlines():
        if not line or line[0].isspace():
            continue
        match = _LSPCI_NN.match(line) or _LSPCI_N.match(line)
        address = normalize_pci_address(match.group("address")) if match else None
        if address is None:
            continue
        vendor_id, device_id = match.group("vendor_id").lower(), match.group("device_id").lower()
        class_code = match.group("class_code").lower()
        if vendor_id != NVIDIA_VENDOR or class_code not in NVIDIA_GPU_CLASSES:
            continue
        fields = match.groupdict()
        description = fields.get("description")
        gpus.append(_gpu(
            address, class_code, vendor_id, device_id,
            class_name=fields.get("class_name") or NVIDIA_GPU_CLASSES[class_code],
            model=_model_from_description(description) if description is not None else None,
            description=description,
        ))
    return gpus


def _sysfs_hex(value, digits):
    value = (value or "").strip().lower()
    if value.startswith("0x"):
        value = value[2:]
    return value if re.match(r"^[0-9a-f]{%d}$" % digits, value) else None


def gpus_from_sysfs(devices):
    """The NVIDIA GPU functions among PCI devices read from sysfs, the fallback when lspci is not installed.

    ``devices`` maps a device folder name of SYSFS_PCI_DEVICES ('0000:01:00.0') to the text of its vendor, device
    and class files ({'vendor': '0x10de\\n', 'device': '0x1ff2\\n', 'class': '0x030000\\n'}). Returns dicts: address,
    class_code, vendor_id, device_id, pci_id; sysfs has no names, so the module takes the model from nvidia-smi.
    """
    gpus = []
    for name in sorted(devices or {}):
        attributes = devices[name] or {}
        address = normalize_pci_address(name)
        vendor_id = _sysfs_hex(attributes.get("vendor"), 4)
        device_id = _sysfs_hex(attributes.get("device"), 4)
        device_class = _sysfs_hex(attributes.get("class"), 6)
        if None in (address, vendor_id, device_id, device_class):
            continue
        if vendor_id == NVIDIA_VENDOR and device_class[:4] in NVIDIA_GPU_CLASSES:
            gpus.append(_gpu(address, device_class[:4], vendor_id, device_id))
    return gpus


def parse_driver_version_file(text):
    """The loaded kernel module from /proc/driver/nvidia/version; None when the text has no NVRM line.

    Returns dict(version, kernel_module_type: 'open' for the open GPU kernel modules, else 'proprietary',
    raw_first_line: the NVRM line as read).
    """
    match = _NVRM.search(text or "")
    if not match:
        return None
    line = (text or "")[match.start():].splitlines()[0]
    module_type = "open" if re.search(r"\bOpen\b", match.group("flavour")) else "proprietary"
    return dict(version=match.group("version"), kernel_module_type=module_type, raw_first_line=line.rstrip())


def _smi_cell(key, value):
    value = value.strip()
    if value in _SMI_EMPTY:
        return None
    if key in ("index", "memory_total_mib"):
        number = value.split()[0]
        return int(number) if number.isdigit() else None
    if key == "pci_id":
        # pci.device_id is the 32-bit "device << 16 | vendor": 0x1E3010DE -> 10de:1e30
        digits = _sysfs_hex(value, 8)
        return "%s:%s" % (digits[4:], digits[:4]) if digits else None
    return value


def parse_nvidia_smi_query(text, fields=None):
    """The GPUs in ``nvidia-smi --query-gpu=... --format=csv[,noheader][,nounits]`` output.

    ``fields`` are the query fields in order (NVIDIA_SMI_FIELDS by default, the columns of NVIDIA_SMI_QUERY); a
    csv header line, when present, names the columns instead. Units (' MiB') and nvidia-smi's '[N/A]' are handled.
    Returns dicts with index (int), name, uuid, pci_bus_id, pci_address (normalized pci_bus_id), driver_version,
    memory_total_mib (int) and pci_id, each None when the query did not ask for it. A row whose column count does
    not match raises ValueError.
    """
    lines = [line for line in (text or "").splitlines() if line.strip()]
    fields = list(fields or NVIDIA_SMI_FIELDS)
    if lines and all(_SMI_HEADER_CELL.match(cell.strip()) for cell in lines[0].split(",")):
        fields = [cell.strip().split(" [")[0] for cell in lines.pop(0).split(",")]
    gpus = []
    for line in lines:
        cells = line.split(",")
        if len(cells) != len(fields):
            raise ValueError("nvidia-smi row has %d columns, expected %d (%s): %r" % (len(cells), len(fields), ",".join(fields), line))
        gpu = dict((key, None) for key in ("index", "name", "uuid", "pci_bus_id", "driver_version", "memory_total_mib", "pci_id"))
        for field, cell in zip(fields, cells):
            key = _SMI_KEYS.get(field)
            if key:
                gpu[key] = _smi_cell(key, cell)
        gpu["pci_address"] = normalize_pci_address(gpu["pci_bus_id"])
        gpus.append(gpu)
    return gpus


def classify_nvidia_smi_failure(rc, stdout, stderr):
    """What a nvidia-smi run says about the node: dict(state, reboot_needed, message, nvml_library_version).

    States: 'ok' (rc 0, nothing recognised), 'not_installed' (rc 127, 'command not found', no such file),
    'version_mismatch' (the loaded kernel module is not the installed library's: reboot_needed True),
    'driver_not_loaded' (no kernel module to talk to), 'no_devices' (driver loaded, no GPU initialised) and
    'unknown'. The text decides before rc, since nvidia-smi's exit statuses vary by release. message is the line
    recognised (or the first line printed); nvml_library_version the 'NVML library version' printed on a mismatch.
    """
    output = "\n".join(part for part in (stdout, stderr) if part)
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    checks = (
        ("version_mismatch", r"Driver/library version mismatch"),
        ("driver_not_loaded", r"couldn.t communicate with the NVIDIA driver"),
        ("no_devices", r"No devices were found"),
        ("not_installed", r"nvidia-smi: (?:command )?not found|No such file or directory.*nvidia-smi"),
    )
    for state, pattern in checks:
        found = [line for line in lines if re.search(pattern, line, re.I)]
        if found:
            break
    else:
        state, found = ("not_installed", lines) if rc == 127 else ("ok" if rc == 0 else "unknown", lines)
    library = re.search(r"NVML library version:\s*(\d+(?:\.\d+)+)", output)
    message = found[0] if found else "nvidia-smi exited with status %s and printed nothing" % rc
    return dict(state=state, reboot_needed=state == "version_mismatch", message=message,
                nvml_library_version=library.group(1) if library else None)


def parse_package_version(text):
    """The upstream driver version in a package manager's answer, or None.

    Reads ``dpkg-query -W -f='${Version}' nvidia-driver-535`` ('535.183.01-0ubuntu0.22.04.1'), its two-column form
    ('nvidia-driver-535\\t535.183.01-...'), an epoch ('3:570.86.16-1.el9') and rpm -q's NEVRA
    ('nvidia-driver-570.86.16-1.el8.x86_64'); the last line counts.
    """
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return None
    token = lines[-1].split()[-1]
    match = _VERSION.match(token) or _NEVRA_VERSION.search(token)
    return match.group(1) if match else None


def _version_parts(version):
    normalized = parse_package_version(version)
    return tuple(int(part) for part in normalized.split(".")) if normalized else None


def reboot_needed(loaded_version, installed_version):
    """Whether the loaded kernel module (/proc) is not the installed driver (package or library version).

    Versions compare by their numeric parts over the length of the shorter one, so NVML's '570.86' matches a
    loaded '570.86.16'. False when either is unknown: no driver loaded (or none installed) is the caller's case.
    """
    loaded, installed = _version_parts(loaded_version), _version_parts(installed_version)
    if not loaded or not installed:
        return False
    common = min(len(loaded), len(installed))
    return loaded[:common] != installed[:common]
