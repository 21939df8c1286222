# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a Kubeflow release holds, read from the real example/kustomization.yaml of two kubeflow/manifests commits."""
from __future__ import absolute_import, division, print_function

import os

import pytest
import yaml

from ansible_collections.gpulab.cluster.plugins.module_utils import _kubeflow as kf

__metaclass__ = type

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "kubeflow")


def example(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return kf.example_paths(handle.read())


def test_the_paths_of_both_layouts():
    old = example("example-kustomization-032ed47.yaml")
    new = example("example-kustomization-424c673.yaml")
    assert old[0] == "../common/cert-manager/cert-manager/base" and len(old) == 28
    # inline comments and commented-out entries are not paths
    assert "../common/oauth2-proxy/overlays/m2m-dex-only" in new
    assert "../applications/training-operator/upstream/overlays/kubeflow" not in new
    assert "../applications/trainer/overlays" in new
    assert not [p for p in new if "#" in p]


def test_components_map_to_their_folders_in_either_layout():
    old = dict(kf.select(example("example-kustomization-032ed47.yaml"), ["profiles", "training_operator", "kserve"]))
    new = dict(kf.select(example("example-kustomization-424c673.yaml"), ["profiles", "spark_operator", "kserve"]))
    assert old["training_operator"] == ["../apps/training-operator/upstream/overlays/kubeflow"]
    assert old["istio"][0] == "../common/istio-1-22/istio-crds/base" and new["istio"][0] == "../common/istio/istio-crds/base"
    assert old["dex"] == new["dex"] == ["../common/dex/overlays/oauth2-proxy"]
    assert new["profiles"] == ["../applications/profiles/pss"]
    assert new["spark_operator"] == ["../applications/spark/spark-operator/overlays/kubeflow"]
    assert old["knative"] == ["../common/knative/knative-serving/overlays/gateways"]
    assert all("user-namespace" not in p for paths in old.values() for p in paths)


def test_a_component_commented_out_is_not_in_the_release():
    with pytest.raises(kf.KubeflowError, match="training_operator not in this release"):
        kf.select(example("example-kustomization-424c673.yaml"), ["training_operator"])


def test_an_example_without_the_platform_is_refused():
    with pytest.raises(kf.KubeflowError, match="lists no cert_manager, kubeflow_namespace, istio"):
        kf.select(["../apps/profiles/upstream/overlays/kubeflow"], ["profiles"])
    with pytest.raises(kf.KubeflowError, match="lists no resources"):
        kf.example_paths("apiVersion: v1\nkind: Kustomization\n")


@pytest.mark.parametrize("release, version, accepted", [
    ("v1.10.0", "v1.33.5", "1.33"), ("v1.10.0", "v1.31.0", "1.31"), ("v1.9.0", "v1.29.10+k3s1", "1.29"),
])
def test_kubernetes_inside_the_range(release, version, accepted):
    assert kf.check_kubernetes(release, version) == accepted


@pytest.mark.parametrize("release, version, message", [
    ("v1.10.0", "v1.34.0", "accepts 1.31 to 1.33"), ("v1.10.0", "v1.30.2", "accepts 1.31 to 1.33"),
    ("v1.9.0", "v1.33.5", "validated on 1.29"), ("v1.10.0", "garbage", "is not a Kubernetes version"),
])
def test_kubernetes_outside_the_range(release, version, message):
    with pytest.raises(kf.KubeflowError, match=message):
        kf.check_kubernetes(release, version)


def test_dex_users_replace_the_example_user():
    with open(os.path.join(FIXTURES, "dex-config-map-oauth2-proxy-c42a95d.yaml")) as handle:
        config_map = yaml.safe_load(handle)
    users = [{"email": "ada@gpulab.lan", "password_hash": "$2y$10$x", "username": None}]
    assert kf.set_dex_users([config_map], users, yaml) == 1
    config = yaml.safe_load(config_map["data"]["config.yaml"])
    assert config["staticPasswords"] == [{"email": "ada@gpulab.lan", "hash": "$2y$10$x", "username": "ada",
                                          "userID": kf.dex_static_passwords(users)[0]["userID"]}]
    assert config["issuer"] == "http://dex.auth.svc.cluster.local:5556/dex"
    # the same e-mail gives the same userID on every run (Dex keys sessions by it)
    assert kf.dex_static_passwords(users) == kf.dex_static_passwords(users)


LDAP = {"type": "ldap", "id": "ldap", "name": "Site directory",
        "config": {"host": "ldap.gpulab.lan:636", "bindDN": "uid=kubeflow,cn=users,dc=gpulab,dc=lan",
                   "bindPW": "secret", "userSearch": {"baseDN": "cn=users,dc=gpulab,dc=lan", "username": "uid",
                                                      "idAttr": "uid", "emailAttr": "mail", "nameAttr": "cn"}}}


def _dex_objects():
    with open(os.path.join(FIXTURES, "dex-config-map-oauth2-proxy-c42a95d.yaml")) as handle:
        config_map = yaml.safe_load(handle)
    deployment = {"kind": "Deployment", "metadata": {"name": "dex", "namespace": "auth"}, "spec": {}}
    return config_map, deployment


def test_an_ldap_connector_joins_the_static_users_and_restarts_dex():
    users = [{"email": "ada@gpulab.lan", "password_hash": "$2y$10$x", "username": None}]
    config_map, deployment = _dex_objects()
    kf.set_dex_users([config_map, deployment], users, yaml)
    without = deployment["spec"]["template"]["metadata"]["annotations"][kf.DEX_USERS_ANNOTATION]
    config_map, deployment = _dex_objects()
    kf.set_dex_users([config_map, deployment], users, yaml, [LDAP])
    config = yaml.safe_load(config_map["data"]["config.yaml"])
    assert config["connectors"] == [LDAP] and config["enablePasswordDB"] is True
    assert len(config["staticPasswords"]) == 1
    with_ldap = deployment["spec"]["template"]["metadata"]["annotations"][kf.DEX_USERS_ANNOTATION]
    assert with_ldap != without and "secret" not in with_ldap


def test_a_client_joins_kubeflows_own_and_restarts_dex():
    users = [{"email": "ada@gpulab.lan", "password_hash": "$2y$10$x", "username": None}]
    config_map, deployment = _dex_objects()
    release_clients = yaml.safe_load(config_map["data"]["config.yaml"])["staticClients"]
    kf.set_dex_users([config_map, deployment], users, yaml)
    without = deployment["spec"]["template"]["metadata"]["annotations"][kf.DEX_USERS_ANNOTATION]
    grafana = {"id": "grafana", "name": "Grafana", "secret": "s", "redirect_uris": ["http://192.168.50.241/login/generic_oauth"]}
    config_map, deployment = _dex_objects()
    kf.set_dex_users([config_map, deployment], users, yaml, None, [grafana])
    config = yaml.safe_load(config_map["data"]["config.yaml"])
    # the release's client (oauth2-proxy's) stays, Grafana's joins in Dex's own spelling
    assert config["staticClients"] == release_clients + [
        {"id": "grafana", "name": "Grafana", "secret": "s", "redirectURIs": ["http://192.168.50.241/login/generic_oauth"]}]
    assert deployment["spec"]["template"]["metadata"]["annotations"][kf.DEX_USERS_ANNOTATION] != without


def test_a_build_without_dex_configuration_is_refused():
    with pytest.raises(kf.KubeflowError, match="no Dex ConfigMap"):
        kf.set_dex_users([{"kind": "ConfigMap", "metadata": {"name": "other"}}], [], yaml)
    broken = {"kind": "ConfigMap", "metadata": {"name": "dex"}, "data": {"config.yaml": "issuer: x\n"}}
    with pytest.raises(kf.KubeflowError, match="no staticPasswords"):
        kf.set_dex_users([broken], [], yaml)


def test_oidc_installs_no_dex_part():
    paths = example("example-kustomization-424c673.yaml")
    parts = [name for name, _paths in kf.select(paths, ["profiles"], auth="oidc")]
    assert "dex" not in parts and "oauth2_proxy" in parts
    assert "dex" in [name for name, _paths in kf.select(paths, ["profiles"])]


def oauth2_proxy_build():
    with open(os.path.join(FIXTURES, "oauth2_proxy-7b1ade8.cfg")) as handle:
        config = handle.read()
    with open(os.path.join(FIXTURES, "requestauthentication.dex-jwt-032ed47.yaml")) as handle:
        policy = yaml.safe_load(handle)
    return [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "oauth2-proxy-7f8c"},
             "data": {"oauth2_proxy.cfg": config}},
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "oauth2-proxy-9d2b"},
             "data": {"client-id": "eA==", "client-secret": "eA==", "cookie-secret": "eA=="}},
            policy]


