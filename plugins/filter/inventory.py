# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Filters over the inventory: gpulab.cluster.inventory_problems (documented in inventory_problems.yml)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from collections.abc import Mapping

from jinja2 import Undefined

from ansible.errors import AnsibleError, AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

from ansible_collections.gpulab.cluster.plugins.module_utils._inventory_rules import (
    VARIABLES,
    Unresolved,
    validate,
)


def _plain(value):
    """A deep copy made of dict, list and scalars; templating happens here, so errors surface here."""
    if isinstance(value, Undefined):
        # Raises the undefined error (StrictUndefined) or says what is undefined.
        return Unresolved(to_text(getattr(value, "_undefined_message", None) or "undefined variable"))
    if isinstance(value, Mapping):
        return dict((_plain(key), _plain(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _host_variables(hostvars, host):
    """The variables the rules read, for one host; a value that fails to template becomes Unresolved."""
    if host not in hostvars:
        return {}
    variables = hostvars[host]
    if not isinstance(variables, Mapping):
        return {}
    result = {}
    for name in VARIABLES:
        if name not in variables:
            continue
        try:
            result[name] = _plain(variables[name])
        except AnsibleError as exc:
            result[name] = Unresolved(to_text(exc.message))
    return result


def inventory_description(hostvars, groups):
    """The plain description the rules take, built from Ansible's hostvars and groups."""
    if not isinstance(hostvars, Mapping):
        raise AnsibleFilterError("inventory_problems expects hostvars as its input, got %s" % type(hostvars).__name__)
    if not isinstance(groups, Mapping):
        raise AnsibleFilterError("inventory_problems expects groups as its argument, got %s" % type(groups).__name__)
    plain_groups = dict((to_text(name), [to_text(host) for host in members or []]) for name, members in groups.items())
    hosts = plain_groups.get("all")
    if hosts is None:
        hosts = [to_text(host) for host in hostvars]
    return {
        "groups": plain_groups,
        "hostvars": dict((host, _host_variables(hostvars, host)) for host in hosts),
    }


def inventory_problems(hostvars, groups):
    """Every problem of the inventory, one sentence each naming the culprit; empty when it is fine."""
    return validate(inventory_description(hostvars, groups))


class FilterModule(object):
    """gpulab.cluster inventory filters."""

    def filters(self):
        return {
            "inventory_problems": inventory_problems,
        }
