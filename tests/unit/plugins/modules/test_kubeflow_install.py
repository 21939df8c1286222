# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpulab.cluster.kubeflow installing a small release: the real example/kustomization.yaml of kubeflow/manifests
(fixtures/kubeflow) over tiny kustomizations, built with a real kubectl (``kubectl kustomize``), applied to the
stand-in API server of tests/unit/plugins/kube_standin.py; fetched over real HTTP from a local server."""
from __future__ import absolute_import, division, print_function

import base64
import copy
import functools
import http.server
import io
import json
import os
import shutil
import sys
import tarfile
import threading

import pytest
import yaml

from ansible_collections.gpulab.cluster.plugins.module_utils import _kubeapply as ka
from ansible_collections.gpulab.cluster.plugins.module_utils import _toml
from ansible_collections.gpulab.cluster.plugins.modules import kubeflow

from ..kube_standin import StandIn
from .utils import run_module

__metaclass__ = type

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "kubeflow")
KUBECTL = os.path.join(os.path.dirname(sys.executable), "kubectl")
HASH = "$2y$10$Z4Tb3S7l6bXo1m2y3Qb9uO2b1Tq8vZyC9n5lKx0aY7s6d5f4g3h2i"
USERS = [{"email": "admin@gpulab.lan", "username": "admin", "password_hash": HASH}]
COMPONENTS = ["central_dashboard", "profiles", "admission_webhook", "notebooks", "volumes_web_app", "pipelines",
              "training_operator"]


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def crd(plural, group, kind):
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "%s.%s" % (plural, group)},
            "spec": {"group": group, "names": {"kind": kind, "plural": plural}, "scope": "Cluster",
                     "versions": [{"name": "v1", "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": {"type": "object"}}}]}}


def deployment(name, namespace, replicas=1):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": name, "image": "registry.example/%s:1" % name}]}}}}


def service(name, namespace):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": {"app": name}, "ports": [{"port": 443, "targetPort": 8443}]}}


def webhook(kind, name, namespace, svc):
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind, "metadata": {"name": name},
            "webhooks": [{"name": "%s.example.org" % name, "admissionReviewVersions": ["v1"], "sideEffects": "None",
                          "clientConfig": {"service": {"namespace": namespace, "name": svc}}}]}


# What some folders of the small release hold; every other folder listed by the example holds one ConfigMap.
CONTENT = {
    "common/cert-manager/cert-manager/base": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "cert-manager"}},
        crd("clusterissuers", "cert-manager.io", "ClusterIssuer"),
        deployment("cert-manager-webhook", "cert-manager"), service("cert-manager-webhook", "cert-manager"),
        webhook("ValidatingWebhookConfiguration", "cert-manager-webhook", "cert-manager", "cert-manager-webhook")],
    "common/cert-manager/kubeflow-issuer/base": [
        {"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": {"name": "kubeflow-self-signing-issuer"},
         "spec": {"selfSigned": {}}}],
    "common/dex/overlays/oauth2-proxy": "DEX",
    "common/oauth2-proxy/overlays/m2m-self-signed": "OAUTH2_PROXY",
    "common/istio-1-22/istio-namespace/base": [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}],
    "common/istio-1-22/istio-install/overlays/oauth2-proxy": [service("istio-ingressgateway", "istio-system")],
    # Istio's resources of the kubeflow namespace (kubeflow/manifests sets namespace: kubeflow on this folder)
    "common/istio-1-22/kubeflow-istio-resources/base": [
        {"apiVersion": "networking.istio.io/v1beta1", "kind": "Gateway",
         "metadata": {"name": "kubeflow-gateway", "namespace": "kubeflow"}, "spec": {"selector": {"istio": "ingressgateway"}}}],
    "common/kubeflow-namespace/base": [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubeflow"}}],
    "apps/profiles/upstream/overlays/kubeflow": [
        crd("profiles", "kubeflow.org", "Profile"), deployment("profiles-deployment", "kubeflow")],
    "apps/admission-webhook/upstream/overlays/cert-manager": [
        deployment("admission-webhook-deployment", "kubeflow"), service("admission-webhook-service", "kubeflow"),
        webhook("MutatingWebhookConfiguration", "admission-webhook-mutating-webhook-configuration", "kubeflow",
                "admission-webhook-service")],
    "apps/pipeline/upstream/env/cert-manager/platform-agnostic-multi-user": [
        deployment("ml-pipeline", "kubeflow", replicas=3)],
    "apps/training-operator/upstream/overlays/kubeflow": [
        crd("pytorchjobs", "kubeflow.org", "PyTorchJob"), deployment("training-operator", "kubeflow")],
    "common/user-namespace/base": [
        {"apiVersion": "kubeflow.org/v1", "kind": "Profile", "metadata": {"name": "kubeflow-user-example-com"},
         "spec": {"owner": {"kind": "User", "name": "user@example.com"}}}],
}


# oauth2-proxy as the release builds it (common/oauth2-proxy/base and its istio-external-auth component): the real
# oauth2_proxy.cfg and RequestAuthentication, the ConfigMap and Secret made by kustomize's generators (hashed names),
# a Deployment that refers to both.
OAUTH2_PROXY_KUSTOMIZATION = """resources:
- objects.yaml
- requestauthentication.yaml
configMapGenerator:
- name: oauth2-proxy
  namespace: oauth2-proxy
  files:
  - oauth2_proxy.cfg
