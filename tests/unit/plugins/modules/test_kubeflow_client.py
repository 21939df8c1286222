# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kubeflow module's KubeClient, i.e. the real ``kubernetes`` library (DynamicClient, discovery, server-side
apply), against a small HTTP API server: what goes over the wire (paths, content type, fieldManager, force, dryRun)
and how the server's answers (recorded Status bodies) come back."""
from __future__ import absolute_import, division, print_function

import json
import os
import tempfile

import pytest

from ansible_collections.gpulab.cluster.plugins.module_utils import _kubeapply as ka
from ansible_collections.gpulab.cluster.plugins.modules import kubeflow

from ..kube_http_standin import ApiServer, kubeconfig

__metaclass__ = type

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "kubeflow")


@pytest.fixture
def api(tmp_path, monkeypatch):
    server = ApiServer()
    server.thread.start()
    config = kubeconfig(server, str(tmp_path / "admin.conf"))
    # the dynamic client caches discovery in a file under tempfile.gettempdir(), named after the server's address: keep
    # each test's own (TMPDIR alone does not do it once the process has asked for the folder, and a cache left in /tmp
    # by an earlier run whose server had the same port served kinds this server does not)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    yield server, kubeflow.KubeClient(config, None)
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
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "ml-pipeline", "generation": 2},
        "spec": {"replicas": 2}, "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2,
                                            "availableReplicas": 2,
                                            "conditions": [{"type": "Available", "status": "True"}]}}
    # a new template whose pod crashes: the old pod keeps the Deployment Available, the rollout is not done
    server.objects["/apis/apps/v1/namespaces/oauth2-proxy/deployments/oauth2-proxy"] = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "oauth2-proxy", "generation": 3},
        "spec": {"replicas": 2}, "status": {"observedGeneration": 3, "replicas": 3, "updatedReplicas": 1,
                                            "availableReplicas": 2,
                                            "conditions": [{"type": "Available", "status": "True"}]}}
    server.objects["/apis/apiextensions.k8s.io/v1/customresourcedefinitions/profiles.kubeflow.org"] = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "profiles.kubeflow.org"}, "status": {"conditions": [
            {"type": "NamesAccepted", "status": "True"}, {"type": "Established", "status": "True"}]}}
    assert client.service_ready("kubeflow", "admission-webhook-service") is True
    assert client.service_ready("kubeflow", "missing") is False
    assert client.workload_ready("Deployment", "kubeflow", "ml-pipeline") is True
    assert client.workload_ready("Deployment", "oauth2-proxy", "oauth2-proxy") is False
    assert client.workload_ready("StatefulSet", "kubeflow", "metadata-db") is False
    assert client.crd_established("profiles.kubeflow.org") is True
    assert client.gateway_address() is None
