# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the NVIDIA parsers, fed with the recorded outputs in fixtures/nvidia (sources in its README)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import os

import pytest
from ansible_collections.gpulab.cluster.plugins.module_utils import _nvidia

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "nvidia")


def fixture(name):
    with io.open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return handle.read()


def sysfs_from_lspci_n(text):
    """The vendor/device/class file contents sysfs holds for each function of a recorded ``lspci -n`` listing.

    lspci -n prints no programming interface, so the class file's last byte is taken as 00 (what lspci omits).
    """
    devices = {}
    for line in text.splitlines():
        address, class_code, ids = line.split()[:3]
        vendor, device = ids.split(":")
        devices["0000:" + address] = {"vendor": "0x%s\n" % vendor, "device": "0x%s\n" % device, "class": "0x%s00\n" % class_code.rstrip(":")}
    return devices


# ---------------------------------------------------------------- commands
def test_commands():
    assert _nvidia.NVIDIA_VENDOR == "10de"
    assert _nvidia.LSPCI_COMMAND == ["lspci", "-nn", "-D"]
    assert _nvidia.NVIDIA_SMI_QUERY == [
        "nvidia-smi", "--query-gpu=index,name,uuid,pci.bus_id,driver_version,memory.total", "--format=csv,noheader,nounits",
    ]
    assert _nvidia.PROC_DRIVER_VERSION == "/proc/driver/nvidia/version"


@pytest.mark.parametrize("text, expected", [
    ("00000000:01:00.0", "0000:01:00.0"),
    ("00000000:0A:00.0", "0000:0a:00.0"),
    ("d5:00.0", "0000:d5:00.0"),
    ("0004:01:00.0", "0004:01:00.0"),
    ("0x01", None),
    (None, None),
])
def test_normalize_pci_address(text, expected):
    assert _nvidia.normalize_pci_address(text) == expected


# ---------------------------------------------------------------- lspci
def test_lspci_two_rtx3090_audio_functions_and_details_left_out():
    gpus = _nvidia.parse_lspci(fixture("lspci_nnk_2x_rtx3090_club3090.txt"))
    assert [(g["address"], g["pci_id"], g["class_code"], g["model"]) for g in gpus] == [
        ("0000:05:00.0", "10de:2204", "0300", "GeForce RTX 3090"),
        ("0000:0a:00.0", "10de:2204", "0300", "GeForce RTX 3090"),
    ]
    assert gpus[0]["class_name"] == "VGA compatible controller"
    assert gpus[0]["description"] == "NVIDIA Corporation GA102 [GeForce RTX 3090]"
    assert all(g["device_id"] != "1aef" for g in gpus)  # the 05:00.1 / 0a:00.1 HDMI audio functions


def test_lspci_two_quadro_rtx6000():
    gpus = _nvidia.parse_lspci(fixture("lspci_nn_2x_quadro_rtx6000_akash81.txt"))
    assert [(g["address"], g["vendor_id"], g["device_id"], g["model"]) for g in gpus] == [
        ("0000:73:00.0", "10de", "1e30", "Quadro RTX 6000/8000"),
        ("0000:d5:00.0", "10de", "1e30", "Quadro RTX 6000/8000"),
    ]


@pytest.mark.parametrize("name, device_id, model", [
    ("lspci_nn_a100_sxm4_40gb.txt", "20b0", "A100 SXM4 40GB"),
    ("lspci_nn_a100_sxm4_80gb.txt", "20b2", "A100 SXM4 80GB"),
])
def test_lspci_a100_3d_controller(name, device_id, model):
    assert _nvidia.parse_lspci(fixture(name)) == [dict(
        address="0000:07:00.0", class_code="0302", class_name="3D controller", vendor_id="10de", device_id=device_id,
        pci_id="10de:" + device_id, model=model, description="NVIDIA Corporation GA100 [%s]" % model,
    )]


def test_lspci_geforce_with_prog_if_suffix():
    gpu, = _nvidia.parse_lspci(fixture("lspci_nnv_rtx3080_hyprland.txt"))
    assert (gpu["address"], gpu["pci_id"], gpu["class_code"], gpu["model"]) == ("0000:01:00.0", "10de:2206", "0300", "GeForce RTX 3080")


def test_lspci_numeric_only_listing():
    gpu, = _nvidia.parse_lspci(fixture("lspci_n_gcp_a2_a100.txt"))
    assert gpu == dict(address="0000:00:04.0", class_code="0302", class_name="3D controller", vendor_id="10de",
                       device_id="20b0", pci_id="10de:20b0", model=None, description=None)