secretGenerator:
- name: oauth2-proxy
  namespace: oauth2-proxy
  type: Opaque
  literals:
  - client-id=kubeflow-oidc-authservice
  - client-secret=release-example-client-secret
  - cookie-secret=release-example-cookie-secret
"""


def oauth2_proxy_objects():
    proxy = deployment("oauth2-proxy", "oauth2-proxy")
    proxy["spec"]["template"]["spec"]["volumes"] = [{"name": "configmain", "configMap": {"name": "oauth2-proxy"}}]
    proxy["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "OAUTH2_PROXY_%s" % key.upper().replace("-", "_"),
         "valueFrom": {"secretKeyRef": {"name": "oauth2-proxy", "key": key}}}
        for key in ("client-id", "client-secret", "cookie-secret")]
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "oauth2-proxy"}}, proxy]


def make_release(root, example="example-kustomization-032ed47.yaml"):
    """A kubeflow/manifests checkout in miniature: the real example file, a tiny kustomization per listed folder."""
    text = fixture(example)
    os.makedirs(os.path.join(root, "example"))
    with open(os.path.join(root, "example", "kustomization.yaml"), "w") as handle:
        handle.write(text)
    for path in kubeflow.example_paths(text):
        rel = os.path.normpath(path.replace("../", "", 1))
        folder = os.path.join(root, rel)
        os.makedirs(folder)
        content = CONTENT.get(rel, [{"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": {"name": rel.replace("/", "-")[:60], "namespace": "kubeflow"}}])
        with open(os.path.join(folder, "objects.yaml"), "w") as handle:
            if content == "DEX":
                handle.write(fixture("dex-config-map-oauth2-proxy-c42a95d.yaml"))
                handle.write("---\n")
                yaml.safe_dump_all([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "auth"}},
                                    deployment("dex", "auth")], handle)
            elif content == "OAUTH2_PROXY":
                yaml.safe_dump_all(oauth2_proxy_objects(), handle)
            else:
                yaml.safe_dump_all(content, handle)
        with open(os.path.join(folder, "kustomization.yaml"), "w") as handle:
            if content == "OAUTH2_PROXY":
                handle.write(OAUTH2_PROXY_KUSTOMIZATION)
                shutil.copy(os.path.join(FIXTURES, "oauth2_proxy-7b1ade8.cfg"), os.path.join(folder, "oauth2_proxy.cfg"))
                shutil.copy(os.path.join(FIXTURES, "requestauthentication.dex-jwt-032ed47.yaml"),
                            os.path.join(folder, "requestauthentication.yaml"))
            elif content == "DEX":
                # as the release's common/dex/base does: everything of Dex in its namespace
                handle.write("namespace: auth\nresources:\n- objects.yaml\n")
            else:
                handle.write("resources:\n- objects.yaml\n")
    return root


@pytest.fixture
def cluster(monkeypatch, module_harness):
    """The stand-in API server the module's KubeClient is replaced with."""
    state = {"client": StandIn(namespaces=True)}

    def client(kubeconfig, context):
        assert kubeconfig == "/etc/kubernetes/admin.conf"
        return state["client"]

    monkeypatch.setattr(kubeflow, "KubeClient", client)
    return state


