# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""gpulab.cluster.tenant_objects and tenant_summary: the Kubernetes objects of the inventory's tenants and what else
the tenants role needs (documented in tenant_objects.yml and tenant_summary.yml); the rules and the objects live in
the collection's module_utils/_tenants.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.gpulab.cluster.plugins.module_utils import _tenants


def _boolean(value):
    """A flag as Ansible writes it: a bool, or 'true'/'false' and their kin from -e or a template."""
    return boolean(value, strict=True)


def tenant_objects(tenants, site_limits=None, kubeflow=False, schedule_namespace=None):
    """The objects of every present tenant; a list with problems is refused with all of them named."""
    try:
        return _tenants.objects(tenants, site_limits or None, _boolean(kubeflow), schedule_namespace or None)
    except ValueError as exc:
        raise AnsibleFilterError("gpulab_tenants: %s" % exc)


def tenant_summary(tenants, site_limits=None, kubeflow=False, schedule_namespace=None):
    """{present: [names], absent: [{name, delete_data}], users: [owners and members of present tenants],
    bindings and policies: [namespace/name rendered]}."""
    try:
        return _tenants.summary(tenants, site_limits or None, _boolean(kubeflow), schedule_namespace or None)
    except ValueError as exc:
        raise AnsibleFilterError("gpulab_tenants: %s" % exc)


class FilterModule(object):
    """gpulab.cluster tenant filters."""

    def filters(self):
        return {
            "tenant_objects": tenant_objects,
            "tenant_summary": tenant_summary,
        }
