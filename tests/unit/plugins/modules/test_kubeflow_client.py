# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kubeflow module's KubeClient, i.e. the real ``kubernetes`` library (DynamicClient, discovery, server-side
apply), against a small HTTP API server: what goes over the wire (paths, content type, fieldManager, force, dryRun)
and how the server's answers (recorded Status bodies) come back."""
from __future__ import absolute_import, division, print_function

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
import yaml

from ansible_collections.gpulab.cluster.plugins.module_utils import _kubeapply as ka
from ansible_collections.gpulab.cluster.plugins.modules import kubeflow

__metaclass__ = type

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "kubeflow")

CORE = [("configmaps", "ConfigMap", True), ("namespaces", "Namespace", False), ("services", "Service", True),
        ("endpoints", "Endpoints", True)]
GROUPS = {
    "apps/v1": [("deployments", "Deployment", True), ("statefulsets", "StatefulSet", True)],
    "apiextensions.k8s.io/v1": [("customresourcedefinitions", "CustomResourceDefinition", False)],
    "storage.k8s.io/v1": [("storageclasses", "StorageClass", False)],
    "kubeflow.org/v1": [("profiles", "Profile", False)],
}


class ApiServer(object):
    """Serves discovery for the groups above (kubeflow.org only once ``crd_served``), stores applied objects."""

    def __init__(self):
        self.objects = {}
        self.requests = []
        self.crd_served = False
        self.fail_next = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                return None

            def _send(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                server.requests.append(("GET", self.path, None, None))
                code, body = server.get(urlparse(self.path).path.rstrip("/") or "/")
                self._send(code, body)

            def do_PATCH(self):
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length).decode()
                url = urlparse(self.path)
                server.requests.append(("PATCH", url.path, parse_qs(url.query), self.headers.get("Content-Type")))
                if url.path in server.fail_next:
                    code, failure = server.fail_next.pop(url.path)
                    return self._send(code, failure)
                obj = yaml.safe_load(body)
                obj.setdefault("metadata", {})["resourceVersion"] = str(len(server.requests))
                if "dryRun" not in parse_qs(url.query):
                    server.objects[url.path] = obj
                return self._send(200, obj)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]

    def get(self, path):
        if path == "/version":
            # a real API server's answer, as kubectl printed it (fixtures/kubeadm/README.md)
            with open(os.path.join(FIXTURES, "..", "kubeadm", "kubectl_version_json_k8s53259.txt")) as handle:
                return 200, json.load(handle)["serverVersion"]
        if path == "/api":
            return 200, {"kind": "APIVersions", "versions": ["v1"]}
        if path == "/apis":
            groups = [gv for gv in GROUPS if gv != "kubeflow.org/v1" or self.crd_served]
            return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": gv.split("/")[0], "versions": [{"groupVersion": gv, "version": "v1"}],
                 "preferredVersion": {"groupVersion": gv, "version": "v1"}} for gv in groups]}
        if path == "/api/v1":
            return 200, self._resources("v1", CORE)
        if path.startswith("/apis/") and path.count("/") == 3:
            gv = path[len("/apis/"):]
            if gv in GROUPS and (gv != "kubeflow.org/v1" or self.crd_served):
                return 200, self._resources(gv, GROUPS[gv])
        if path == "/apis/storage.k8s.io/v1/storageclasses":
            return 200, {"kind": "StorageClassList", "apiVersion": "storage.k8s.io/v1", "metadata": {}, "items": [
                {"metadata": {"name": "cephfs", "annotations": {
                    "storageclass.kubernetes.io/is-default-class": "true"}}, "provisioner": "rook-ceph.cephfs.csi.ceph.com"},
                {"metadata": {"name": "ceph-block"}, "provisioner": "rook-ceph.rbd.csi.ceph.com"}]}
        if path in self.objects:
            return 200, self.objects[path]
        with open(os.path.join(FIXTURES, "404-notfound-patch-apply.json")) as handle:
            return 404, json.load(handle)

    @staticmethod
    def _resources(gv, resources):
        return {"kind": "APIResourceList", "groupVersion": gv, "resources": [
            {"name": name, "singularName": "", "namespaced": namespaced, "kind": kind,
             "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}
            for name, kind, namespaced in resources]}


@pytest.fixture
def api(tmp_path, monkeypatch):
    server = ApiServer()
    server.thread.start()
    kubeconfig = tmp_path / "admin.conf"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": server.url}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
        "users": [{"name": "admin", "user": {"token": "not-a-secret"}}]}))
    # the dynamic client caches discovery in a file under the temporary folder; keep each test's own
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    yield server, kubeflow.KubeClient(str(kubeconfig), None)
    server.httpd.shutdown()


CONFIGMAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dex", "namespace": "auth"},
             "data": {"config.yaml": "issuer: x\n"}}
PROFILE = {"apiVersion": "kubeflow.org/v1", "kind": "Profile", "metadata": {"name": "alice"},
           "spec": {"owner": {"kind": "User", "name": "alice@gpulab.lan"}}}


def test_version_and_default_storage_class(api):
    _server, client = api
    assert client.version() == "v1.9.0-alpha.1.487+550c3cab4fe267"
    assert client.default_storage_classes() == ["cephfs"]


def test_server_side_apply_goes_over_the_wire_as_kubernetes_expects(api):
    server, client = api
    assert client.get(CONFIGMAP) is None
    out = client.apply(CONFIGMAP, "gpulab-kubeflow", False, False)
    assert out["data"] == CONFIGMAP["data"]
    method, path, query, content_type = server.requests[-1]
    assert (method, path) == ("PATCH", "/api/v1/namespaces/auth/configmaps/dex")
    assert content_type == "application/apply-patch+yaml"
    assert query == {"fieldManager": ["gpulab-kubeflow"], "force": ["False"]} or query == {
        "fieldManager": ["gpulab-kubeflow"], "force": ["false"]}
    assert client.get(CONFIGMAP)["metadata"]["resourceVersion"]


def test_dry_run_and_force_are_sent(api):
    server, client = api
    client.apply(CONFIGMAP, "gpulab-kubeflow", True, True)
    _method, path, query, _ctype = server.requests[-1]
    assert query["dryRun"] == ["All"] and query["force"][0].lower() == "true"
    assert path not in server.objects


def test_a_kind_not_served_yet_is_found_once_its_crd_is(api):
    server, client = api
    with pytest.raises(ka.KindNotServed):
        client.apply(PROFILE, "gpulab-kubeflow", False, False)
    server.crd_served = True
    client.apply(PROFILE, "gpulab-kubeflow", False, False)
    assert "/apis/kubeflow.org/v1/profiles/alice" in server.objects


def test_server_errors_come_back_with_their_status_body(api):
    server, client = api
    with open(os.path.join(FIXTURES, "500-webhook-no-endpoints.json")) as handle:
        body = json.load(handle)
    server.fail_next["/api/v1/namespaces/auth/configmaps/dex"] = (500, body)
    with pytest.raises(ka.ApiError) as err:
        client.apply(CONFIGMAP, "gpulab-kubeflow", False, False)
    assert err.value.code == 500 and err.value.reason == "InternalError"
    assert ka.classify(err.value, CONFIGMAP) == ka.TRANSIENT_WEBHOOK


def test_readiness_reads(api):
    server, client = api
    server.objects["/api/v1/namespaces/kubeflow/endpoints/admission-webhook-service"] = {
        "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "admission-webhook-service"},
        "subsets": [{"addresses": [{"ip": "10.244.1.7"}]}]}
    server.objects["/apis/apps/v1/namespaces/kubeflow/deployments/ml-pipeline"] = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "ml-pipeline"},
        "status": {"conditions": [{"type": "Available", "status": "True"}]}}
    server.objects["/apis/apiextensions.k8s.io/v1/customresourcedefinitions/profiles.kubeflow.org"] = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "profiles.kubeflow.org"}, "status": {"conditions": [
            {"type": "NamesAccepted", "status": "True"}, {"type": "Established", "status": "True"}]}}
    assert client.service_ready("kubeflow", "admission-webhook-service") is True
    assert client.service_ready("kubeflow", "missing") is False
    assert client.workload_ready("Deployment", "kubeflow", "ml-pipeline") is True
    assert client.workload_ready("StatefulSet", "kubeflow", "metadata-db") is False
    assert client.crd_established("profiles.kubeflow.org") is True
    assert client.gateway_address() is None