def install(tmp_path, cluster, check_mode=False, **extra):
    args = dict(release="v1.10.0", manifests_dir=str(tmp_path / "manifests"), kustomize=KUBECTL,
                kubeconfig="/etc/kubernetes/admin.conf", dex_users=USERS, components=COMPONENTS)
    args.update(extra)
    args = dict((key, value) for key, value in args.items() if value is not None)
    if not os.path.isdir(args.get("manifests_dir") or "/nonexistent") and "bundle" not in extra and \
            "repo_url" not in extra:
        make_release(args["manifests_dir"])
    return run_module(kubeflow, args, check_mode=check_mode, diff=True)


def applied(client):
    return [key for key, _dry, _at in client.applied]


def test_a_release_installs_in_order_with_real_kustomize(tmp_path, cluster):
    failed, result = install(tmp_path, cluster)
    assert not failed, result.get("msg")
    client = cluster["client"]
    names = [c["name"] for c in result["components"]]
    assert names == ["cert_manager", "kubeflow_namespace", "istio", "oauth2_proxy", "dex", "network_policies",
                     "kubeflow_roles"] + COMPONENTS
    assert all(c["status"] == "ready" for c in result["components"])
    order = applied(client)
    # within cert-manager: the CRD, the namespace, the objects, the webhook once its Service answers
    assert order[:2] == ["CustomResourceDefinition clusterissuers.cert-manager.io", "Namespace cert-manager"]
    assert order.index("Deployment cert-manager/cert-manager-webhook") < order.index(
        "ValidatingWebhookConfiguration cert-manager-webhook")
    assert order.index("ClusterIssuer kubeflow-self-signing-issuer") < order.index(
        "ValidatingWebhookConfiguration cert-manager-webhook")
    assert ("cert-manager", "cert-manager-webhook") in client.services_asked
    assert order.index("CustomResourceDefinition pytorchjobs.kubeflow.org") > order.index(
        "Deployment kubeflow/ml-pipeline")
    # the example user never comes
    assert "Profile kubeflow-user-example-com" not in order
    dex = client.live["ConfigMap auth/dex"]
    config = yaml.safe_load(dex["data"]["config.yaml"])
    assert [u["email"] for u in config["staticPasswords"]] == ["admin@gpulab.lan"]
    assert config["staticPasswords"][0]["hash"] == HASH and "hashFromEnv" not in config["staticPasswords"][0]
    assert config["staticClients"][0]["redirectURIs"] == ["/oauth2/callback"]
    assert HASH not in json.dumps(result)
    assert result["changed"] is True and result["source"] == "manifests_dir"
    assert result["objects"]["created"] == result["objects"]["total"] == len(order)
    assert result["crds_established"] == ["clusterissuers.cert-manager.io", "profiles.kubeflow.org",
                                          "pytorchjobs.kubeflow.org"]
    assert result["dashboard_url"] == "http://192.168.50.240/"
    assert result["kubernetes_version"] == "1.33"
    assert "created CustomResourceDefinition.apiextensions.k8s.io/profiles.kubeflow.org" in result["diff"]["after"]


def test_a_second_run_changes_nothing(tmp_path, cluster):
    assert not install(tmp_path, cluster)[0]
    failed, result = install(tmp_path, cluster)
    assert not failed
    assert result["changed"] is False
    assert result["objects"]["unchanged"] == result["objects"]["total"] > 0
    assert result["created"] == [] and result["changed_objects"] == []


def test_check_mode_is_a_server_side_dry_run(tmp_path, cluster):
    failed, result = install(tmp_path, cluster, check_mode=True)
    assert not failed, result.get("msg")
    client = cluster["client"]
    assert client.live == {} and client.slept == []
    assert all(dry for _key, dry, _at in client.applied)
    assert result["changed"] is True and all(c["status"] == "applied" for c in result["components"])
    assert result["crds_established"] == [] and result["dashboard_url"] is None


def test_patches_are_built_in_by_kustomize(tmp_path, cluster):
    patch = {"target": {"kind": "Deployment", "name": "ml-pipeline", "namespace": "kubeflow"},
             "patch": "- op: replace\n  path: /spec/replicas\n  value: 1\n"}
    failed, result = install(tmp_path, cluster, patches=[patch])
    assert not failed, result.get("msg")
    assert cluster["client"].live["Deployment kubeflow/ml-pipeline"]["spec"]["replicas"] == 1


