# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpulab.cluster.kubeflow installing a small release: the real example/kustomization.yaml of kubeflow/manifests
(fixtures/kubeflow) over tiny kustomizations, built with a real kubectl (``kubectl kustomize``), applied to the
stand-in API server of tests/unit/plugins/kube_standin.py; fetched over real HTTP from a local server."""
from __future__ import absolute_import, division, print_function

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
            else:
                yaml.safe_dump_all(content, handle)
        with open(os.path.join(folder, "kustomization.yaml"), "w") as handle:
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
    dex = client.live["ConfigMap dex"]
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
    assert result["msg"] == ("Kubeflow v1.10.0: cert_manager: not Available after 30s: Deployment "
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
    assert "Deployment/auth/dex" in result["changed_objects"] and "ConfigMap/dex" in result["changed_objects"]


def test_check_mode_before_the_storage_layer_warns_about_the_storage_class(tmp_path, cluster):
    cluster["client"] = StandIn(default_classes=())
    failed, result = install(tmp_path, cluster, check_mode=True)
    assert not failed, result.get("msg")
    assert result["changed"] is True
