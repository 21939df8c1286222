# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpulab.cluster.kubeflow: argument validation (the install itself: test_kubeflow_install.py)."""
from __future__ import absolute_import, division, print_function

import json

import pytest

from ansible_collections.gpulab.cluster.plugins.modules import kubeflow

from .utils import run_module

__metaclass__ = type

PASSWORD_HASH = "$2y$10$Z4Tb3S7l6bXo1m2y3Qb9uO2b1Tq8vZyC9n5lKx0aY7s6d5f4g3h2i"
OIDC_SECRET = "s3cr3t-oidc-client"
USERS = [{"email": "admin@gpulab.lan", "username": "admin", "password_hash": PASSWORD_HASH}]
BASE = {"release": "v1.10.0", "kubeconfig": "/etc/kubernetes/admin.conf", "dex_users": USERS}
OIDC = {
    "release": "v1.10.0",
    "auth": "oidc",
    "oidc_issuer_url": "https://sso.gpulab.lan/realms/gpulab",
    "oidc_client_id": "kubeflow",
    "oidc_client_secret": OIDC_SECRET,
    "oidc_redirect_url": "http://192.168.50.242/oauth2/callback",
}
PATCH = {
    "target": {"kind": "Deployment", "name": "ml-pipeline", "namespace": "kubeflow"},
    "patch": "- op: replace\n  path: /spec/replicas\n  value: 1\n",
}


@pytest.mark.parametrize("check_mode", [False, True])
@pytest.mark.parametrize("args", [
    BASE,
    dict(BASE, manifests_dir="/srv/mirror/kubeflow-manifests-v1.10.0", kustomize="/usr/local/bin/kubectl",
         components=["central_dashboard", "profiles", "admission_webhook", "notebooks", "katib", "training_operator"],
         patches=[PATCH, {"path": "/srv/patches/requests.yaml"}], context="kubernetes-admin@gpulab"),
    dict(OIDC, bundle="/srv/mirror/kubeflow-v1.10.0-bundle", component_timeouts={"pipelines": 1200, "istio": "300"}),
    dict(BASE, repo_url="https://mirror.gpulab.lan/kubeflow/manifests", wait=False, retries=1, retry_delay=0),
], ids=["fetch", "manifests_dir", "bundle-oidc", "mirror"])
def test_valid_arguments_pass_validation_and_secrets_stay_out(module_harness, monkeypatch, args, check_mode):
    """Valid arguments reach the work (stopped here at the first step that touches the node), secrets unseen."""
    def stop(self):
        raise kubeflow.KubeflowError("stopped by the test at the source")
    monkeypatch.setattr(kubeflow.Source, "parts", stop)
    failed, result = run_module(kubeflow, args, check_mode=check_mode)
    assert failed and result["changed"] is False
    assert result["msg"] == "Kubeflow v1.10.0: stopped by the test at the source"
    text = json.dumps(result)
    assert PASSWORD_HASH not in text and OIDC_SECRET not in text


def test_release_is_required(module_harness):
    failed, result = run_module(kubeflow, {"dex_users": USERS})
    assert failed
    assert "missing required arguments: release" in result["msg"]


@pytest.mark.parametrize("extra, names", [
    ({"manifests_dir": "/srv/m", "bundle": "/srv/b"}, "manifests_dir|bundle|repo_url"),
    ({"manifests_dir": "/srv/m", "repo_url": "https://mirror.gpulab.lan/m"}, "manifests_dir|bundle|repo_url"),
    ({"bundle": "/srv/b", "repo_url": "https://mirror.gpulab.lan/m"}, "manifests_dir|bundle|repo_url"),
    ({"bundle": "/srv/b", "patches": [PATCH]}, "bundle|patches"),
    ({"bundle": "/srv/b", "kustomize": "/usr/local/bin/kustomize"}, "bundle|kustomize"),
])
def test_sources_are_mutually_exclusive(module_harness, extra, names):
    failed, result = run_module(kubeflow, dict(BASE, **extra))
    assert failed
    assert "parameters are mutually exclusive: %s" % names in result["msg"]