def test_a_strategic_merge_patch_from_a_file_names_its_own_target(tmp_path, cluster):
    patch_file = tmp_path / "requests.yaml"
    patch_file.write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ml-pipeline\n  namespace: kubeflow\n"
                          "spec:\n  replicas: 2\n")
    failed, result = install(tmp_path, cluster, patches=[{"path": str(patch_file)}])
    assert not failed, result.get("msg")
    assert cluster["client"].live["Deployment kubeflow/ml-pipeline"]["spec"]["replicas"] == 2


@pytest.mark.parametrize("patch, message", [
    ({"patch": "- op: replace\n  path: /spec/replicas\n  value: 1\n"}, "JSON 6902 patches need patches[].target"),
    ({"path": "/nonexistent/patch.yaml"}, "cannot read the patch file /nonexistent/patch.yaml"),
    ({"patch": "kind: [unclosed"}, "a patch is not valid YAML"),
])
def test_unusable_patches_are_refused_before_anything_is_applied(tmp_path, cluster, patch, message):
    failed, result = install(tmp_path, cluster, patches=[patch])
    assert failed and message in result["msg"]
    assert cluster["client"].applied == []


def test_a_webhook_not_yet_reachable_is_retried_and_reported(tmp_path, cluster):
    body = fixture("500-webhook-no-endpoints.json")
    cluster["client"] = StandIn(namespaces=True, failures={"ClusterIssuer kubeflow-self-signing-issuer": [
        ka.ApiError.from_body(500, body)]})
    failed, result = install(tmp_path, cluster, retry_delay=3)
    assert not failed, result.get("msg")
    assert result["retried"] == [{"object": "ClusterIssuer kubeflow-self-signing-issuer", "attempts": 2,
                                  "error": json.loads(body)["message"]}]


def test_a_component_that_does_not_become_available_names_itself(tmp_path, cluster):
    cluster["client"] = StandIn(namespaces=True, ready_after=10 ** 6)
    failed, result = install(tmp_path, cluster, component_timeouts={"cert_manager": 30})
    assert failed
    assert result["msg"] == ("Kubeflow v1.10.0: cert_manager: not rolled out after 30s: Deployment "
                             "cert-manager/cert-manager-webhook (set component_timeouts.cert_manager to wait longer)")
    assert result["components"][0]["status"] == "failed"


# --- refused before anything is applied -----------------------------------------------------------------------------


@pytest.mark.parametrize("client, message", [
    (StandIn(default_classes=()), "the cluster has no default StorageClass"),
    (StandIn(version="v1.36.1"), "Kubernetes v1.36.1 is outside the range of Kubeflow v1.10.0: it was validated on "
                                 "1.32, and this module accepts 1.31 to 1.33"),
])
def test_the_cluster_is_checked_before_anything_is_applied(tmp_path, cluster, client, message):
    cluster["client"] = client
    failed, result = install(tmp_path, cluster)
    assert failed and message in result["msg"]
    assert client.applied == []


def test_a_component_the_release_does_not_list_is_refused(tmp_path, cluster):
    make_release(str(tmp_path / "manifests"), example="example-kustomization-424c673.yaml")
    failed, result = install(tmp_path, cluster)
    assert failed
    assert result["msg"] == (
        "Kubeflow v1.10.0: training_operator not in this release: its example/kustomization.yaml lists no folder for "
        "training_operator (it may be commented out there); remove it from components or pick a release that has it")
    assert cluster["client"].applied == []


@pytest.mark.parametrize("release, message", [
    ("v2.0.0", "release v2.0.0 is of the Kubeflow 2.0 line, which this module does not know"),
    ("latest", "release 'latest' is not a kubeflow/manifests release tag like v1.10.0"),
])
def test_unknown_releases_are_refused(tmp_path, cluster, release, message):
    failed, result = install(tmp_path, cluster, release=release)
    assert failed and message in result["msg"]


def test_an_application_without_what_it_needs_is_refused(tmp_path, cluster):
    failed, result = install(tmp_path, cluster, components=["notebooks", "profiles"])
    assert failed and "notebooks needs admission_webhook: add them to components" in result["msg"]


def test_a_checkout_without_the_example_file_is_refused(tmp_path, cluster):
    (tmp_path / "empty").mkdir()
    failed, result = install(tmp_path, cluster, manifests_dir=str(tmp_path / "empty"))
    assert failed and "has no example/kustomization.yaml" in result["msg"]


