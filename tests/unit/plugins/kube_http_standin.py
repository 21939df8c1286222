# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small Kubernetes API server over HTTP, for the real ``kubernetes`` library (and so for the kubeflow module and
role): discovery of a fixed set of kinds, server-side apply (PATCH, application/apply-patch+yaml) storing the object,
GET by path, the version, the storage classes, and answers recorded from real API servers for what it does not hold.

With ``settle=True`` it does what a cluster's controllers would do next: a CustomResourceDefinition is Established,
a Deployment or StatefulSet rolled out (its generation observed, every replica updated and available; not for the
names in ``stuck``, whose new pods never become available), a Service gets Endpoints with an address (and
istio-ingressgateway its load balancer address)."""
from __future__ import absolute_import, division, print_function

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import yaml

__metaclass__ = type

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "kubeflow")

CORE = [("configmaps", "ConfigMap", True), ("namespaces", "Namespace", False), ("services", "Service", True),
        ("endpoints", "Endpoints", True), ("secrets", "Secret", True), ("serviceaccounts", "ServiceAccount", True)]
BUILT_IN = {
    "apps/v1": [("deployments", "Deployment", True), ("statefulsets", "StatefulSet", True)],
    "apiextensions.k8s.io/v1": [("customresourcedefinitions", "CustomResourceDefinition", False)],
    "storage.k8s.io/v1": [("storageclasses", "StorageClass", False)],
    "admissionregistration.k8s.io/v1": [("validatingwebhookconfigurations", "ValidatingWebhookConfiguration", False),
                                        ("mutatingwebhookconfigurations", "MutatingWebhookConfiguration", False)],
}
# Kinds that CustomResourceDefinitions bring: served once ``crd_served`` is set.
CUSTOM = {
    "kubeflow.org/v1": [("profiles", "Profile", False), ("pytorchjobs", "PyTorchJob", True)],
    "cert-manager.io/v1": [("clusterissuers", "ClusterIssuer", False)],
    "networking.istio.io/v1beta1": [("gateways", "Gateway", True)],
    "security.istio.io/v1beta1": [("requestauthentications", "RequestAuthentication", True)],
}
LOAD_BALANCER_ADDRESS = "192.168.50.242"


class ApiServer(object):
    """Serves discovery for the kinds above (custom ones once ``crd_served``), stores applied objects."""

    def __init__(self, settle=False, version=None):
        self.objects = {}
        self.version = version
        self.requests = []
        self.crd_served = False
        self.fail_next = {}
        self.settle = settle
        self.stuck = set()
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
                    if server.settle:
                        server.settled(url.path, obj)
                    server.objects[url.path] = obj
                return self._send(200, obj)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]

    def groups(self):
        return dict(BUILT_IN, **(CUSTOM if self.crd_served else {}))

    def get(self, path):
        if path == "/version":
            # a real API server's answer, as kubectl printed it (fixtures/kubeadm/README.md)
            with open(os.path.join(FIXTURES, "..", "kubeadm", "kubectl_version_json_k8s53259.txt")) as handle:
                answer = json.load(handle)["serverVersion"]
            if self.version:  # the same answer from a server of another version ("v1.33.5")
                major, minor = self.version.lstrip("v").split(".")[:2]
                answer.update(gitVersion=self.version, major=major, minor=minor)
            return 200, answer
        if path == "/api":
            return 200, {"kind": "APIVersions", "versions": ["v1"]}
        groups = self.groups()
        if path == "/apis":
            return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": gv.split("/")[0], "versions": [{"groupVersion": gv, "version": gv.split("/")[1]}],
                 "preferredVersion": {"groupVersion": gv, "version": gv.split("/")[1]}} for gv in groups]}
        if path == "/api/v1":
            return 200, self._resources("v1", CORE)
        if path.startswith("/apis/") and path.count("/") == 3:
            gv = path[len("/apis/"):]
            if gv in groups:
                return 200, self._resources(gv, groups[gv])
        if path == "/apis/storage.k8s.io/v1/storageclasses":
            return 200, {"kind": "StorageClassList", "apiVersion": "storage.k8s.io/v1", "metadata": {}, "items": [
                {"metadata": {"name": "cephfs", "annotations": {
                    "storageclass.kubernetes.io/is-default-class": "true"}}, "provisioner": "rook-ceph.cephfs.csi.ceph.com"},
                {"metadata": {"name": "ceph-block"}, "provisioner": "rook-ceph.rbd.csi.ceph.com"}]}
        if path in self.objects:
            return 200, self.objects[path]
        with open(os.path.join(FIXTURES, "404-notfound-patch-apply.json")) as handle:
            return 404, json.load(handle)

    def settled(self, path, obj):
        """What the cluster's controllers would have done with ``obj`` by the next read."""
        kind = obj.get("kind")
        meta = obj.get("metadata") or {}
        if kind == "CustomResourceDefinition":
            obj["status"] = {"conditions": [{"type": "NamesAccepted", "status": "True"},
                                            {"type": "Established", "status": "True"}]}
        elif kind in ("Deployment", "StatefulSet"):
            # a finished rollout, unless the test made this workload's new pods fail (``stuck``): then the old
            # replicas stay available and the new one never becomes so, as with a crash-looping new ReplicaSet
            wanted = (obj.get("spec") or {}).get("replicas", 1)
            old = self.objects.get(path)
            same = old is not None and (old.get("spec") == obj.get("spec"))
            generation = (old or {}).get("metadata", {}).get("generation", 0) + (0 if same else 1)
            meta["generation"] = generation
            stuck = meta.get("name") in self.stuck
            obj["status"] = {"observedGeneration": generation, "replicas": wanted + (1 if stuck else 0),
                             "updatedReplicas": 1 if stuck else wanted, "readyReplicas": wanted,
                             "availableReplicas": wanted, "currentRevision": "r1", "updateRevision": "r1",
                             "conditions": [{"type": "Available", "status": "True"}]}
        elif kind == "Service":
            self.objects[path.replace("/services/", "/endpoints/")] = {
                "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": meta.get("name"),
                                                                      "namespace": meta.get("namespace")},
                "subsets": [{"addresses": [{"ip": "10.244.1.7"}]}]}
            if meta.get("name") == "istio-ingressgateway":
                obj["status"] = {"loadBalancer": {"ingress": [{"ip": LOAD_BALANCER_ADDRESS}]}}

    @staticmethod
    def _resources(gv, resources):
        return {"kind": "APIResourceList", "groupVersion": gv, "resources": [
            {"name": name, "singularName": "", "namespaced": namespaced, "kind": kind,
             "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}
            for name, kind, namespaced in resources]}


def kubeconfig(server, path):
    """A kubeconfig for ``server`` at ``path``."""
    with open(path, "w") as handle:
        yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {"server": server.url}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
            "users": [{"name": "admin", "user": {"token": "not-a-secret"}}]}, handle)
    return path