def test_dex_needs_users(module_harness):
    failed, result = run_module(kubeflow, {"release": "v1.10.0"})
    assert failed
    assert "auth is dex but all of the following are missing: dex_users" in result["msg"]


@pytest.mark.parametrize("missing", ["oidc_issuer_url", "oidc_client_id", "oidc_client_secret", "oidc_redirect_url"])
def test_oidc_needs_issuer_and_client(module_harness, missing):
    args = {key: value for key, value in OIDC.items() if key != missing}
    failed, result = run_module(kubeflow, args)
    assert failed
    assert "auth is oidc but all of the following are missing: %s" % missing in result["msg"]


def test_dex_users_with_oidc_are_refused(module_harness):
    failed, result = run_module(kubeflow, dict(OIDC, dex_users=USERS), check_mode=True)
    assert failed
    assert result["changed"] is False
    assert "dex_users is only used with auth=dex" in result["msg"]


CONNECTOR = {"type": "ldap", "id": "ldap", "name": "LDAP", "config": {"host": "ldap:636", "bindPW": "s3cret"}}


def test_dex_connectors_with_oidc_are_refused(module_harness):
    failed, result = run_module(kubeflow, dict(OIDC, dex_connectors=[CONNECTOR]), check_mode=True)
    assert failed and "dex_connectors is only used with auth=dex" in result["msg"]


CLIENT = {"id": "grafana", "name": "Grafana", "secret": "0penSesame", "redirect_uris": ["http://g/login/generic_oauth"]}


def test_dex_clients_are_unique_and_their_secret_never_shown(module_harness):
    failed, result = run_module(kubeflow, dict(BASE, dex_static_clients=[CLIENT, CLIENT]), check_mode=True)
    assert failed and "dex_static_clients: the id grafana is used twice" in result["msg"]
    assert "0penSesame" not in str(result)
    failed, result = run_module(kubeflow, dict(OIDC, dex_static_clients=[CLIENT]), check_mode=True)
    assert failed and "dex_static_clients is only used with auth=dex" in result["msg"]


@pytest.mark.parametrize("ids", [["ldap", "ldap"], ["local"]])
def test_dex_connector_ids_are_unique_and_not_local(module_harness, ids):
    connectors = [dict(CONNECTOR, id=i) for i in ids]
    failed, result = run_module(kubeflow, dict(BASE, dex_connectors=connectors), check_mode=True)
    assert failed and "dex_connectors: the id %s is used twice or is Dex's own 'local'" % ids[0] in result["msg"]
    assert "s3cret" not in str(result)


@pytest.mark.parametrize("issuer", ["sso.gpulab.lan/realms/gpulab", "ftp://sso.gpulab.lan", "https://",
                                    "https://sso.gpulab.lan/realms/gpulab?x=1", "https://sso.gpulab.lan/realms/gpulab\n",
                                    "https://sso.gpulab.lan/realms/\tgpulab", "http://[x"])
def test_an_issuer_that_is_no_url_is_refused(module_harness, issuer):
    failed, result = run_module(kubeflow, dict(OIDC, oidc_issuer_url=issuer))
    assert failed and result["changed"] is False
    assert result["msg"].startswith("oidc_issuer_url %r is not an issuer URL" % issuer)


@pytest.mark.parametrize("url", ["/oauth2/callback", "192.168.50.242/oauth2/callback", "http://192.168.50.242/callback",
                                 "http://192.168.50.242/oauth2/callback\n", "http://192.168.50.242/"])
def test_a_relative_redirect_url_is_refused(module_harness, url):
    failed, result = run_module(kubeflow, dict(OIDC, oidc_redirect_url=url))
    assert failed and result["msg"].startswith("oidc_redirect_url %r is not an absolute URL" % url)


@pytest.mark.parametrize("value, ok", [("4m", True), ("1h30m", True), ("1.5m", True), ("0", True), ("4 minutes", False),
                                       ("", False), ("4m\n", False), ("30s", False), ("1ns", False)])
