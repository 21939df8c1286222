#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: swap
short_description: Turn swap off and keep it off across reboots, from every source, reversibly
version_added: 0.1.0
description:
  - Kubernetes nodes run without swap. With O(state=absent) (the default) this module turns off every active
    swap area and makes sure no known source turns swap on again at the next boot.
  - "Sources it knows: swap entries in fstab (by device path, C(UUID=), C(LABEL=), C(PARTUUID=),
    C(PARTLABEL=), C(/dev/disk/by-*) and swap files such as Ubuntu's C(/swap.img)); systemd swap units
    that do not come from fstab; the C(systemd-gpt-auto-generator), which turns on GPT swap partitions by
    itself as soon as fstab has no swap entry left; the C(zram-generator); the swap services
    C(zram-config.service) (Ubuntu zram-config), C(zramswap.service) (zram-tools) and
    C(dphys-swapfile.service)."
  - Fstab swap lines are never deleted. Each is commented with a marker, for example
    C(#gpulab.cluster.swap# /swap.img none swap sw 0 0), so the line and its history stay. Fstab lines the
    module does not own, malformed ones included, are kept byte for byte.
  - Units and generators are masked with a symlink to C(/dev/null) in C(/etc/systemd/system) or
    C(/etc/systemd/system-generators), the way C(systemctl mask) does. A swap unit whose file already lives in
    C(/etc/systemd/system) cannot be masked that way (C(systemctl mask) refuses too); it gets a drop-in
    C(zz-<marker>.conf) with C(ConditionKernelCommandLine=<marker>.allow), so it starts only if that word is
    on the kernel command line.
  - "The GPT auto-generator is masked only when a partition with the GPT type Linux swap
    (C(0657fd6d-a4ab-43c4-84e5-0933c84b4f4f)) exists and the kernel command line does not already say
    C(systemd.gpt_auto=0). Masking the generator is the least invasive fix that holds: the unit it creates is
    named after the partition's device node (C(/dev/disk/by-diskseq/...) on newer systemd), which changes
    between boots, so masking that unit does not last; setting the partition's no-auto attribute rewrites the
    boot disk's partition table; C(systemd.gpt_auto=0) needs a boot loader change. On Ubuntu and Debian
    installs every mount point is in fstab, where the generator leaves it alone, so masking it changes
    nothing else."
  - The zram-generator is masked when its configuration declares a zram swap device (or the kernel command
    line asks for one with C(systemd.zram)). Masking the generator covers the main file, every drop-in
    and the kernel option, and does not edit C(/etc/systemd/zram-generator.conf), which Debian ships as a
    package conffile. A zram device configured as a file system (C(mount-point=)) is disabled too; the module
    warns when it does that.
  - zswap is only reported. It is a compressed cache in front of swap devices and holds nothing when no swap
    device is on, so there is nothing to turn off.
  - What the module masked is recorded in C(/etc/gpulab/swap.json). O(state=present) restores exactly the fstab
    lines that carry the marker, removes exactly the masks and drop-ins in that record, and runs C(swapon -a).
    Masks that an administrator made are never removed.
  - In a container (C(systemd-detect-virt --container) succeeds) the active swap belongs to the host. The module
    then turns nothing off or on and removes no file; it manages only the node's persistent configuration
    (fstab, units, services) and says so in RV(msg) and RV(runtime_managed). The generators do nothing in a
    container and are left alone there.
  - A swap line in fstab that the module cannot parse makes it fail before it changes anything, naming the line.
author:
  - gpulab.cluster developers (@gpulab)
options:
  state:
    description:
      - V(absent) turns swap off now and disables every source that would turn it on at boot.
      - V(present) undoes what this module did (restores its commented fstab lines, removes its masks and
        drop-ins) and turns the fstab swap entries on with C(swapon -a). It does not recreate removed swap files.
    type: str
    choices: [absent, present]
    default: absent
  fstab:
    description:
      - Path of the fstab file to read and edit.
    type: path
    default: /etc/fstab
  remove_files:
    description:
      - With O(state=absent), delete the swap files the module turned off or commented out of fstab.
      - Only regular files (not symlinks, never block devices) that are active swap files or carry a mkswap
        signature are deleted. Ignored in a container and with O(state=present).
    type: bool
    default: false
  marker:
    description:
      - "Word that marks the fstab lines this module commented (C(#<marker># <original line>)) and names its
        drop-ins. Letters, digits and C(. _ - : @ +) only."
      - O(state=present) restores only lines that carry this marker.
    type: str
    default: gpulab.cluster.swap
extends_documentation_fragment:
  - gpulab.cluster.attributes
  - gpulab.cluster.attributes.FULL
notes:
  - Check mode runs the same reads and the same plan without writing; its C(changed), RV(actions) and
    RV(sources) are what the real run reports.
  - Diff mode shows the fstab text before and after.
  - Swap turned on by other means (a C(swapon) in a custom script or service) is not detected; RV(sources.active)
    shows whatever is active when the module runs.
requirements:
  - util-linux (swapon, swapoff, lsblk) and, on a host running systemd, systemctl.
seealso:
  - name: systemd-gpt-auto-generator(8)
    description: Why a GPT swap partition turns on by itself when fstab has no swap entry.
    link: https://www.freedesktop.org/software/systemd/man/latest/systemd-gpt-auto-generator.html
  - name: zram-generator(8)
    description: The zram swap generator and its configuration files.
    link: https://github.com/systemd/zram-generator
"""

EXAMPLES = r"""
- name: Turn swap off now and for good (Kubernetes node)
  gpulab.cluster.swap:
    state: absent

- name: Turn swap off and delete Ubuntu's /swap.img
  gpulab.cluster.swap:
    state: absent
    remove_files: true

- name: Undo what the module did and turn the fstab swap back on
  gpulab.cluster.swap:
    state: present

- name: Preview the change on a node
  gpulab.cluster.swap:
  check_mode: true
  diff: true
  register: swap_plan
"""

RETURN = r"""
msg:
  description: What was done, in a sentence; says so when the runtime swap was left to the host (container).
  returned: always
  type: str
  sample: swap is off and no known source turns it on at the next boot
state:
  description: The requested state.
  returned: always
  type: str
  sample: absent
container:
  description: The container technology that C(systemd-detect-virt --container) reported, or null on a host.
  returned: always
  type: str
  sample: podman
runtime_managed:
  description: False in a container, where the active swap is the host's and is neither turned off nor on.
  returned: always
  type: bool
  sample: true
reboot_safe:
  description:
    - With O(state=absent), true when no source known to the module turns swap on at the next boot once this
      run's changes are made. False when an override the module does not own stands in its way (see warnings).
    - Null with O(state=present).
  returned: always
  type: bool
  sample: true
actions:
  description: Every change made (or, in check mode, that would be made), in order.
  returned: always
  type: list
  elements: str
  sample: ["comment line 12 of /etc/fstab: /swap.img none swap sw 0 0", "swapoff /swap.img"]
fstab:
  description: Path of the fstab file that was read.
  returned: always
  type: str
  sample: /etc/fstab
sources:
  description:
    - Per source, what was found and what was done about it. Each has C(found) (a list of dicts) and
      C(actions) (a list of strings); some add C(note).
    - C(active) swap areas (name, type, size and used in bytes, priority); C(fstab) swap entries (line,
      text, spec, device, state V(active) or V(commented)); C(units) systemd swap units (unit, state, what,
      origin); C(services) swap services; C(generators) (name, path, reason); C(zswap) (enabled);
      C(files) swap files (path, removable, reason).
  returned: always
  type: dict
  contains:
    active:
      description: Active swap areas and the C(swapoff)/C(swapon -a) done.
      type: dict
      returned: always
    fstab:
      description: Swap lines of fstab and the lines commented or restored.
      type: dict
      returned: always
    units:
      description: Swap units known to systemd and the masks or drop-ins made or removed.
      type: dict
      returned: always
    services:
      description: Installed services that turn swap on and the masks made or removed.
      type: dict
      returned: always
    generators:
      description: Generators that would create swap units at boot and the masks made or removed.
      type: dict
      returned: always
    zswap:
      description: Whether zswap is enabled (reported only).
      type: dict
      returned: always
    files:
      description: Swap files and the ones removed (O(remove_files)).
      type: dict
      returned: always
  sample:
    fstab:
      found:
        - line: 12
          text: /swap.img none swap sw 0 0
          spec: /swap.img
          device: /swap.img
          state: active
      actions: ["comment line 12 of /etc/fstab: /swap.img none swap sw 0 0"]
"""

import json
import os
import stat

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.gpulab.cluster.plugins.module_utils import _swap
from ansible_collections.gpulab.cluster.plugins.module_utils._fstab import (
    FstabError,
    FstabFile,
    FstabLine,
    comment_text,
    decode_field,
    read_text,
    spec_device_path,
    uncomment_text,
    validate_marker,
    write_text_atomic,
)

SOURCES = ("active", "fstab", "units", "services", "generators", "zswap", "files")
RECORD_VERSION = 1
# Unit file states (list-unit-files) that cannot start anything by themselves or are handled elsewhere.
_UNIT_STATES_LEFT_ALONE = ("masked", "alias", "transient")


class SwapError(Exception):
    """A failure that becomes fail_json; details go into the result."""

    def __init__(self, msg, **details):
        super(SwapError, self).__init__(msg)
        self.details = details


class Swap(object):
    """Read every swap source, plan the change, then apply it (unless check mode)."""

    def __init__(self, module):
        self.module = module
        self.state = module.params["state"]
        self.fstab_path = module.params["fstab"]
        self.remove_files = module.params["remove_files"]
        self.marker = module.params["marker"]
        self.sources = dict((name, {"found": [], "actions": []}) for name in SOURCES)
        self.actions = []
        self.ops = []
        self.warnings = []
        self.reboot_safe = True
        self.persistent = False
        self.new_record = []

    # ------------------------------------------------------------------ commands
    def _bin(self, name):
        return self.module.get_bin_path(name, required=True)

    def _run(self, args, what, ok_rcs=(0,)):
        rc, out, err = self.module.run_command(args)
        if rc not in ok_rcs:
            command = " ".join([os.path.basename(args[0])] + list(args[1:]))
            raise SwapError(
                "%s failed for %s (rc %d): %s" % (command, what, rc, (err or out).strip()),
                rc=rc,
                stdout=out,
                stderr=err,
                cmd=args,
            )
        return rc, out, err

    # ------------------------------------------------------------------ planning helpers
    def _plan(self, source, action, func, *args):
        self.sources[source]["actions"].append(action)
        self.actions.append(action)
        self.ops.append((action, func, args))

    def _plan_global(self, action, func, *args):
        self.actions.append(action)
        self.ops.append((action, func, args))

    def _warn(self, text):
        self.warnings.append(text)

    # ------------------------------------------------------------------ reading
    def read(self):
        try:
            validate_marker(self.marker)
        except ValueError as exc:
            raise SwapError("%s; set the marker option to a plain word" % exc)
        self.container = self._detect_container()
        self.systemd = os.path.isdir(_swap.host_path(_swap.SYSTEMD_RUNNING))
        self.cmdline = _swap.parse_cmdline(_swap.read_file(_swap.host_path(_swap.PROC_CMDLINE)))
        self.active = self._read_active()
        try:
            self.fstab_text = read_text(self.fstab_path)
        except FstabError as exc:
            raise SwapError("%s; set the fstab option to a readable file" % exc)
        self.fstab = FstabFile.from_text(self.fstab_text or "")
        if self.fstab_text is None:
            self.sources["fstab"]["note"] = "%s does not exist" % self.fstab_path
        self._validate_fstab()
        self.record = self._read_record()

    def _detect_container(self):
        detect = self.module.get_bin_path("systemd-detect-virt")
        if detect:
            rc, out, err = self._run([detect, "--container"], "container detection", ok_rcs=(0, 1))
            if rc == 0:
                return out.strip() or "container"
            return None
        for path in _swap.CONTAINER_FILES:
            if os.path.exists(_swap.host_path(path)):
                return os.path.basename(path).lstrip(".")
        return None

    def _read_active(self):
        swapon = self._bin("swapon")
        rc, out, err = self.module.run_command(
            [swapon, "--show=NAME,TYPE,SIZE,USED,PRIO", "--bytes", "--noheadings", "--raw"]
        )
        try:
            if rc == 0:
                return _swap.parse_swapon_show(out)
            text = _swap.read_file(_swap.host_path(_swap.PROC_SWAPS))
            if text is None:  # a kernel without swap support has no /proc/swaps
                return []
            return _swap.parse_proc_swaps(text)
        except ValueError as exc:
            raise SwapError("cannot read the active swap areas: %s" % exc, rc=rc, stdout=out, stderr=err)

    def _validate_fstab(self):
        for line in self.fstab.malformed():
            source = line.fields[0].lower() if line.fields else ""
            if line.mentions("swap") or "swap" in source:
                raise SwapError(
                    "%s line %d looks like a swap entry but cannot be parsed (%s): %r; nothing was changed. "
                    "Fix or comment that line, or point the fstab option at another file"
                    % (self.fstab_path, line.lineno, line.error, line.text),
                    line=line.lineno,
                    text=line.text,
                )

    def _read_record(self):
        path = _swap.host_path(_swap.STATE_FILE)
        text = _swap.read_file(path)
        if text is None:
            return []
        try:
            data = json.loads(text)
            entries = data["entries"]
            for entry in entries:
                missing = [key for key in ("path", "kind", "source", "name") if key not in entry]
                if missing:
                    raise KeyError(", ".join(missing))
        except (ValueError, KeyError, TypeError) as exc:
            raise SwapError(
                "%s is not a record this module wrote (%s); move it away, then run again" % (_swap.STATE_FILE, exc)
            )
        return entries

    # ------------------------------------------------------------------ identities
    @staticmethod
    def _strip_root(path):
        root = os.path.realpath(_swap.ROOT)
        if root != "/" and path.startswith(root + "/"):
            return path[len(root):]
        return path

    def _resolve(self, spec):
        """(device path as the kernel names it, exists) for an fstab source field."""
        kind, path = spec_device_path(spec)
        candidates = [path]
        if kind in ("UUID", "PARTUUID") and path.lower() != path:
            candidates.append(path.lower())
        for candidate in candidates:
            full = _swap.host_path(candidate)
            if os.path.exists(full):
                return self._strip_root(os.path.realpath(full)), True
        return path, False

    def _active_devices(self):
        return set(self._resolve(swap["name"])[0] for swap in self.active)

    def _swap_lines(self):
        """Active swap lines and the lines this module commented: (line, entry or None, state)."""
        out = []
        for line in self.fstab.entries("swap"):
            out.append((line, line.entry, "active"))
        for line, original in self.fstab.commented_by(self.marker):
            parsed = FstabLine(line.lineno, original, "")
            out.append((line, parsed.entry, "commented"))
        return sorted(out, key=lambda item: item[0].lineno)

    def _fstab_unit_paths(self):
        paths = set()
        for dummy, entry, dummy2 in self._swap_lines():
            if entry is not None:
                paths.add(spec_device_path(entry.spec)[1].lower())
        return paths

    # ------------------------------------------------------------------ absent
    def plan_absent(self):
        self._plan_fstab_absent()
        if self.systemd:
            self._plan_units_absent()
        else:
            self.sources["units"]["note"] = "systemd is not running here: no swap unit can start"
        self._plan_services_absent()
        self._plan_generators_absent()
        self._read_zswap()
        self._plan_record_write()
        self._plan_reload()
        self._plan_active_absent()
        self._plan_files_absent()

    def _found_fstab_lines(self):
        """Record every swap line of fstab under sources.fstab.found; yield (line, state) for each."""
        for line, entry, state in self._swap_lines():
            item = {"line": line.lineno, "text": line.text, "state": state}
            if entry is not None:
                item["spec"] = decode_field(entry.spec)
                item["device"] = self._resolve(entry.spec)[0]
            self.sources["fstab"]["found"].append(item)
            yield line, state

    def _plan_fstab_absent(self):
        new = self.fstab
        for line, state in self._found_fstab_lines():
            if state == "active":
                new = new.replace(line.lineno, comment_text(line.text, self.marker))
                self.sources["fstab"]["actions"].append(
                    "comment line %d of %s: %s" % (line.lineno, self.fstab_path, line.text)
                )
        self._plan_fstab_write(new)

    def _plan_fstab_write(self, new):
        self.new_fstab_text = new.render()
        actions = self.sources["fstab"]["actions"]
        if actions:
            self.persistent = True
            self.actions.extend(actions)
            self.ops.append(("write " + self.fstab_path, self._write_fstab, (self.new_fstab_text,)))

    def _plan_units_absent(self):
        systemctl = self._bin("systemctl")
        dummy, out, dummy2 = self._run(
            [systemctl, "list-units", "--type=swap", "--all", "--no-legend", "--plain", "--no-pager"],
            "swap units",
        )
        loaded = dict((unit["unit"], unit) for unit in _swap.parse_list_units(out))
        # list-unit-files exits 1 when no unit file matches (systemd 252, recorded).
        dummy, out, dummy2 = self._run(
            [systemctl, "list-unit-files", "--type=swap", "--no-legend", "--no-pager"],
            "swap unit files",
            ok_rcs=(0, 1),
        )
        fstab_paths = self._fstab_unit_paths()
        source = self.sources["units"]
        seen = set()
        for unit_file in _swap.parse_list_unit_files(out):
            unit = unit_file["unit"]
            seen.add(unit)
            live = loaded.get(unit, {})
            what = _swap.unit_name_to_path(unit)
            origin = self._unit_origin(unit_file["state"], what, live.get("description"), fstab_paths)
            source["found"].append(
                {"unit": unit, "state": unit_file["state"], "what": what, "origin": origin, "active": live.get("active")}
            )
            if unit_file["state"] in _UNIT_STATES_LEFT_ALONE or origin == "fstab":
                continue
            self._plan_neutralize_unit(unit, "units")
        for unit in sorted(set(loaded) - seen):
            live = loaded[unit]
            source["found"].append(
                {
                    "unit": unit,
                    "state": live["load"],
                    "what": _swap.unit_name_to_path(unit),
                    "origin": "runtime",
                    "active": live["active"],
                }
            )

    @staticmethod
    def _unit_origin(state, what, description, fstab_paths):
        if state != "generated":
            return "unit file"
        if what.lower() in fstab_paths:
            return "fstab"
        if what.startswith("/dev/zram"):
            return _swap.ZRAM_GENERATOR
        if description == "Swap Partition":
            return _swap.GPT_AUTO_GENERATOR
        return "generator"

    def _dropin_content(self, unit):
        return (
            "# Written by gpulab.cluster.swap (marker %s): %s would turn swap on at boot.\n"
            "# The unit starts only when the kernel command line has the word %s.allow.\n"
            "# state=present removes this file.\n"
            "[Unit]\n"
            "ConditionKernelCommandLine=%s.allow\n" % (self.marker, unit, self.marker, self.marker)
        )

    def _plan_neutralize_unit(self, unit, source):
        link = _swap.UNIT_MASK_DIR + "/" + unit
        dropin = "%s/%s.d/zz-%s.conf" % (_swap.UNIT_MASK_DIR, unit, self.marker)
        content = self._dropin_content(unit)
        if _swap.is_dev_null_link(_swap.host_path(link)):
            return
        if _swap.read_file(_swap.host_path(dropin)) == content:
            return
        self.persistent = True
        if os.path.lexists(_swap.host_path(link)):
            # systemctl mask refuses a unit whose file is in /etc/systemd/system: a drop-in holds it instead.
            self.new_record.append(
                {"path": dropin, "kind": "dropin", "source": source, "name": unit, "content": content}
            )
            self._plan(source, "add drop-in %s (%s is a file there)" % (dropin, link), self._write_dropin, dropin, content)
        else:
            self.new_record.append({"path": link, "kind": "mask", "source": source, "name": unit})
            self._plan(source, "mask %s (%s -> /dev/null)" % (unit, link), self._make_mask, link)

    def _plan_services_absent(self):
        for unit, package in _swap.SWAP_SERVICES:
            paths = [
                path
                for path in _swap.find_unit_file(unit)
                if not _swap.is_dev_null_link(_swap.host_path(path))
            ]
            masked = _swap.is_dev_null_link(_swap.host_path(_swap.UNIT_MASK_DIR + "/" + unit))
            if not paths:
                if masked:
                    self.sources["services"]["found"].append({"unit": unit, "package": package, "masked": True})
                continue
            self.sources["services"]["found"].append(
                {"unit": unit, "package": package, "paths": paths, "masked": masked}
            )
            self._plan_neutralize_unit(unit, "services")

    def _plan_generators_absent(self):
        source = self.sources["generators"]
        if self.container:
            source["note"] = "generators do nothing in a container; left alone"
            return
        path = _swap.find_generator(_swap.GPT_AUTO_GENERATOR)
        if path:
            item = {"name": _swap.GPT_AUTO_GENERATOR, "path": path}
            source["found"].append(item)
            if _swap.cmdline_false(self.cmdline, "systemd.gpt_auto"):
                item["reason"] = "disabled on the kernel command line (systemd.gpt_auto=%s)" % self.cmdline[
                    "systemd.gpt_auto"
                ]
            else:
                lsblk = self._bin("lsblk")
                dummy, out, dummy2 = self._run(
                    [lsblk, "--json", "--list", "--paths", "--output", "NAME,TYPE,PARTTYPE"], "block devices"
                )
                try:
                    parts = _swap.gpt_swap_partitions(_swap.parse_lsblk(out))
                except ValueError as exc:
                    raise SwapError("cannot read the lsblk output: %s" % exc, stdout=out)
                item["swap_partitions"] = parts
                if parts:
                    item["reason"] = (
                        "GPT swap partition(s) %s: the generator turns them on at boot once fstab has no swap entry"
                        % ", ".join(parts)
                    )
                    self._plan_mask_generator(_swap.GPT_AUTO_GENERATOR)
                else:
                    item["reason"] = "no partition has the GPT swap type"
        path = _swap.find_generator(_swap.ZRAM_GENERATOR)
        if path:
            files, devices = _swap.zram_generator_config()
            swaps = sorted(name for name, device in devices.items() if device["swap"])
            mounts = sorted(name for name, device in devices.items() if not device["swap"])
            item = {"name": _swap.ZRAM_GENERATOR, "path": path, "config": files, "swap_devices": swaps}
            if "systemd.zram" in self.cmdline and not _swap.cmdline_false(self.cmdline, "systemd.zram"):
                swaps.append("zram0 (kernel command line systemd.zram)")
            source["found"].append(item)
            if swaps:
                item["reason"] = "configured zram swap: %s" % ", ".join(swaps)
                if self._plan_mask_generator(_swap.ZRAM_GENERATOR) and mounts:
                    self._warn(
                        "masking zram-generator also disables its zram file system device(s) %s" % ", ".join(mounts)
                    )
            else:
                item["reason"] = "no zram swap device configured"

    def _plan_mask_generator(self, name):
        """Plan the mask; True when a mask is planned."""
        link = _swap.GENERATOR_MASK_DIR + "/" + name
        full = _swap.host_path(link)
        if _swap.is_dev_null_link(full):
            return False
        if os.path.lexists(full):
            self.reboot_safe = False
            self._warn(
                "%s overrides %s and is not a mask this module made; it was left alone and may turn swap on at "
                "boot: replace it with a symlink to /dev/null or remove it" % (link, name)
            )
            return False
        self.persistent = True
        self.new_record.append({"path": link, "kind": "mask", "source": "generators", "name": name})
        self._plan("generators", "mask %s (%s -> /dev/null)" % (name, link), self._make_mask, link)
        return True

    def _read_zswap(self):
        value = _swap.read_file(_swap.host_path(_swap.ZSWAP_ENABLED))
        if value is not None:
            self.sources["zswap"]["found"].append(
                {"parameter": _swap.ZSWAP_ENABLED, "enabled": value.strip().upper() in ("Y", "1")}
            )
        self.sources["zswap"]["note"] = (
            "zswap is a cache in front of swap devices and holds nothing without one: reported, not changed"
        )

    def _plan_record_write(self):
        if not self.new_record:
            return
        known = set(entry["path"] for entry in self.record)
        entries = self.record + [entry for entry in self.new_record if entry["path"] not in known]
        self._plan_global("record %d mask(s) in %s" % (len(entries), _swap.STATE_FILE), self._write_record, entries)

    def _plan_reload(self):
        if self.persistent and self.systemd:
            self._plan_global("systemctl daemon-reload", self._daemon_reload)

    def _plan_active_absent(self):
        source = self.sources["active"]
        source["found"] = list(self.active)
        if self.container:
            source["note"] = "the active swap belongs to the host (container %s); left alone" % self.container
            return
        for swap in self.active:
            self._plan("active", "swapoff %s" % swap["name"], self._swapoff, swap["name"])

    def _plan_files_absent(self):
        source = self.sources["files"]
        active_files = dict((swap["name"], swap) for swap in self.active if swap["type"] == "file")
        candidates = list(active_files)
        for dummy, entry, dummy2 in self._swap_lines():
            if entry is None:
                continue
            kind, path = spec_device_path(entry.spec)
            if kind == "path" and path.startswith("/") and not path.startswith("/dev/") and path not in candidates:
                candidates.append(path)
        for path in candidates:
            full = _swap.host_path(path)
            item = {"path": path, "removable": False}
            source["found"].append(item)
            try:
                info = os.lstat(full)
            except OSError:
                item["reason"] = "does not exist"
                continue
            if not stat.S_ISREG(info.st_mode):
                item["reason"] = "not a regular file (symlink, block device or other): never removed"
            elif path not in active_files and not _swap.has_swap_signature(full):
                item["reason"] = "not an active swap file and has no swap signature"
            else:
                item["removable"] = True
                item["size"] = info.st_size
                item["reason"] = "swap file"
                if self.remove_files and not self.container:
                    self._plan("files", "remove %s" % path, self._remove_file, path)
        if self.remove_files and self.container:
            source["note"] = "remove_files is ignored in a container"

    # ------------------------------------------------------------------ present
    def plan_present(self):
        if self.remove_files:
            self._warn("remove_files applies to state=absent only; ignored")
        self._plan_fstab_present()
        self._plan_record_undo()
        self._read_zswap()
        self._plan_reload()
        self._plan_active_present()

    def _plan_fstab_present(self):
        source = self.sources["fstab"]
        new = self.fstab
        for line, state in self._found_fstab_lines():
            if state == "commented":
                original = uncomment_text(line.text, self.marker)
                new = new.replace(line.lineno, original)
                source["actions"].append("restore line %d of %s: %s" % (line.lineno, self.fstab_path, original))
        self.restored_fstab = new
        self._plan_fstab_write(new)

    def _plan_record_undo(self):
        for entry in self.record:
            full = _swap.host_path(entry["path"])
            source = entry["source"] if entry["source"] in self.sources else "units"
            self.sources[source]["found"].append(
                {"name": entry["name"], "path": entry["path"], "kind": entry["kind"], "recorded": True}
            )
            if entry["kind"] == "mask" and _swap.is_dev_null_link(full):
                self.persistent = True
                self._plan(source, "unmask %s (remove %s)" % (entry["name"], entry["path"]), self._remove_path, entry["path"])
            elif entry["kind"] == "dropin" and _swap.read_file(full) == entry.get("content"):
                self.persistent = True
                self._plan(source, "remove drop-in %s" % entry["path"], self._remove_path, entry["path"])
            elif os.path.lexists(full):
                # Changed since the module wrote it: someone else owns it now.
                self._warn("%s was changed after this module wrote it; left alone" % entry["path"])
        if self.record:
            self._plan_global("remove the record %s" % _swap.STATE_FILE, self._remove_path, _swap.STATE_FILE)

    def _plan_active_present(self):
        source = self.sources["active"]
        source["found"] = list(self.active)
        if self.container:
            source["note"] = "the active swap belongs to the host (container %s); nothing turned on" % self.container
            return
        active = self._active_devices()
        pending = []
        for line in self.restored_fstab.entries("swap"):
            if line.entry.has_option("noauto"):
                continue
            device, exists = self._resolve(line.entry.spec)
            if not exists:
                self._warn(
                    "%s line %d: %s does not exist; swapon -a skips it" % (self.fstab_path, line.lineno, line.entry.spec)
                )
            elif device not in active:
                pending.append(device)
        if pending:
            self._plan("active", "swapon -a (turns on %s)" % ", ".join(pending), self._swapon_all)

    # ------------------------------------------------------------------ writes
    def _write_fstab(self, text):
        try:
            write_text_atomic(self.module, os.path.realpath(self.fstab_path), text)
        except (IOError, OSError) as exc:
            raise SwapError("cannot write %s: %s; nothing else was changed" % (self.fstab_path, exc))

    def _make_mask(self, link):
        full = _swap.host_path(link)
        folder = os.path.dirname(full)
        if not os.path.isdir(folder):
            os.makedirs(folder, 0o755)
        os.symlink("/dev/null", full)

    def _write_dropin(self, path, content):
        full = _swap.host_path(path)
        folder = os.path.dirname(full)
        if not os.path.isdir(folder):
            os.makedirs(folder, 0o755)
        write_text_atomic(self.module, full, content)

    def _write_record(self, entries):
        full = _swap.host_path(_swap.STATE_FILE)
        folder = os.path.dirname(full)
        if not os.path.isdir(folder):
            os.makedirs(folder, 0o755)
        text = json.dumps({"version": RECORD_VERSION, "entries": entries}, indent=2, sort_keys=True) + "\n"
        write_text_atomic(self.module, full, text)

    def _remove_path(self, path):
        full = _swap.host_path(path)
        os.unlink(full)
        folder = os.path.dirname(full)
        if folder.endswith(".d") and not os.listdir(folder):
            os.rmdir(folder)

    def _remove_file(self, path):
        full = _swap.host_path(path)
        if not stat.S_ISREG(os.lstat(full).st_mode):  # changed under us: never remove anything else
            raise SwapError("%s is no longer a regular file; not removed" % path)
        os.unlink(full)

    def _daemon_reload(self):
        self._run([self._bin("systemctl"), "daemon-reload"], "the new unit configuration")

    def _swapoff(self, name):
        self._run([self._bin("swapoff"), name], name)

    def _swapon_all(self):
        self._run([self._bin("swapon"), "-a"], "the swap entries of %s" % self.fstab_path)

    def apply(self):
        done = []
        for action, func, args in self.ops:
            try:
                func(*args)
            except SwapError as exc:
                exc.details.setdefault("actions_done", done)
                raise
            except (IOError, OSError) as exc:
                raise SwapError("%s failed: %s" % (action, exc), actions_done=done)
            done.append(action)

    # ------------------------------------------------------------------ result
    def result(self):
        changed = bool(self.ops)
        if self.state == "absent":
            if self.container:
                msg = (
                    "running in a container (%s): the active swap belongs to the host and was left alone; "
                    "only this node's persistent swap configuration was managed" % self.container
                )
            elif changed:
                msg = "swap turned off and every known source that turns it on at boot disabled"
            else:
                msg = "swap is off and no known source turns it on at the next boot"
            if not self.reboot_safe:
                msg += "; some source may still turn swap on at boot, see the warnings"
            reboot_safe = self.reboot_safe
        else:
            if changed:
                msg = "restored the swap configuration this module had disabled"
            else:
                msg = "nothing of this module's left to restore and no fstab swap entry left to turn on"
            if self.container:
                msg += "; running in a container (%s): the runtime swap belongs to the host and was left alone" % (
                    self.container
                )
            reboot_safe = None
        result = {
            "changed": changed,
            "msg": msg,
            "state": self.state,
            "container": self.container,
            "runtime_managed": not self.container,
            "reboot_safe": reboot_safe,
            "actions": self.actions,
            "fstab": self.fstab_path,
            "sources": self.sources,
        }
        for warning in self.warnings:
            self.module.warn(warning)
        if self.module._diff:
            result["diff"] = {
                "before": self.fstab_text or "",
                "after": self.new_fstab_text,
                "before_header": self.fstab_path,
                "after_header": self.fstab_path,
            }
        return result

    def run(self):
        self.read()
        if self.state == "absent":
            self.plan_absent()
        else:
            self.plan_present()
        if not self.module.check_mode:
            self.apply()
        return self.result()


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", default="absent", choices=["absent", "present"]),
            fstab=dict(type="path", default="/etc/fstab"),
            remove_files=dict(type="bool", default=False),
            marker=dict(type="str", default="gpulab.cluster.swap"),
        ),
        supports_check_mode=True,
    )
    module.run_command_environ_update = dict(LANG="C", LC_ALL="C", LC_MESSAGES="C", LC_CTYPE="C")
    try:
        result = Swap(module).run()
    except SwapError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
