# -*- coding: utf-8 -*-
"""Helpers for module unit tests: run a module's main() with arguments, catch exit/fail."""
from __future__ import absolute_import, division, print_function

import json

import pytest
from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes

__metaclass__ = type


class AnsibleExitJson(Exception):
    """Raised in place of exit_json; carries the result."""


class AnsibleFailJson(Exception):
    """Raised in place of fail_json; carries the result."""


def set_module_args(args):
    """Hand args to the next AnsibleModule built (ansible-core 2.19 reads them from a context)."""
    args = dict(args)
    args.setdefault("_ansible_remote_tmp", "/tmp")
    args.setdefault("_ansible_keep_remote_files", False)
    try:
        from ansible.module_utils.testing import patch_module_args  # ansible-core >= 2.19
    except ImportError:  # pragma: no cover - older cores
        basic._ANSIBLE_ARGS = to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        return None
    return patch_module_args(args)


def _exit_json(self, **kwargs):
    kwargs.setdefault("changed", False)
    raise AnsibleExitJson(kwargs)


def _fail_json(self, msg, **kwargs):
    kwargs["failed"] = True
    kwargs["msg"] = msg
    raise AnsibleFailJson(kwargs)


@pytest.fixture
def module_harness(monkeypatch):
    """Patch exit/fail so a test gets the result as an exception."""
    monkeypatch.setattr(basic.AnsibleModule, "exit_json", _exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", _fail_json)
    return None


def run_module(module, args, check_mode=False, diff=False):
    """Run module.main() with args; return (failed, result)."""
    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True
    if diff:
        args["_ansible_diff"] = True
    ctx = set_module_args(args)
    try:
        if ctx is not None:
            with ctx:
                module.main()
        else:  # pragma: no cover
            module.main()
    except AnsibleExitJson as exc:
        return False, exc.args[0]
    except AnsibleFailJson as exc:
        return True, exc.args[0]
    raise AssertionError("module neither exited nor failed")
