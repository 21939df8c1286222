# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The apply engine of gpulab.cluster.kubeflow against a stand-in API server that answers with recorded Status
bodies (tests/unit/plugins/fixtures/kubeflow/README.md names their sources)."""
from __future__ import absolute_import, division, print_function

import copy
import os

import pytest

from ansible_collections.gpulab.cluster.plugins.module_utils import _kubeapply as ka

from ..kube_standin import StandIn

__metaclass__ = type

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "kubeflow")


def recorded(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        text = handle.read()
    return ka.ApiError.from_body(int(name.split("-")[0]), text)


# The message of a webhook that is not up yet, as the API server words it (README: "message only", issue #2660).
WEBHOOK_REFUSED = ka.ApiError(500, {"kind": "Status", "reason": "InternalError", "code": 500, "message": (
    'Internal error occurred: failed calling webhook "webhook.cert-manager.io": failed to call webhook: Post '
    '"https://cert-manager-webhook.cert-manager.svc:443/mutate?timeout=10s": dial tcp 10.96.218.186:443: connect: '
    'connection refused')})


def obj(kind, name, namespace=None, api_version="v1", **extra):
    meta = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    out = {"apiVersion": api_version, "kind": kind, "metadata": meta}
    out.update(extra)
    return out


CRD = obj("CustomResourceDefinition", "profiles.kubeflow.org", api_version="apiextensions.k8s.io/v1",
          spec={"group": "kubeflow.org"})
NS = obj("Namespace", "kubeflow")
PROFILE = obj("Profile", "alice", api_version="kubeflow.org/v1", spec={"owner": {"kind": "User", "name": "alice"}})
DEPLOY = obj("Deployment", "profiles-deployment", "kubeflow", api_version="apps/v1", spec={"replicas": 1})
HOOK = obj("MutatingWebhookConfiguration", "admission-webhook-mutating-webhook-configuration",
           api_version="admissionregistration.k8s.io/v1",
           webhooks=[{"name": "poddefaults.kubeflow.org",
                      "clientConfig": {"service": {"namespace": "kubeflow", "name": "admission-webhook-service"}}}])


def applier(client, **options):
    return ka.Applier(client, "gpulab-kubeflow", **options)


def test_crds_then_namespaces_then_objects_then_webhooks():
    client = StandIn()
    results = applier(client).run([HOOK, DEPLOY, PROFILE, NS, CRD])
    assert [r["kind"] for r in results] == [
        "CustomResourceDefinition", "Namespace", "Deployment", "Profile", "MutatingWebhookConfiguration"]
    assert [a[0] for a in client.applied] == [ka.ref(o) for o in (CRD, NS, DEPLOY, PROFILE, HOOK)]
    assert all(r["action"] == "created" for r in results)


def test_the_crd_is_waited_for_before_its_resources():
    client = StandIn(established_after=7)
    applier(client, poll=2).run([PROFILE, CRD])
    profile_at = [a[2] for a in client.applied if a[0] == ka.ref(PROFILE)][0]
    assert profile_at >= 1007.0
    assert client.slept == [2, 2, 2, 2]


def test_a_crd_that_never_becomes_established_names_itself():
    client = StandIn(established_after=10 ** 6)
    with pytest.raises(ka.ApplyFailed) as err:
        applier(client, crd_timeout=30).run([CRD, PROFILE])
    assert str(err.value) == ("timed out after 30s waiting for CustomResourceDefinition profiles.kubeflow.org to be "
                              "Established")
    assert ka.ref(PROFILE) not in [a[0] for a in client.applied]


def test_a_webhook_is_registered_only_once_its_service_has_an_endpoint():
    client = StandIn(endpoints_after=20)
    applier(client, poll=5).run([HOOK, DEPLOY])
    hook_at = [a[2] for a in client.applied if a[0] == ka.ref(HOOK)][0]
    assert hook_at >= 1020.0
    assert set(client.services_asked) == {("kubeflow", "admission-webhook-service")}


def test_a_webhook_service_that_never_answers_fails_with_both_named():
    client = StandIn(endpoints_after=10 ** 6)
    with pytest.raises(ka.ApplyFailed) as err:
        applier(client, webhook_timeout=60).run([HOOK])
    assert "a ready endpoint of Service kubeflow/admission-webhook-service, which MutatingWebhookConfiguration " \
           "admission-webhook-mutating-webhook-configuration calls" in str(err.value)


@pytest.mark.parametrize("error, reason", [
    (recorded("404-notfound-patch-apply.json"), ka.TRANSIENT_KIND),
    (ka.KindNotServed("kubeflow.org/v1", "Profile"), ka.TRANSIENT_KIND),
    (recorded("500-webhook-no-endpoints.json"), ka.TRANSIENT_WEBHOOK),
    (WEBHOOK_REFUSED, ka.TRANSIENT_WEBHOOK),
    (ka.ConnectionLost("('Connection aborted.', RemoteDisconnected('Remote end closed connection'))"),
     ka.TRANSIENT_SERVER),
])
def test_transient_errors_are_retried_with_growing_delays(error, reason):
    client = StandIn(failures={ka.ref(PROFILE): [error, error, error]})
    run = applier(client, retries=5, retry_delay=5)
    results = run.run([PROFILE])
    assert results[0]["action"] == "created"
    assert client.slept == [5, 10, 20]
    assert [(r["object"], r["attempts"], r["reason"]) for r in run.retried] == [("Profile alice", 4, reason)]
    assert run.retried[0]["error"] == error.message


def test_the_retry_bound_names_the_object_and_the_last_error():
    error = recorded("500-webhook-no-endpoints.json")
    client = StandIn(failures={ka.ref(PROFILE): [error] * 9})
    with pytest.raises(ka.ApplyFailed) as err:
        applier(client, retries=3, retry_delay=1).run([PROFILE])
    text = str(err.value)
    assert text.startswith("Profile alice: still failing after 3 attempts (webhook not reachable yet): HTTP 500 "
                           "InternalError: Internal error occurred: failed calling webhook")
    assert 'no endpoints available for service \\"kserve-webhook-server-service\\"' not in text
    assert 'no endpoints available for service "kserve-webhook-server-service"' in text


def test_the_total_time_bound_stops_retries():
    error = ka.KindNotServed("kubeflow.org/v1", "Profile")
    client = StandIn(failures={ka.ref(PROFILE): [error] * 50})
    with pytest.raises(ka.ApplyFailed) as err:
        applier(client, retries=50, retry_delay=40, apply_timeout=100).run([PROFILE])
    # waits 40 s, then 60 s (delays double up to 60 s), then the next 60 s would pass the bound
    assert "apply_timeout (100s) reached after 3 attempts (kind not served yet)" in str(err.value)
    assert client.slept == [40, 60] and client.now == 1100.0


@pytest.mark.parametrize("name, expected", [
    ("403-forbidden.json", "HTTP 403 Forbidden: "),
    ("422-invalid.json", "HTTP 422 "),
    ("409-alreadyexists.json", "HTTP 409 AlreadyExists: "),
    ("409-conflict-object-modified.json", "HTTP 409 "),
])
def test_other_errors_fail_at_once(name, expected):
    error = recorded(name)
    client = StandIn(failures={ka.ref(DEPLOY): [error]})
    with pytest.raises(ka.ApplyFailed) as err:
        applier(client).run([DEPLOY])
    assert str(err.value).startswith("Deployment kubeflow/profiles-deployment: " + expected)
    assert client.slept == []


def test_an_apply_conflict_names_the_fields_and_the_option():
    client = StandIn(failures={ka.ref(DEPLOY): [recorded("409-apply-conflict-fieldmanager.json")]})
    with pytest.raises(ka.ApplyFailed) as err:
        applier(client).run([DEPLOY])
    assert ('fields owned by another manager: .status.conditions (conflict with "work" using '
            'work.open-cluster-management.io/v1). Set force_conflicts=true') in str(err.value)


def test_a_second_apply_of_the_same_objects_changes_nothing():
    client = StandIn()
    applier(client).run([CRD, NS, DEPLOY])
    results = applier(client).run([CRD, NS, DEPLOY])
    assert [r["action"] for r in results] == ["unchanged"] * 3
    assert ka.counts(results) == dict(total=3, created=0, changed=0, unchanged=3)


def test_a_changed_field_is_reported_changed():
    client = StandIn()
    applier(client).run([DEPLOY])
    scaled = copy.deepcopy(DEPLOY)
    scaled["spec"]["replicas"] = 2
    assert applier(client).run([scaled])[0]["action"] == "changed"


def test_status_moving_on_the_server_is_not_a_change():
    live = copy.deepcopy(DEPLOY)
    live["status"] = {"readyReplicas": 0}
    client = StandIn(live=[live])
    client.live[ka.ref(DEPLOY)]["status"] = {"readyReplicas": 1}
    assert applier(client).run([DEPLOY])[0]["action"] == "unchanged"


def test_dry_run_changes_nothing_and_counts_unserved_kinds_and_new_namespaces_as_created():
    namespace_missing = ka.ApiError(404, {"kind": "Status", "reason": "NotFound", "code": 404,
                                          "message": 'namespaces "kubeflow" not found'})
    client = StandIn(failures={ka.ref(PROFILE): [recorded("404-notfound-patch-apply.json")],
                               ka.ref(DEPLOY): [namespace_missing]},
                     established_after=10 ** 6, endpoints_after=10 ** 6)
    results = applier(client, dry_run=True).run([CRD, NS, DEPLOY, PROFILE, HOOK])
    assert [r["action"] for r in results] == ["created"] * 5
    assert client.live == {} and client.slept == []
    assert all(a[1] is True for a in client.applied)


def test_a_missing_namespace_outside_dry_run_is_an_error():
    namespace_missing = ka.ApiError(404, {"kind": "Status", "reason": "NotFound", "code": 404,
                                          "message": 'namespaces "kubeflow" not found'})
    client = StandIn(failures={ka.ref(DEPLOY): [namespace_missing]})
    with pytest.raises(ka.ApplyFailed, match='namespaces "kubeflow" not found'):
        applier(client).run([DEPLOY])


def test_a_404_for_a_built_in_kind_is_not_retried():
    client = StandIn(failures={ka.ref(NS): [recorded("404-notfound-patch-apply.json")]})
    with pytest.raises(ka.ApplyFailed):
        applier(client).run([NS])
    assert client.slept == []


@pytest.mark.parametrize("bad, message", [
    ("text", "doc 3 is not a Kubernetes object"),
    ({"kind": "Service", "metadata": {"name": "x"}}, "doc 3 has no apiVersion"),
    ({"apiVersion": "v1", "kind": "Service", "metadata": {}}, "doc 3 has no metadata.name"),
])
def test_malformed_documents_are_named(bad, message):
    with pytest.raises(ka.ApplyFailed, match=message):
        ka.check_object(bad, "doc 3")


def test_bodies_that_are_not_json_keep_their_text():
    error = ka.ApiError.from_body(502, "<html>Bad Gateway</html>")
    assert error.message == "<html>Bad Gateway</html>" and error.code == 502
    assert ka.classify(ka.ApiError.from_body(503, ""), DEPLOY) == ka.TRANSIENT_SERVER


def test_waits_have_their_own_bound_not_the_apply_timeout():
    # apply_timeout has passed by the time the CRD is applied; its own wait still gets crd_timeout
    client = StandIn(established_after=50)
    run = applier(client, apply_timeout=10, crd_timeout=120, poll=10)
    client.now += 20
    run.run([CRD])
    assert client.now >= 1050.0


def deployment_status(**status):
    return {"kind": "Deployment", "metadata": {"name": "oauth2-proxy", "generation": 4}, "spec": {"replicas": 2},
            "status": dict(dict(observedGeneration=4, replicas=2, updatedReplicas=2, availableReplicas=2), **status)}


@pytest.mark.parametrize("status, done", [
    ({}, True),
    ({"observedGeneration": 3}, False),  # the controller has not seen the new template yet
    ({"updatedReplicas": 1, "replicas": 3}, False),  # a new pod crash-loops, the old ones still serve
    ({"replicas": 3}, False),  # an old pod is still terminating
    ({"availableReplicas": 1}, False),  # an updated pod is not available yet
])
def test_a_deployment_is_rolled_out_as_kubectl_rollout_status_says(status, done):
    assert ka.rolled_out(deployment_status(**status)) is done


@pytest.mark.parametrize("status, done", [
    ({"readyReplicas": 3, "updatedReplicas": 3, "currentRevision": "a", "updateRevision": "a"}, True),
    ({"readyReplicas": 3, "updatedReplicas": 1, "currentRevision": "a", "updateRevision": "b"}, False),
    ({"readyReplicas": 2, "updatedReplicas": 3}, False),
])
def test_a_statefulset_is_rolled_out_when_every_replica_is_updated_and_ready(status, done):
    live = {"kind": "StatefulSet", "metadata": {"name": "metacontroller"}, "spec": {"replicas": 3}, "status": status}
    assert ka.rolled_out(live) is done