def test_a_failing_build_names_the_part(tmp_path, cluster):
    root = make_release(str(tmp_path / "manifests"))
    with open(os.path.join(root, "apps/profiles/upstream/overlays/kubeflow/kustomization.yaml"), "w") as handle:
        handle.write("resources:\n- missing.yaml\n")
    failed, result = install(tmp_path, cluster)
    assert failed and result["msg"].startswith("Kubeflow v1.10.0: building profiles failed (")
    assert cluster["client"].applied == []


# --- a pre-built bundle ---------------------------------------------------------------------------------------------


def build_bundle(tmp_path, cluster, skip=()):
    """The same small release built per part with kubectl, as a site without internet would bring it."""
    root = make_release(str(tmp_path / "manifests"))
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    text = fixture("example-kustomization-032ed47.yaml")
    for name, paths in kubeflow.select(kubeflow.example_paths(text), COMPONENTS):
        if name in skip:
            continue
        out = []
        for path in paths:
            folder = os.path.join(root, os.path.normpath(path.replace("../", "", 1)))
            with open(os.path.join(folder, "objects.yaml")) as handle:
                out.append(handle.read())
        (bundle / ("%s.yaml" % name)).write_text("\n---\n".join(out))
    return str(bundle)


def test_a_bundle_installs_without_kustomize(tmp_path, cluster):
    bundle = build_bundle(tmp_path, cluster)
    failed, result = run_module(kubeflow, dict(release="v1.10.0", bundle=bundle, kubeconfig="/etc/kubernetes/admin.conf",
                                               dex_users=USERS, components=COMPONENTS))
    assert not failed, result.get("msg")
    assert result["source"] == "bundle" and result["components"][4]["name"] == "dex"
    assert "Profile kubeflow-user-example-com" not in applied(cluster["client"])


def test_a_bundle_without_a_part_names_the_file(tmp_path, cluster):
    bundle = build_bundle(tmp_path, cluster, skip=("pipelines",))
    failed, result = run_module(kubeflow, dict(release="v1.10.0", bundle=bundle, kubeconfig="/etc/kubernetes/admin.conf",
                                               dex_users=USERS, components=COMPONENTS))
    assert failed
    assert "the bundle has no %s/pipelines.yaml for pipelines" % bundle in result["msg"]


def test_a_bundle_with_a_broken_document_names_it(tmp_path, cluster):
    bundle = build_bundle(tmp_path, cluster)
    with open(os.path.join(bundle, "istio.yaml"), "a") as handle:
        handle.write("\n---\nkind: ConfigMap\nmetadata: {name: x}\n")
    failed, result = run_module(kubeflow, dict(release="v1.10.0", bundle=bundle, kubeconfig="/etc/kubernetes/admin.conf",
                                               dex_users=USERS, components=COMPONENTS))
    assert failed and "istio.yaml, document" in result["msg"] and "has no apiVersion" in result["msg"]


# --- fetched over HTTP ----------------------------------------------------------------------------------------------


@pytest.fixture
def mirror(tmp_path):
    """A local HTTP server with the small release as GitHub serves archives: /archive/refs/tags/<tag>.tar.gz."""
    root = make_release(str(tmp_path / "src" / "manifests-1.10.0"))
    site = tmp_path / "site" / "archive" / "refs" / "tags"
    site.mkdir(parents=True)
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        tar.add(root, arcname="manifests-1.10.0")
    (site / "v1.10.0.tar.gz").write_bytes(data.getvalue())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "site"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()
    shutil.rmtree(str(tmp_path / "src"))


def test_a_release_is_fetched_and_installed(tmp_path, cluster, mirror):
    failed, result = install(tmp_path, cluster, manifests_dir=None, repo_url=mirror)
    assert not failed, result.get("msg")
    assert result["source"] == "fetched" and len(result["components"]) == 14


def test_a_release_that_does_not_exist_is_refused(tmp_path, cluster, mirror):
    failed, result = install(tmp_path, cluster, manifests_dir=None, repo_url=mirror, release="v1.10.9")
    assert failed
    assert result["msg"].startswith("Kubeflow v1.10.9: release v1.10.9 does not exist at %s/archive/refs/tags/"
                                    "v1.10.9.tar.gz (HTTP 404" % mirror)
    assert cluster["client"].applied == []


