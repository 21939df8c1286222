# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""gpulab.cluster.kubeflow_resources: the resources entries of the parts an install applies (documented in
kubeflow_resources.yml); which parts those are is module_utils/_kubeflow.py's part_names, as the module has it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.gpulab.cluster.plugins.module_utils import _kubeflow


def kubeflow_resources(by_part, components, auth="dex"):
    """The entries of ``by_part`` ({part: [entries]}) for the parts an install of ``components`` with ``auth``
    applies, in install order; a key that is no part is refused, so that a misspelt part is not silently skipped."""
    if not isinstance(by_part, dict):
        raise AnsibleFilterError("kubeflow_resources must be a mapping of Kubeflow parts to lists of entries, got %s"
                                 % type(by_part).__name__)
    known = [name for name, _folders in _kubeflow.PLATFORM + (_kubeflow.KNATIVE,) + _kubeflow.APPLICATIONS]
    unknown = sorted(set(by_part) - set(known))
    if unknown:
        raise AnsibleFilterError("kubeflow_resources names %s, which %s no Kubeflow part; the parts are %s" % (
            ", ".join(unknown), "is" if len(unknown) == 1 else "are", ", ".join(known)))
    try:
        parts = _kubeflow.part_names(list(components), auth)
    except _kubeflow.KubeflowError as exc:
        raise AnsibleFilterError("kubeflow_components: %s" % exc)
    entries = []
    for part in parts:
        listed = by_part.get(part) or []
        if not isinstance(listed, list):
            raise AnsibleFilterError("kubeflow_resources.%s must be a list of entries (name, requests, limits, ...)"
                                     % part)
        entries.extend(listed)
    return entries


class FilterModule(object):
    """gpulab.cluster Kubeflow filters."""

    def filters(self):
        return {
            "kubeflow_resources": kubeflow_resources,
        }