def test_lspci_no_nvidia_intel_vga_left_out():
    text = fixture("lspci_nn_thinkpad_t580_no_nvidia.txt")
    assert "VGA compatible controller [0300]: Intel" in text
    assert _nvidia.parse_lspci(text) == []
    assert _nvidia.parse_lspci("") == [] and _nvidia.parse_lspci(None) == []


def test_lspci_unnamed_device_and_name_without_brackets():
    # lspci lines whose pci.ids is older than the card, as lspci prints them (edge cases, not recordings)
    gpu, = _nvidia.parse_lspci("0000:06:10.0 VGA compatible controller [0300]: NVIDIA Corporation Device [10de:2c02] (rev a1)\n")
    assert gpu["model"] is None and gpu["pci_id"] == "10de:2c02"
    gpu, = _nvidia.parse_lspci("0000:01:00.0 3D controller [0302]: NVIDIA Corporation GA100 [10de:2080]\n")
    assert gpu["model"] == "GA100"
    assert _nvidia.parse_lspci("IOMMU group 2 01:00.0 VGA compatible controller [0300]: x [10de:1d01]\n") == []


def test_pci_ids_database_names_the_t400():
    """The T400 the lab uses is 10de:1ff2 (desktop, 4 GB), not 10de:1fb2 (Quadro T400 Mobile)."""
    names = dict(line.strip().split("  ", 1) for line in fixture("pci_ids_10de_tu117_excerpt.txt").splitlines()
                 if line.startswith("\t") and not line.startswith("\t\t"))
    assert names["1ff2"] == "TU117GL [T400 4GB / T400E]"
    assert names["1fb2"] == "TU117GLM [Quadro T400 Mobile]"


# ---------------------------------------------------------------- sysfs
def test_sysfs_fallback_from_recorded_listing():
    devices = sysfs_from_lspci_n(fixture("lspci_n_gcp_a2_a100.txt"))
    assert len(devices) == 7
    assert _nvidia.gpus_from_sysfs(devices) == [dict(address="0000:00:04.0", class_code="0302", vendor_id="10de",
                                                     device_id="20b0", pci_id="10de:20b0")]


def test_sysfs_t400_and_its_audio_function():
    devices = {
        "0000:01:00.1": {"vendor": "0x10de\n", "device": "0x10fa\n", "class": "0x040300\n"},
        "0000:01:00.0": {"vendor": "0x10de\n", "device": "0x1ff2\n", "class": "0x030000\n"},
        "0000:00:02.0": {"vendor": "0x8086\n", "device": "0x5917\n", "class": "0x030000\n"},
        "0000:00:14.0": {"vendor": "0x8086\n", "device": "0x9d2f\n"},
        "0000:00:1f.0": {"vendor": "garbage", "device": "0x9d4e\n", "class": "0x060100\n"},
        "not-an-address": {"vendor": "0x10de\n", "device": "0x1ff2\n", "class": "0x030000\n"},
        "0000:02:00.0": None,
    }
    assert _nvidia.gpus_from_sysfs(devices) == [dict(address="0000:01:00.0", class_code="0300", vendor_id="10de",
                                                     device_id="1ff2", pci_id="10de:1ff2")]
    assert _nvidia.gpus_from_sysfs({}) == [] and _nvidia.gpus_from_sysfs(None) == []


# ---------------------------------------------------------------- /proc/driver/nvidia/version
@pytest.mark.parametrize("name, version, module_type", [
    ("proc_version_565.57.01_open_ubuntu2404.txt", "565.57.01", "open"),
    ("proc_version_525.60.11_open_arch.txt", "525.60.11", "open"),
    ("proc_version_555.58_open_gentoo_hyprland.txt", "555.58", "open"),
    ("proc_version_580.173.02_truenas.txt", "580.173.02", "proprietary"),
    ("proc_version_384.98_ubuntu_neofetch.txt", "384.98", "proprietary"),
    ("upgrade_550_quoted_versions_oddmario4.txt", "550.90.07", "proprietary"),
])
def test_driver_version_file(name, version, module_type):
    text = fixture(name)
    parsed = _nvidia.parse_driver_version_file(text)
    assert parsed["version"] == version
    assert parsed["kernel_module_type"] == module_type
    assert parsed["raw_first_line"].startswith("NVRM version: ") and version in parsed["raw_first_line"]
    assert parsed["raw_first_line"] == [line for line in text.splitlines() if line.startswith("NVRM")][0].rstrip()


def test_driver_version_file_without_nvrm_line():
    assert _nvidia.parse_driver_version_file("") is None
    assert _nvidia.parse_driver_version_file(None) is None
    assert _nvidia.parse_driver_version_file(fixture("smi_no_devices_rtx5090.txt")) is None