@pytest.mark.parametrize("drop, message", [
    ("ConfigMap", "the build of oauth2_proxy has 0 ConfigMaps with oauth2_proxy.cfg (one expected)"),
    ("Secret", "the build of oauth2_proxy has 0 Secrets with client-id, client-secret, cookie-secret (one expected)"),
    ("RequestAuthentication", "no RequestAuthentication of oauth2_proxy trusts Dex's issuer "
                              "http://dex.auth.svc.cluster.local:5556/dex"),
])
def test_oidc_needs_the_releases_oauth2_proxy_objects(drop, message):
    objects = [o for o in oauth2_proxy_build() if o["kind"] != drop]
    with pytest.raises(kf.KubeflowError) as caught:
        kf.set_oidc(objects, "https://sso.gpulab.lan/realms/gpulab", "kubeflow", "secret", "openid email",
                    "http://192.168.50.242/oauth2/callback", "4m")
    assert str(caught.value).startswith(message)


def test_the_cookie_secret_is_stable_secret_and_sized_for_oauth2_proxy():
    first = kf.cookie_secret("client-secret")
    assert first == kf.cookie_secret("client-secret") != kf.cookie_secret("other")
    assert len(first) == 32 and "client-secret" not in first


def sidecar_workload(**template_meta):
    meta = dict(template_meta, annotations=dict(template_meta.get("annotations") or {},
                                                **{"sidecar.istio.io/proxyMemory": "48Mi"}))
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "db", "namespace": "kubeflow"},
            "spec": {"template": {"metadata": meta, "spec": {"containers": [
                {"name": "db", "resources": {"requests": {"memory": "512Mi"}}}]}}}}