def test_copy_of_objects_is_not_shared():
    # the stand-in keeps its own copies: a test changing what it got back cannot change the "cluster"
    client = StandIn()
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}}
    got = client.apply(copy.deepcopy(obj), "gpulab-kubeflow", False, False)
    got["data"]["k"] = "changed"
    assert client.get(obj)["data"]["k"] == "v"


def test_dex_restarts_when_its_users_change(tmp_path, cluster):
    assert not install(tmp_path, cluster)[0]
    client = cluster["client"]
    first = client.live["Deployment auth/dex"]["spec"]["template"]["metadata"]["annotations"]
    assert list(first) == ["gpulab.lan/dex-users-digest"] and HASH not in json.dumps(first)
    more = USERS + [{"email": "bob@gpulab.lan", "password_hash": HASH}]
    failed, result = install(tmp_path, cluster, dex_users=more)
    assert not failed
    second = client.live["Deployment auth/dex"]["spec"]["template"]["metadata"]["annotations"]
    assert second != first
    assert "Deployment/auth/dex" in result["changed_objects"] and "ConfigMap/auth/dex" in result["changed_objects"]


def test_check_mode_before_the_storage_layer_warns_about_the_storage_class(tmp_path, cluster):
    cluster["client"] = StandIn(default_classes=())
    failed, result = install(tmp_path, cluster, check_mode=True)
    assert not failed, result.get("msg")
    assert result["changed"] is True


# --- auth=oidc: the site's OpenID Connect provider instead of Dex ---------------------------------------------------

OIDC = dict(auth="oidc", dex_users=None, oidc_issuer_url="https://sso.gpulab.lan/realms/gpulab",
            oidc_client_id="kubeflow", oidc_client_secret="oidc-client-s3cret",
            oidc_redirect_url="http://192.168.50.242/oauth2/callback")


def live_of_kind(client, kind, namespace=None):
    return [o for o in client.live.values()
            if o["kind"] == kind and (namespace is None or o["metadata"].get("namespace") == namespace)]


def decoded(secret):
    return dict((key, base64.b64decode(value).decode("utf-8")) for key, value in secret["data"].items())


def test_oidc_points_oauth2_proxy_and_istio_at_the_provider_and_installs_no_dex(tmp_path, cluster):
    failed, result = install(tmp_path, cluster, **OIDC)
    assert not failed, result.get("msg")
    client = cluster["client"]
    assert [c["name"] for c in result["components"]][:6] == ["cert_manager", "kubeflow_namespace", "istio",
                                                             "oauth2_proxy", "network_policies", "kubeflow_roles"]
    assert not [key for key in applied(client) if key.startswith(("Namespace auth", "ConfigMap auth/dex"))]
    assert not [key for key in applied(client) if " auth/" in key]
    (config_map,) = live_of_kind(client, "ConfigMap", "oauth2-proxy")
    assert config_map["metadata"]["name"].startswith("oauth2-proxy-")  # kustomize's hashed name, kept
    config = _toml.loads(config_map["data"]["oauth2_proxy.cfg"])
    assert config["oidc_issuer_url"] == "https://sso.gpulab.lan/realms/gpulab"
    assert config["scope"] == "openid profile email"
    for dex_only in ("skip_oidc_discovery", "login_url", "redeem_url", "oidc_jwks_url", "prompt"):
        assert dex_only not in config
    assert config["skip_auth_routes"] == []
    assert config["provider_display_name"] == "sso.gpulab.lan"
    # an absolute redirect URI for the provider, sessions refreshed before Keycloak's 5-minute tokens expire
    assert config["redirect_url"] == "http://192.168.50.242/oauth2/callback" and config["relative_redirect_url"] is False
    assert config["cookie_refresh"] == "4m"
    # the comments that explained the removed Dex settings went with them
    assert "OIDC Discovery has to be skipped" not in config_map["data"]["oauth2_proxy.cfg"]
    assert "cause dex to always prompt" not in config_map["data"]["oauth2_proxy.cfg"]
    # the release's other settings stay as they were
    assert config["api_routes"] == ["/api/", "/apis/", "^/ml_metadata"] and config["cookie_expire"] == "24h"
    (secret,) = live_of_kind(client, "Secret", "oauth2-proxy")
    values = decoded(secret)
    assert values["client-id"] == "kubeflow" and values["client-secret"] == "oidc-client-s3cret"
    assert len(values["cookie-secret"]) == 32 and values["cookie-secret"] != "release-example-cookie-secret"
    (policy,) = live_of_kind(client, "RequestAuthentication", "istio-system")
    (rule,) = policy["spec"]["jwtRules"]
    assert rule["issuer"] == "https://sso.gpulab.lan/realms/gpulab" and rule["audiences"] == ["kubeflow"]
    assert rule["outputClaimToHeaders"][0] == {"header": "kubeflow-userid", "claim": "email"}
    proxy = client.live["Deployment oauth2-proxy/oauth2-proxy"]
    assert "gpulab.lan/oidc-digest" in proxy["spec"]["template"]["metadata"]["annotations"]
    assert "oidc-client-s3cret" not in json.dumps(result) and values["cookie-secret"] not in json.dumps(result)


