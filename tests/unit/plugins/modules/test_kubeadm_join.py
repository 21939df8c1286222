# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpulab.cluster.kubeadm_join: argument validation of the 0.1.0 interface (behaviour: issue 5)."""
from __future__ import absolute_import, division, print_function

import json

import pytest

from ansible_collections.gpulab.cluster.plugins.modules import kubeadm_join

from .utils import run_module

__metaclass__ = type

TOKEN = "abcdef.0123456789abcdef"
CERT_KEY = "f" * 64
CA_HASH = "sha256:4c5a0e3bd1c8a3cbb2f3b4b0a0c7e9b1d7f0a36e3a2e8c1d9b6f5e4d3c2b1a09"
ENDPOINT = "lb01.gpulab.lan:6443"

INIT = {
    "state": "init",
    "control_plane_endpoint": ENDPOINT,
    "kubernetes_version": "v1.31.4",
    "cluster_name": "gpulab",
    "pod_subnet": "10.244.0.0/16",
    "cert_sans": ["lb01.gpulab.lan", "192.168.50.10"],
    "advertise_address": "192.168.50.11",
    "token": TOKEN,
    "certificate_key": CERT_KEY,
}
CONTROL_PLANE = {
    "state": "control_plane",
    "control_plane_endpoint": ENDPOINT,
    "token": TOKEN,
    "certificate_key": CERT_KEY,
    "ca_cert_hashes": [CA_HASH],
    "advertise_address": "192.168.50.12",
}
WORKER = {"state": "worker", "control_plane_endpoint": ENDPOINT, "token": TOKEN, "ca_cert_hashes": [CA_HASH]}
RESET = {"state": "reset", "cri_socket": "unix:///run/containerd/containerd.sock"}


def _assert_not_implemented(failed, result):
    assert failed
    assert result["changed"] is False
    assert "gpulab.cluster.kubeadm_join is not implemented in this release (0.1.0)" in result["msg"]
    assert "issue #5" in result["msg"]
    assert "Nothing was changed." in result["msg"]


@pytest.mark.parametrize("check_mode", [False, True])
@pytest.mark.parametrize("args", [
    INIT,
    dict(INIT, token=None, certificate_key=None, remove_etcd_members=["cp03"]),
    CONTROL_PLANE,
    WORKER,
    RESET,
], ids=["init", "init-remove-member", "control_plane", "worker", "reset"])
def test_valid_arguments_reach_not_implemented(module_harness, args, check_mode):
    args = {key: value for key, value in args.items() if value is not None}
    failed, result = run_module(kubeadm_join, args, check_mode=check_mode)
    _assert_not_implemented(failed, result)
    text = json.dumps(result)
    assert TOKEN not in text and CERT_KEY not in text


def test_state_is_required(module_harness):
    failed, result = run_module(kubeadm_join, {"control_plane_endpoint": ENDPOINT})
    assert failed
    assert "missing required arguments: state" in result["msg"]


def test_unknown_state_is_refused(module_harness):
    failed, result = run_module(kubeadm_join, dict(WORKER, state="join"))
    assert failed
    assert "state" in result["msg"] and "join" in result["msg"]


@pytest.mark.parametrize("base, missing", [
    (INIT, ["control_plane_endpoint"]),
    (INIT, ["kubernetes_version", "pod_subnet"]),
    (CONTROL_PLANE, ["certificate_key"]),
    (CONTROL_PLANE, ["token", "ca_cert_hashes"]),
    (CONTROL_PLANE, ["control_plane_endpoint"]),
    (WORKER, ["token"]),
    (WORKER, ["ca_cert_hashes"]),
    (WORKER, ["control_plane_endpoint"]),
])
def test_state_requires_its_material(module_harness, base, missing):
    args = {key: value for key, value in base.items() if key not in missing}
    failed, result = run_module(kubeadm_join, args)
    assert failed
    assert "state is %s but all of the following are missing: %s" % (base["state"], ", ".join(missing)) in result["msg"]


def test_worker_does_not_need_a_certificate_key(module_harness):
    _assert_not_implemented(*run_module(kubeadm_join, WORKER))


@pytest.mark.parametrize("base", [CONTROL_PLANE, WORKER, RESET])
def test_remove_etcd_members_outside_init_is_refused(module_harness, base):
    failed, result = run_module(kubeadm_join, dict(base, remove_etcd_members=["cp03"]), check_mode=True)
    assert failed
    assert result["changed"] is False
    assert "remove_etcd_members is only valid with state=init" in result["msg"]
    assert "state=%s" % base["state"] in result["msg"]


def test_secrets_are_no_log_and_nothing_else_is():
    spec = kubeadm_join.argument_spec()
    assert {name for name, option in spec.items() if option.get("no_log")} == {"token", "certificate_key"}
    assert spec["token_ttl"]["no_log"] is False


def test_no_log_hides_secrets_in_real_module_output(capsys):
    """Without the harness, the real fail_json must not print the token or the certificate key."""
    from .utils import set_module_args

    ctx = set_module_args(CONTROL_PLANE)
    with pytest.raises(SystemExit):
        if ctx is not None:
            with ctx:
                kubeadm_join.main()
        else:  # pragma: no cover
            kubeadm_join.main()
    out = capsys.readouterr().out
    assert "issue #5" in out
    assert TOKEN not in out and CERT_KEY not in out
