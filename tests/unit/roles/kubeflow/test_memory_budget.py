# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kubeflow role's requests and limits (defaults/main.yml) against docs/kubeflow.md "Memory budget": every entry
has its row with the same numbers, and the page's totals are the sum of its rows and fit the role's budget."""
from __future__ import absolute_import, division, print_function

import os
import re

import pytest
import yaml

from ansible_collections.gpulab.cluster.plugins.filter.kubeflow import kubeflow_resources
from ansible_collections.gpulab.cluster.plugins.module_utils._tenants import quantity

__metaclass__ = type

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
MIB = 1024 * 1024


def defaults():
    with open(os.path.join(ROOT, "roles", "kubeflow", "defaults", "main.yml")) as handle:
        found = yaml.safe_load(handle)
    sidecar = found["kubeflow_sidecar_resources"]
    by_part = {}
    for part, entries in found["kubeflow_resources"].items():
        by_part[part] = []
        for entry in entries:
            if "sidecar" in entry:
                assert entry["sidecar"] == "{{ kubeflow_sidecar_resources }}"
                entry = dict(entry, sidecar=sidecar)
            by_part[part].append(entry)
    return found, by_part


def page():
    with open(os.path.join(ROOT, "docs", "kubeflow.md")) as handle:
        text = handle.read()
    return text[text.index("## Memory budget"):text.index("## How the module installs")]


def rows():
    found = {}
    for line in page().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[2].isdigit():
            found[(cells[0], cells[1])] = dict(count=int(cells[2]), upstream=cells[3], gpulab=cells[4],
                                               sidecar=cells[5] == "yes")
    return found


def pair(text):
    """'256Mi (1Gi)' -> (bytes, bytes)."""
    match = re.match(r"^(\S+) \((\S+)\)$", text)
    return quantity(match.group(1)), quantity(match.group(2))


def test_every_entry_of_the_role_has_its_row_with_the_same_numbers():
    _found, by_part = defaults()
    table = rows()
    listed = set()
    for part, entries in by_part.items():
        for entry in entries:
            row = table[(part, entry["name"])]
            assert pair(row["gpulab"]) == (quantity(entry["requests"]["memory"]), quantity(entry["limits"]["memory"]))
            assert row["sidecar"] is ("sidecar" in entry), entry["name"]
            listed.add((part, entry["name"]))
    # the other rows keep the release's numbers
    assert [key for key, row in table.items() if key not in listed] == [
        key for key, row in table.items() if row["gpulab"] == "kept"]


def totals(auth):
    found, by_part = defaults()
    sidecar = found["kubeflow_sidecar_resources"]
    components = yaml.safe_load(open(os.path.join(ROOT, "roles", "kubeflow", "defaults", "main.yml")))[
        "kubeflow_components"]
    installed = set(part for part, entries in by_part.items()
                    if kubeflow_resources({part: entries}, components, auth))
    asked = limits = 0
    for (part, _name), row in rows().items():
        if part not in installed and part in by_part:
            continue
        request, limit = pair(row["upstream"] if row["gpulab"] == "kept" else row["gpulab"])
        asked += row["count"] * request
        limits += row["count"] * limit
        if row["sidecar"]:
            asked += quantity(sidecar["requests"]["memory"])
            limits += quantity(sidecar["limits"]["memory"])
    return asked, limits, quantity(found["kubeflow_memory_budget"])


def test_the_pages_totals_are_its_rows_and_fit_the_budget():
    text = " ".join(page().split())
    asked, limits, budget = totals("dex")
    oidc_asked = totals("oidc")[0]
    match = re.search(r"Total asked: (\d+) MiB\*\* \((\S+) GiB\) of the (\d+) GiB budget with `dex` \((\d+) MiB with "
                      r"`oidc`\): (\d+) MiB for the containers and (\d+) MiB for (\d+) sidecars\. At limits it is "
                      r"(\S+) GiB.*? Averaged over 15 workers that is (\S+) GiB each", text)
    assert match, "the totals sentence of docs/kubeflow.md changed shape"
    assert int(match.group(1)) * MIB == asked and "%.1f" % (float(asked) / 1024 / MIB) == match.group(2)
    assert int(match.group(3)) * 1024 * MIB == budget and asked <= budget
    assert int(match.group(4)) * MIB == oidc_asked
    _found, by_part = defaults()
    sidecars = sum(1 for row in rows().values() if row["sidecar"])
    assert int(match.group(7)) == sidecars
    assert (int(match.group(5)) + int(match.group(6))) * MIB == asked
    assert int(match.group(6)) * MIB == sidecars * quantity(_found["kubeflow_sidecar_resources"]["requests"]["memory"])
    assert "%.1f" % (float(limits) / 1024 / MIB) == match.group(8)
    assert "%.2f" % (float(asked) / 15 / 1024 / MIB) == match.group(9)


@pytest.mark.parametrize("auth", ["dex", "oidc"])
def test_the_roles_entries_pass_the_filter_for_the_default_components(auth):
    found, by_part = defaults()
    entries = kubeflow_resources(by_part, found["kubeflow_components"], auth)
    assert ("dex" in [e["name"] for e in entries]) is (auth == "dex")