def test_oidc_second_run_changes_nothing_and_a_new_secret_restarts_oauth2_proxy(tmp_path, cluster):
    assert not install(tmp_path, cluster, **OIDC)[0]
    failed, result = install(tmp_path, cluster, **OIDC)
    assert not failed and result["changed"] is False
    rotated = dict(OIDC)
    rotated["oidc_client_secret"] = "rotated"
    failed, result = install(tmp_path, cluster, **rotated)
    assert not failed and result["changed"] is True
    changed = [name for name in result["changed_objects"] if "oauth2-proxy" in name]
    assert "Deployment/oauth2-proxy/oauth2-proxy" in changed
    assert [name for name in changed if name.startswith("Secret/oauth2-proxy/oauth2-proxy-")]


def test_oidc_check_mode_predicts_the_run(tmp_path, cluster):
    failed, checked = install(tmp_path, cluster, check_mode=True, **OIDC)
    assert not failed, checked.get("msg")
    assert cluster["client"].live == {}
    failed, result = install(tmp_path, cluster, **OIDC)
    assert not failed
    assert checked["created"] == result["created"]
    assert checked["changed"] is True and result["changed"] is True


def test_oidc_with_a_release_whose_istio_does_not_trust_dex_is_refused_before_anything_is_applied(tmp_path, cluster):
    root = make_release(str(tmp_path / "manifests"))
    folder = os.path.join(root, "common/oauth2-proxy/overlays/m2m-self-signed")
    with open(os.path.join(folder, "requestauthentication.yaml")) as handle:
        text = handle.read()
    with open(os.path.join(folder, "requestauthentication.yaml"), "w") as handle:
        handle.write(text.replace("http://dex.auth.svc.cluster.local:5556/dex", "https://elsewhere.example/dex"))
    failed, result = install(tmp_path, cluster, **OIDC)
    assert failed and cluster["client"].applied == []
    assert result["msg"] == ("Kubeflow v1.10.0: no RequestAuthentication of oauth2_proxy trusts Dex's issuer "
                             "http://dex.auth.svc.cluster.local:5556/dex; auth=oidc cannot be set")


# --- resources fitted to small nodes, and the memory budget ---------------------------------------------------------

PIPELINE = {"name": "ml-pipeline", "namespace": "kubeflow", "requests": {"cpu": "50m", "memory": "256Mi"},
            "limits": {"memory": "512Mi"}}