# ---------------------------------------------------------------- nvidia-smi --query-gpu
def test_smi_query_header_names_the_columns():
    gpus = _nvidia.parse_nvidia_smi_query(fixture("smi_query_header_5gpu_nuxhash.txt"))
    assert len(gpus) == 5
    assert [(g["index"], g["name"]) for g in gpus] == [
        (0, "GeForce GTX 1060 6GB"), (1, "GeForce GTX 1080 Ti"), (2, "GeForce GTX 1060 6GB"),
        (3, "GeForce GTX 1060 6GB"), (4, "GeForce GTX 1060 6GB"),
    ]
    assert gpus[1]["uuid"] == "GPU-15ea7bf9-1a0e-2d7f-9c62-c28e5ca1aaf1"
    assert gpus[0]["pci_bus_id"] is None and gpus[0]["pci_address"] is None  # pci.bus is not pci.bus_id
    assert gpus[0]["memory_total_mib"] is None and gpus[0]["driver_version"] is None


def test_smi_query_units_and_device_id():
    fields = ["name", "memory.total", "driver_version", "pci.device_id"]
    gpus = _nvidia.parse_nvidia_smi_query(fixture("smi_query_2x_quadro_rtx6000_570_akash81.txt"), fields)
    assert [(g["name"], g["memory_total_mib"], g["driver_version"], g["pci_id"]) for g in gpus] == [
        ("Quadro RTX 6000", 24576, "570.211.01", "10de:1e30")
    ] * 2
    lspci_ids = [g["pci_id"] for g in _nvidia.parse_lspci(fixture("lspci_nn_2x_quadro_rtx6000_akash81.txt"))]
    assert lspci_ids == [g["pci_id"] for g in gpus]  # the same machine seen both ways
    gpu, = _nvidia.parse_nvidia_smi_query(fixture("smi_query_v100_pg500_akash90.txt"), ["name", "memory.total", "pci.device_id"])
    assert (gpu["name"], gpu["memory_total_mib"], gpu["pci_id"], gpu["index"]) == ("Tesla PG500-216", 32768, "10de:1df0", None)


def test_smi_query_default_columns_refuse_a_foreign_row():
    with pytest.raises(ValueError, match="has 4 columns, expected 6"):
        _nvidia.parse_nvidia_smi_query(fixture("smi_query_2x_quadro_rtx6000_570_akash81.txt"))
    assert _nvidia.parse_nvidia_smi_query("") == [] and _nvidia.parse_nvidia_smi_query(None) == []


def test_smi_query_not_available_values():
    # nvidia-smi's placeholders for values a GPU does not report (edge case, not a recording)
    gpu, = _nvidia.parse_nvidia_smi_query("0, NVIDIA T400 4GB, GPU-0, 00000000:01:00.0, 550.127.05, [N/A]\n")
    assert gpu["memory_total_mib"] is None and gpu["pci_address"] == "0000:01:00.0" and gpu["index"] == 0
    gpu, = _nvidia.parse_nvidia_smi_query("N/A, x\n", ["pci.device_id", "name"])
    assert gpu["pci_id"] is None
    gpu, = _nvidia.parse_nvidia_smi_query("0x1E30, x\n", ["pci.device_id", "name"])
    assert gpu["pci_id"] is None


# ---------------------------------------------------------------- nvidia-smi failures
@pytest.mark.parametrize("rc", [1, 9, 255])  # the exit status was not recorded; the text decides
def test_failure_driver_not_loaded(rc):
    text = fixture("smi_driver_not_loaded_shine50.txt")
    assert _nvidia.classify_nvidia_smi_failure(rc, text, "") == dict(
        state="driver_not_loaded", reboot_needed=False, message=text.strip(), nvml_library_version=None)


@pytest.mark.parametrize("name, rc, library", [
    ("smi_version_mismatch_550.144_mozilla1167.txt", 18, "550.144"),
    ("smi_version_mismatch_580.178_truenas.txt", 18, "580.178"),
    ("smi_version_mismatch_570.86_el8.txt", 18, "570.86"),
])
def test_failure_version_mismatch(name, rc, library):
    failure = _nvidia.classify_nvidia_smi_failure(rc, fixture(name), None)
    assert failure == dict(state="version_mismatch", reboot_needed=True,
                           message="Failed to initialize NVML: Driver/library version mismatch", nvml_library_version=library)


def test_failure_no_devices():
    failure = _nvidia.classify_nvidia_smi_failure(6, fixture("smi_no_devices_rtx5090.txt"), "")
    assert (failure["state"], failure["reboot_needed"], failure["message"]) == ("no_devices", False, "No devices were found")