@pytest.mark.parametrize("template_meta, counted", [
    ({}, True),
    ({"annotations": {"sidecar.istio.io/inject": "false"}}, False),
    ({"labels": {"sidecar.istio.io/inject": "false"}}, False),
    ({"labels": {"sidecar.istio.io/inject": "true"}}, True),
])
def test_a_sidecar_counts_only_where_istio_injects_one(template_meta, counted):
    totals = kf.memory_of([("pipelines", [sidecar_workload(**template_meta)])])
    assert totals["pipelines"]["requests"] == (512 + (48 if counted else 0)) * 1024 * 1024


def test_a_refresh_not_shorter_than_the_cookies_life_is_refused():
    with pytest.raises(kf.KubeflowError) as caught:
        kf.set_oidc(oauth2_proxy_build(), "https://sso.gpulab.lan/realms/gpulab", "kubeflow", "secret", "openid email",
                    "http://192.168.50.242/oauth2/callback", "24h")
    assert str(caught.value) == ("oidc_cookie_refresh 24h is not shorter than the release's cookie_expire 24h; "
                                 "oauth2-proxy would not start")


def test_istio_reads_the_inject_label_before_the_annotation():
    workload = sidecar_workload(labels={"sidecar.istio.io/inject": "true"},
                                annotations={"sidecar.istio.io/inject": "false"})
    assert kf.memory_of([("pipelines", [workload])])["pipelines"]["requests"] == (512 + 48) * 1024 * 1024