def test_resources_are_set_on_the_release_and_counted_against_the_budget(tmp_path, cluster):
    failed, result = install(tmp_path, cluster, resources=[PIPELINE,
                                                           {"name": "training-operator", "limits": {"memory": "1Gi"}}],
                             memory_budget="2Gi")
    assert not failed, result.get("msg")
    client = cluster["client"]
    (container,) = client.live["Deployment kubeflow/ml-pipeline"]["spec"]["template"]["spec"]["containers"]
    assert container["resources"] == {"requests": {"cpu": "50m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}}
    memory = result["memory"]
    # ml-pipeline has 3 replicas; training-operator counts with its limit (the API server's default request)
    assert memory["parts"]["pipelines"] == {"requests_mib": 768, "limits_mib": 1536}
    assert memory["parts"]["training_operator"] == {"requests_mib": 1024, "limits_mib": 1024}
    assert memory["requests_mib"] == 1792 and memory["budget_mib"] == 2048
    assert "Deployment kubeflow/profiles-deployment profiles-deployment" in memory["without_request"]
    assert "Deployment kubeflow/ml-pipeline ml-pipeline" not in memory["without_request"]
    failed, again = install(tmp_path, cluster, resources=[PIPELINE,
                                                          {"name": "training-operator", "limits": {"memory": "1Gi"}}])
    assert not failed and again["changed"] is False


def test_an_install_above_the_memory_budget_is_refused_before_anything_is_applied(tmp_path, cluster):
    failed, result = install(tmp_path, cluster, resources=[PIPELINE], memory_budget="700Mi")
    assert failed and cluster["client"].applied == []
    assert result["msg"].startswith("Kubeflow v1.10.0: the components ask for 768 MiB of memory in all (requests x "
                                    "replicas), more than memory_budget 700Mi (700 MiB); most: pipelines 768 MiB, ")
    assert result["memory"]["requests_mib"] == 768


@pytest.mark.parametrize("entry, message", [
    ({"name": "ml-pipelines"}, "resources[0] names ml-pipelines, which no component being installed has"),
    ({"name": "ml-pipeline", "namespace": "kubeflow-user"}, "resources[0] names ml-pipeline in kubeflow-user, which"),
    ({"name": "ml-pipeline", "container": "api"}, "resources[0]: Deployment kubeflow/ml-pipeline has no container api "
                                                  "(it has ml-pipeline)"),
    ({"name": "ml-pipeline", "requests": {"memory": "2GB "}}, "resources[0].requests.memory '2GB ' is not a Kubernetes"),
    ({"name": "ml-pipeline", "requests": {"memory": "1Gi"}, "limits": {"memory": "512Mi"}},
     "resources[0]: the memory request of Deployment kubeflow/ml-pipeline, container ml-pipeline, 1Gi, is above its "
     "limit 512Mi"),
])
def test_resources_that_fit_nothing_are_refused_before_anything_is_applied(tmp_path, cluster, entry, message):
    failed, result = install(tmp_path, cluster, resources=[entry])
    assert failed and cluster["client"].applied == []
    assert result["msg"].startswith("Kubeflow v1.10.0: " + message)


def test_a_budget_that_is_no_quantity_is_refused(tmp_path, cluster):
    failed, result = install(tmp_path, cluster, memory_budget="six gigs")
    assert failed and result["msg"] == "memory_budget 'six gigs' is not a Kubernetes quantity above 0 (like 6Gi)"


def test_a_sidecar_entry_becomes_istios_annotations_and_counts(tmp_path, cluster):
    entry = dict(PIPELINE, sidecar={"requests": {"cpu": "10m", "memory": "48Mi"}, "limits": {"memory": "256Mi"}})
    failed, result = install(tmp_path, cluster, resources=[entry])
    assert not failed, result.get("msg")
    template = cluster["client"].live["Deployment kubeflow/ml-pipeline"]["spec"]["template"]
    assert template["metadata"]["annotations"] == {"sidecar.istio.io/proxyCPU": "10m",
                                                   "sidecar.istio.io/proxyMemory": "48Mi",
                                                   "sidecar.istio.io/proxyMemoryLimit": "256Mi"}
    # 3 replicas x (256Mi + 48Mi); limits 3 x (512Mi + 256Mi)
    assert result["memory"]["parts"]["pipelines"] == {"requests_mib": 912, "limits_mib": 2304}


@pytest.mark.parametrize("sidecar, message", [
    ({"requests": {"ephemeral-storage": "1Gi"}}, "resources[0].sidecar.requests.ephemeral-storage: Istio sets only cpu "
                                                 "and memory of its sidecar"),
    ({"requests": {"memory": "1Gi"}, "limits": {"memory": "128Mi"}},
     "resources[0]: the sidecar's memory request of Deployment kubeflow/ml-pipeline is above"),
    ({"limits": {"memory": "lots"}}, "resources[0].sidecar.limits.memory 'lots' is not a Kubernetes quantity"),
])
def test_a_sidecar_entry_that_istio_cannot_take_is_refused(tmp_path, cluster, sidecar, message):
    failed, result = install(tmp_path, cluster, resources=[{"name": "ml-pipeline", "sidecar": sidecar}])
    assert failed and cluster["client"].applied == []
    assert result["msg"].startswith("Kubeflow v1.10.0: " + message)