def test_failure_not_installed():
    failure = _nvidia.classify_nvidia_smi_failure(127, "", fixture("smi_not_installed_bash_quansight85.txt"))
    assert failure["state"] == "not_installed"
    assert failure["message"] == "$SRC_DIR/conda_build.sh: line 9: nvidia-smi: command not found"
    failure = _nvidia.classify_nvidia_smi_failure(1, "", fixture("smi_not_installed_python_nvidiahtop23.txt"))
    assert failure["state"] == "not_installed" and failure["message"].startswith("FileNotFoundError: [Errno 2]")
    assert _nvidia.classify_nvidia_smi_failure(127, "", "")["state"] == "not_installed"


def test_failure_unknown_and_ok():
    assert _nvidia.classify_nvidia_smi_failure(255, "", "") == dict(
        state="unknown", reboot_needed=False, message="nvidia-smi exited with status 255 and printed nothing", nvml_library_version=None)
    unknown = _nvidia.classify_nvidia_smi_failure(2, fixture("proc_version_580.173.02_truenas.txt"), "")
    assert unknown["state"] == "unknown" and unknown["message"].startswith("NVRM version:")
    ok = _nvidia.classify_nvidia_smi_failure(0, fixture("smi_query_v100_pg500_akash90.txt"), "")
    assert (ok["state"], ok["reboot_needed"]) == ("ok", False)


# ---------------------------------------------------------------- packages and reboot
def dpkg_l_versions(text):
    return dict((line.split()[1], line.split()[2]) for line in text.splitlines() if line.startswith("ii "))


def test_package_version_dpkg():
    versions = dpkg_l_versions(fixture("dpkg_l_nvidia_550_server_ubuntu2404.txt"))
    assert _nvidia.parse_package_version(versions["nvidia-compute-utils-550-server"]) == "550.127.08"
    assert _nvidia.parse_package_version("nvidia-compute-utils-550-server\t" + versions["nvidia-compute-utils-550-server"]) == "550.127.08"
    versions = dpkg_l_versions(fixture("dpkg_l_nvidia_470_focal_nvidiadocker1637.txt"))
    assert _nvidia.parse_package_version(versions["libnvidia-cfg1-470:amd64"]) == "470.103.01"
    assert _nvidia.parse_package_version(versions["libnvidia-common-455"]) == "460.91.03"
    quoted = fixture("upgrade_550_quoted_versions_oddmario4.txt").splitlines()[0]
    assert _nvidia.parse_package_version(quoted) == "550.107.02"


def test_package_version_rpm():
    packages = fixture("rpm_qa_nvidia_570_el8.txt").splitlines()
    driver = [p for p in packages if p.startswith("nvidia-driver-570")][0]
    assert _nvidia.parse_package_version(driver) == "570.86.16"
    assert _nvidia.parse_package_version(fixture("rpm_qa_nvidia_570_el8.txt")) == "570.86.16"  # last line counts
    assert _nvidia.parse_package_version("3:" + driver.split("nvidia-driver-")[1]) == "570.86.16"


@pytest.mark.parametrize("text", ["", None, "\n", "<none>", "nvidia-driver-535"])
def test_package_version_none(text):
    assert _nvidia.parse_package_version(text) is None


def test_reboot_needed_after_upgrade_without_reboot():
    quoted = fixture("upgrade_550_quoted_versions_oddmario4.txt")
    loaded = _nvidia.parse_driver_version_file(quoted)["version"]
    assert _nvidia.reboot_needed(loaded, quoted.splitlines()[0].split()[-1]) is True  # 550.90.07 loaded, 550.107.02 installed
    loaded = _nvidia.parse_driver_version_file(fixture("proc_version_580.173.02_truenas.txt"))["version"]
    library = _nvidia.classify_nvidia_smi_failure(18, fixture("smi_version_mismatch_580.178_truenas.txt"), "")["nvml_library_version"]
    assert _nvidia.reboot_needed(loaded, library) is True


def test_reboot_not_needed():
    loaded = _nvidia.parse_driver_version_file(fixture("proc_version_565.57.01_open_ubuntu2404.txt"))["version"]
    assert _nvidia.reboot_needed(loaded, "565.57.01-0ubuntu1") is False
    assert _nvidia.reboot_needed("570.86.16", "570.86") is False  # NVML prints major.minor only
    assert _nvidia.reboot_needed(None, "550.127.08") is False
    assert _nvidia.reboot_needed("550.127.08", None) is False
    assert _nvidia.reboot_needed("550.127.08", "<none>") is False