def test_the_cookie_refresh_is_a_go_duration(module_harness, monkeypatch, value, ok):
    def stop(self):
        raise kubeflow.KubeflowError("stopped by the test at the source")
    monkeypatch.setattr(kubeflow.Source, "parts", stop)
    failed, result = run_module(kubeflow, dict(OIDC, oidc_cookie_refresh=value))
    assert failed
    if ok:
        assert result["msg"] == "Kubeflow v1.10.0: stopped by the test at the source"
    else:
        assert result["msg"] == ("oidc_cookie_refresh %r is not a duration of at least a minute like 4m or 1h30m (0 "
                                 "never refreshes)" % value)


def test_a_scope_without_openid_is_refused(module_harness):
    failed, result = run_module(kubeflow, dict(OIDC, oidc_scope="profile email"))
    assert failed and "oidc_scope 'profile email' lacks openid" in result["msg"]


def test_oidc_settings_with_dex_are_refused(module_harness):
    failed, result = run_module(kubeflow, dict(BASE, oidc_client_id="kubeflow", oidc_issuer_url="https://sso"))
    assert failed
    assert "oidc_issuer_url, oidc_client_id only apply with auth=oidc" in result["msg"]


@pytest.mark.parametrize("user, message", [
    ({"email": "admin@gpulab.lan"}, "missing required arguments: password_hash"),
    ({"password_hash": PASSWORD_HASH}, "missing required arguments: email"),
])
def test_dex_user_needs_email_and_hash(module_harness, user, message):
    failed, result = run_module(kubeflow, dict(BASE, dex_users=[user]))
    assert failed
    assert message in result["msg"]
    assert "dex_users" in result["msg"]


def test_unknown_component_is_refused(module_harness):
    failed, result = run_module(kubeflow, dict(BASE, components=["central_dashboard", "jupyterhub"]))
    assert failed
    assert "components" in result["msg"] and "jupyterhub" in result["msg"]


@pytest.mark.parametrize("patch, message", [
    (dict(PATCH, path="/srv/p.yaml"), "parameters are mutually exclusive: patch|path"),
    ({"target": PATCH["target"]}, "one of the following is required: patch, path"),
    (dict(PATCH, target={"kind": "Deployment", "labels": "app=x"}), "labels"),
])
def test_patch_rules(module_harness, patch, message):
    failed, result = run_module(kubeflow, dict(BASE, patches=[patch]))
    assert failed
    assert message in result["msg"]
    assert "not implemented" not in result["msg"]


@pytest.mark.parametrize("option", ["crd_timeout", "webhook_timeout", "retries", "apply_timeout", "wait_timeout"])
def test_bounds_must_be_positive(module_harness, option):
    failed, result = run_module(kubeflow, dict(BASE, **{option: 0}))
    assert failed
    assert "%s must be at least 1, got 0" % option in result["msg"]


def test_negative_retry_delay_is_refused(module_harness):
    failed, result = run_module(kubeflow, dict(BASE, retry_delay=-1))
    assert failed
    assert "retry_delay must not be negative, got -1" in result["msg"]


def test_component_timeouts_name_unknown_component(module_harness):
    failed, result = run_module(kubeflow, dict(BASE, component_timeouts={"pipeline": 1200}))
    assert failed
    assert "component_timeouts names 'pipeline', which is not a component" in result["msg"]


@pytest.mark.parametrize("value", [0, -5, "soon", None])
def test_component_timeouts_must_be_positive_seconds(module_harness, value):
    failed, result = run_module(kubeflow, dict(BASE, component_timeouts={"pipelines": value}))
    assert failed
    assert "component_timeouts.pipelines must be a number of seconds of at least 1" in result["msg"]


def test_default_components_are_the_lab_set():
    spec = kubeflow.argument_spec()
    assert spec["components"]["default"] == kubeflow.DEFAULT_COMPONENTS
    assert set(kubeflow.DEFAULT_COMPONENTS) <= set(spec["components"]["choices"])
    assert "training_operator" in kubeflow.DEFAULT_COMPONENTS and "katib" not in kubeflow.DEFAULT_COMPONENTS
    spec["components"]["default"].append("katib")
    assert "katib" not in kubeflow.argument_spec()["components"]["default"]


def test_secrets_are_no_log():
    spec = kubeflow.argument_spec()
    assert spec["oidc_client_secret"]["no_log"] is True
    assert spec["dex_users"]["options"]["password_hash"]["no_log"] is True
