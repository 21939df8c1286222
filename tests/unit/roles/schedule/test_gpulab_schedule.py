# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""roles/schedule/files/gpulab_schedule.py against a stand-in API server over real HTTP.

The server stores objects seeded from fixtures/ (list bodies shaped as a real API server returns them, see
fixtures/README.md), serves paginated lists with label selectors, JSON merge patches (RFC 7386) with the
resourceVersion precondition (409 Conflict Status; any other patch type is refused, 415), graceful pod deletes, posts,
and a 404 Status for kinds it does not serve.

It also plays the two job controllers as far as the program depends on them: when a job becomes suspended, its
controller deletes the job's pods that are not terminating yet, with the pods' own terminationGracePeriodSeconds
(the Job controller removes its tracking finalizer first); a pod deleted while it still has the Job controller's
tracking finalizer counts as a failure of its Job; a pod of a Training Operator job that is not suspended, deleted
while its replica's restartPolicy does not restart it (or the job's runPolicy.backoffLimit is 0), fails the job at
once (the worst case of the race: the operator reconciles before the suspension gets there); and a delete of a pod
that is already terminating can only shorten its grace period.
"""
from __future__ import absolute_import, division, print_function

import copy
import importlib.util
import io
import itertools
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

__metaclass__ = type

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures")
PROGRAM = os.path.join(HERE, "..", "..", "..", "..", "roles", "schedule", "files", "gpulab_schedule.py")


def _load_program():
    spec = importlib.util.spec_from_file_location("gpulab_schedule", PROGRAM)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gs = _load_program()


def fixture(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return json.load(handle)


KUBEFLOW, BATCH = "/apis/kubeflow.org/v1", "/apis/batch/v1"
# fixture file -> the API path prefix and plural its items live under
SEED = {"namespaces.json": ("/api/v1", "namespaces"), "nodes.json": ("/api/v1", "nodes"), "pods.json": ("/api/v1", "pods"),
        "deployments.json": ("/apis/apps/v1", "deployments"), "statefulsets.json": ("/apis/apps/v1", "statefulsets"),
        "jobs.json": (BATCH, "jobs"), "pytorchjobs.json": (KUBEFLOW, "pytorchjobs"), "notebooks.json": (KUBEFLOW, "notebooks")}
KINDS = {"namespaces": "Namespace", "nodes": "Node", "pods": "Pod", "events": "Event", "deployments": "Deployment",
         "statefulsets": "StatefulSet", "jobs": "Job", "pytorchjobs": "PyTorchJob", "tfjobs": "TFJob", "mpijobs": "MPIJob",
         "notebooks": "Notebook"}
WRITES = ("PATCH", "DELETE", "POST")
TRACKING = "batch.kubernetes.io/job-tracking"
# The Training Operator v1 as the stand-in plays it (kubeflow/training-operator, read for the program's TRAINING
# table): kind -> plural, replica specs field, default restartPolicy, the restartPolicies under which a killed pod
# (SIGTERM: exit code 143, which ExitCode retries) is restarted rather than failing the job.
OPERATOR = {"PyTorchJob": ("pytorchjobs", "pytorchReplicaSpecs", "OnFailure", ("OnFailure", "Always", "ExitCode")),
            "TFJob": ("tfjobs", "tfReplicaSpecs", "Never", ("OnFailure", "Always", "ExitCode")),
            "MPIJob": ("mpijobs", "mpiReplicaSpecs", "Never", ("ExitCode",))}


def merge_patch(target, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def split(path):
    """'/apis/apps/v1/namespaces/a/deployments/web' -> ('/apis/apps/v1', 'deployments', 'a', 'web')."""
    parts = path.strip("/").split("/")
    cut = 2 if parts[0] == "api" else 3
    prefix, rest = "/" + "/".join(parts[:cut]), parts[cut:]
    if len(rest) >= 3 and rest[0] == "namespaces":
        return prefix, rest[2], rest[1], rest[3] if len(rest) > 3 else None
    return prefix, rest[0], None, rest[1] if len(rest) > 1 else None


def matches(labels, selector):
    for term in filter(None, (selector or "").split(",")):
        key, sep, value = term.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def suspended(prefix, obj):
    spec = obj.get("spec") or {}
    return (spec if prefix == BATCH else spec.get("runPolicy") or {}).get("suspend") is True


class ApiServer(object):
    """Objects by (prefix, plural, namespace, name); every request recorded as (method, path, query, headers, body)."""

    def __init__(self):
        self.objects = {}
        self.requests = []
        self.unserved = {(KUBEFLOW, "tfjobs"), (KUBEFLOW, "mpijobs")}
        self.page_size = 500
        self.fail = {}          # (method, path) -> (code, body), every time
        self.concurrent = {}    # path -> how many PATCHes find the object changed by someone else first
        self.meanwhile = {}     # path -> what that someone else changed: a function of the object
        self.linger = {}        # pod path -> how many GETs still find it after its DELETE (None: for ever)
        self.grace = {}         # pod path -> the grace period it was deleted with (by the program or a job controller)
        self.drop_suspend = False  # a Training Operator before 1.7: its CRD schema prunes spec.runPolicy.suspend
        self.version = itertools.count(2000000)
        for name, (prefix, plural) in SEED.items():
            for item in fixture(name)["items"]:
                self.add(prefix, plural, item)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                return None

            def _handle(self):
                url = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length).decode()) if length else None
                server.requests.append((self.command, url.path, parse_qs(url.query), dict(self.headers), body))
                code, answer = server.answer(self.command, url.path, parse_qs(url.query), self.headers, body)
                data = json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PATCH = do_DELETE = do_POST = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]

    def add(self, prefix, plural, item):
        self.objects[(prefix, plural, item["metadata"].get("namespace"), item["metadata"]["name"])] = copy.deepcopy(item)

    # -- what the tests look at ------------------------------------------------------------------
    def obj(self, path):
        return self.objects.get(split(path))

    def writes(self):
        return [(method, path) for method, path, _q, _h, _b in self.requests if method in WRITES]

    def snapshot(self):
        """Spec and annotations of everything but pods and events, without resourceVersion."""
        return dict((key, {"spec": obj.get("spec"), "annotations": obj["metadata"].get("annotations") or {}})
                    for key, obj in self.objects.items() if key[1] not in ("pods", "events"))

    # -- the API ---------------------------------------------------------------------------------
    @staticmethod
    def not_found(plural, name):
        return 404, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": '%s "%s" not found' % (plural, name),
                     "reason": "NotFound", "details": {"name": name, "kind": plural}, "code": 404}

    def answer(self, method, path, query, headers, body):
        prefix, plural, ns, name = split(path)
        if (method, path) in self.fail:
            return self.fail[(method, path)]
        if (prefix, plural) in self.unserved:
            return 404, fixture("status-404-notfound.json")
        key = (prefix, plural, ns, name)
        if method == "GET" and name is None:
            return self.list(prefix, plural, ns, query)
        if method == "POST":
            obj = dict(body, metadata=dict(body["metadata"], name=body["metadata"]["generateName"] + str(len(self.requests)),
                                           resourceVersion=str(next(self.version))))
            self.objects[(prefix, plural, ns, obj["metadata"]["name"])] = obj
            return 201, obj
        if key not in self.objects:
            return self.not_found(plural, name)
        obj = self.objects[key]
        if method == "GET":
            if path in self.linger and self.linger[path] is not None:
                self.linger[path] -= 1
                if self.linger[path] < 0:
                    del self.objects[key]
                    return self.not_found(plural, name)
            return 200, dict(obj, kind=KINDS[plural], apiVersion=prefix.split("/", 2)[-1])
        if method == "DELETE":
            assert plural == "pods" and body["kind"] == "DeleteOptions"
            return 200, self.delete_pod(key, body.get("gracePeriodSeconds"))
        assert method == "PATCH"
        if headers["Content-Type"] != "application/merge-patch+json":
            return 415, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": 415, "reason": "UnsupportedMediaType",
                         "message": "the stand-in server takes JSON merge patches only, not %s" % headers["Content-Type"]}
        if self.concurrent.get(path):
            self.concurrent[path] -= 1
            obj = self.objects[key] = self.meanwhile.get(path, lambda changed: changed)(copy.deepcopy(obj))
            obj["metadata"]["resourceVersion"] = str(next(self.version))
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        if wanted is not None and wanted != obj["metadata"]["resourceVersion"]:
            conflict = fixture("status-409-conflict.json")
            conflict["message"] = conflict["message"].replace('resourcequotas "quota"', '%s "%s"' % (plural, name))
            conflict["details"] = {"name": name, "kind": plural}
            return 409, conflict
        new = merge_patch(obj, body)
        if self.drop_suspend and prefix == KUBEFLOW and plural.endswith("jobs"):
            new["spec"]["runPolicy"].pop("suspend", None)
        if not new["metadata"].get("annotations"):
            new["metadata"].pop("annotations", None)  # an empty map is not kept
        new["metadata"]["resourceVersion"] = str(next(self.version))
        self.objects[key] = new
        if (prefix == BATCH or (prefix == KUBEFLOW and plural.endswith("jobs"))) and suspended(prefix, new) and not suspended(prefix, obj):
            self.controller_suspends(prefix, new)
        return 200, new

    def remove_tracking_finalizer(self, key):
        """What the Job controller's patch does to a pod of a Job it suspends."""
        pod = self.objects[key]
        pod["metadata"]["finalizers"] = [name for name in pod["metadata"].get("finalizers") or [] if name != TRACKING]
        if not pod["metadata"]["finalizers"]:
            del pod["metadata"]["finalizers"]
        pod["metadata"]["resourceVersion"] = str(next(self.version))

    def delete_pod(self, key, grace):
        """Graceful deletion: without a grace period the pod's own terminationGracePeriodSeconds; on a pod that is
        already terminating only a shorter grace period changes anything (none at all: nothing changes)."""
        pod, path = self.objects[key], "/api/v1/namespaces/%s/pods/%s" % (key[2], key[3])
        metadata = pod["metadata"]
        if metadata.get("deletionTimestamp"):
            if grace is not None and grace < metadata["deletionGracePeriodSeconds"]:
                metadata["deletionGracePeriodSeconds"] = self.grace[path] = grace
            return pod
        self.grace[path] = grace = pod["spec"].get("terminationGracePeriodSeconds", 30) if grace is None else grace
        if TRACKING in (metadata.get("finalizers") or []) and pod["status"].get("phase") != "Succeeded":
            # the Job controller counts a pod deleted with its tracking finalizer still on as failed
            (owner,) = [ref for ref in metadata["ownerReferences"] if ref.get("controller")]
            status = self.objects[(BATCH, "jobs", key[2], owner["name"])]["status"]
            status["failed"] = status.get("failed", 0) + 1
        self.operator_sees_a_killed_pod(key[2], pod)
        if path in self.linger:
            metadata["deletionTimestamp"] = "2026-11-30T07:00:05Z"
            metadata["deletionGracePeriodSeconds"] = grace
        else:
            del self.objects[key]
        return pod

    def operator_sees_a_killed_pod(self, ns, pod):
        """The Training Operator on a killed pod of a job that is not suspended: restarted when the replica's
        restartPolicy restarts it, else (and with runPolicy.backoffLimit 0) the job is Failed for good."""
        owners = [ref for ref in pod["metadata"].get("ownerReferences") or [] if ref.get("controller") and ref.get("kind") in OPERATOR]
        if not owners:
            return
        plural, field, default, restarting = OPERATOR[owners[0]["kind"]]
        job = self.objects.get((KUBEFLOW, plural, ns, owners[0]["name"]))
        if job is None or suspended(KUBEFLOW, job) or any(c["type"] in ("Succeeded", "Failed") for c in (job.get("status") or {}).get("conditions") or []):
            return
        replica_type = pod["metadata"]["labels"]["training.kubeflow.org/replica-type"]
        (replica,) = [spec for name, spec in job["spec"][field].items() if name.lower() == replica_type]
        if replica.get("restartPolicy", default) in restarting and job["spec"]["runPolicy"].get("backoffLimit") != 0:
            return
        kind, name = owners[0]["kind"], owners[0]["name"]
        message = "%s %s is failed because 1 %s replica(s) failed." % (kind, name, replica_type)
        job.setdefault("status", {}).setdefault("conditions", []).append({"type": "Failed", "status": "True", "reason": kind + "Failed", "message": message})
        job["metadata"]["resourceVersion"] = str(next(self.version))

    def controller_suspends(self, prefix, job):
        """The Training Operator and the Job controller on a suspended job: they delete its pods that are not
        terminating yet with DeleteOptions left empty (so: each pod's own grace period); the Job controller
        removes its tracking finalizer first."""
        for key, pod in sorted(self.objects.items()):
            if key[1] != "pods" or key[2] != job["metadata"]["namespace"] or pod["metadata"].get("deletionTimestamp"):
                continue
            if job["metadata"]["uid"] not in [ref.get("uid") for ref in pod["metadata"].get("ownerReferences") or []]:
                continue
            if pod["status"].get("phase") in ("Succeeded", "Failed"):
                continue
            if prefix == BATCH:
                self.remove_tracking_finalizer(key)
            self.delete_pod(key, None)

    def list(self, prefix, plural, ns, query):
        selector = query.get("labelSelector", [None])[0]
        items = [obj for (p, kind, n, _name), obj in sorted(self.objects.items(), key=lambda kv: (kv[0][2] or "", kv[0][3]))
                 if (p, kind) == (prefix, plural) and (ns is None or n == ns) and matches(obj["metadata"].get("labels") or {}, selector)]
        start = int(query.get("continue", ["0"])[0])
        size = min(self.page_size, int(query.get("limit", ["500"])[0]))
        page, rest = items[start:start + size], items[start + size:]
        return 200, {"kind": KINDS[plural] + "List", "apiVersion": prefix.split("/", 2)[-1],
                     "metadata": {"resourceVersion": "1184377", "continue": str(start + size) if rest else ""}, "items": page}


@pytest.fixture
def server():
    api_server = ApiServer()
    api_server.thread.start()
    yield api_server
    api_server.httpd.shutdown()
    api_server.httpd.server_close()


class FakeClock(object):
    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def run(server, *argv):
    """(exit status, action lines, all lines, clock) of one run against the server."""
    out, clock = io.StringIO(), FakeClock()
    code = gs.main(list(argv), api=gs.Api(server.url, token="not-a-secret"), out=out, clock=clock, sleep=clock.sleep)
    lines = out.getvalue().splitlines()
    assert json.loads(lines[-1])["mode"] == argv[0]
    return code, [line for line in lines[:-2] if not line.startswith(("skip ", "warn ", "error: ", "still present", "all "))], lines, clock


WIND_DOWN = [
    "announce Namespace team-a (grace 300s)",
    "announce Namespace team-b (grace 300s)",
    "delete Pod team-a/resnet-master-0 (grace 300s)",
    "delete Pod team-a/resnet-worker-0 (grace 300s)",
    "suspend PyTorchJob team-a/resnet",
    "suspend Job team-a/preprocess",
    "stop Notebook team-a/lab",
    "scale Deployment team-a/web 2 -> 0",
    "scale Deployment team-b/api 1 -> 0",
    "scale StatefulSet team-b/postgres 1 -> 0",
    "taint Node gpu01",
    "taint Node gpu02",
]
WIND_UP = [
    "untaint Node gpu01",
    "untaint Node gpu02",
    "scale Deployment team-a/web 0 -> 2",
    "scale Deployment team-b/api 0 -> 1",
    "scale StatefulSet team-b/postgres 0 -> 1",
    "start Notebook team-a/lab",
    "resume Job team-a/preprocess",
    "resume PyTorchJob team-a/resnet",
    "end wind-down Namespace team-a",
    "end wind-down Namespace team-b",
]
OWNED = [
    "skip PyTorchJob team-b/tune-lr-x7k2p9: owned by Trial tune-lr-x7k2p9",
    "skip Job team-a/nightly-29399880: owned by CronJob nightly",
    "skip Deployment team-b/hello-00001-deployment: owned by Revision hello-00001",
    "skip StatefulSet team-a/lab: owned by Notebook lab",
]
UNSERVED = ["skip TFJob: /apis/kubeflow.org/v1/tfjobs is not served here (NotFound)",
            "skip MPIJob: /apis/kubeflow.org/v1/mpijobs is not served here (NotFound)"]
RESNET = "/apis/kubeflow.org/v1/namespaces/team-a/pytorchjobs/resnet"
PREPROCESS = "/apis/batch/v1/namespaces/team-a/jobs/preprocess"
POD = "/api/v1/namespaces/team-a/pods/"
DAY_USE_TAINT = {"key": "gpulab.io/day-use", "value": "wind-down", "effect": "NoSchedule"}
PREPROCESS_WARNING = ("warn Job team-a/preprocess: its pods get 30s to checkpoint, not 300s; "
                      "set terminationGracePeriodSeconds: 300 in its pod template")


def skips(lines):
    return [line for line in lines if line.startswith("skip ")]


def test_wind_down_acts_in_order_and_says_so(server):
    code, actions, lines, _clock = run(server, "wind-down")
    assert code == 0
    assert actions == WIND_DOWN
    assert skips(lines) == [OWNED[0]] + UNSERVED + OWNED[1:]
    assert [line for line in lines if line.startswith("warn ")] == [PREPROCESS_WARNING]
    assert lines[-2] == "wind-down: 12 changes, 0 errors"
    assert json.loads(lines[-1])["changes"] == WIND_DOWN
    # the writes went out in that order too: the pods of resnet (restartPolicy OnFailure) are deleted before it is
    # suspended; the batch Job is suspended first and its controller deletes its pod
    assert server.writes() == [
        ("PATCH", "/api/v1/namespaces/team-a"), ("POST", "/api/v1/namespaces/team-a/events"),
        ("PATCH", "/api/v1/namespaces/team-b"), ("POST", "/api/v1/namespaces/team-b/events"),
        ("DELETE", POD + "resnet-master-0"), ("DELETE", POD + "resnet-worker-0"), ("PATCH", RESNET), ("PATCH", PREPROCESS),
        ("PATCH", "/apis/kubeflow.org/v1/namespaces/team-a/notebooks/lab"),
        ("PATCH", "/apis/apps/v1/namespaces/team-a/deployments/web"), ("PATCH", "/apis/apps/v1/namespaces/team-b/deployments/api"),
        ("PATCH", "/apis/apps/v1/namespaces/team-b/statefulsets/postgres"), ("PATCH", "/api/v1/nodes/gpu01"), ("PATCH", "/api/v1/nodes/gpu02")]


def test_wind_down_writes_what_the_api_expects(server):
    run(server, "wind-down", "--grace-seconds", "120")
    job = server.obj(RESNET)
    assert job["spec"]["runPolicy"] == {"cleanPodPolicy": "None", "suspend": True}
    assert job["metadata"]["annotations"] == {"gpulab.io/wind-down-suspended": "true"}
    batch_job = server.obj(PREPROCESS)
    assert batch_job["spec"]["suspend"] is True and batch_job["metadata"]["annotations"] == {"gpulab.io/wind-down-suspended": "true"}
    notebook = server.obj("/apis/kubeflow.org/v1/namespaces/team-a/notebooks/lab")["metadata"]["annotations"]
    assert notebook["gpulab.io/wind-down-stopped"] == "true"
    assert len(notebook["kubeflow-resource-stopped"]) == 20 and notebook["kubeflow-resource-stopped"].endswith("Z")
    web = server.obj("/apis/apps/v1/namespaces/team-a/deployments/web")
    assert web["spec"]["replicas"] == 0 and web["metadata"]["annotations"]["gpulab.io/wind-down-replicas"] == "2"
    assert "gpulab.io/wind-down" in server.obj("/api/v1/namespaces/team-a")["metadata"]["annotations"]
    for method, path, _query, headers, body in server.requests:
        assert headers["Authorization"] == "Bearer not-a-secret"
        if method == "PATCH":
            assert not path.startswith(POD)  # pods are deleted, never patched
            assert headers["Content-Type"] == "application/merge-patch+json"
            assert body["metadata"]["resourceVersion"]  # optimistic concurrency on every other patch
        if method == "DELETE":
            assert body == {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 120}
    pods = [(path, query) for method, path, query, _h, _b in server.requests if method == "GET" and path.endswith("/pods")]
    assert pods == [("/api/v1/namespaces/team-a/pods", {"limit": ["500"], "labelSelector": ["training.kubeflow.org/job-name=resnet"]}),
                    ("/api/v1/namespaces/team-a/pods", {"limit": ["500"], "labelSelector": ["batch.kubernetes.io/job-name=preprocess"]})]
    events = [obj for key, obj in server.objects.items() if key[1] == "events"]
    assert sorted((e["metadata"]["namespace"], e["reason"], e["type"], e["involvedObject"]["kind"], e["involvedObject"]["name"]) for e in events) == [
        ("team-a", "WindDown", "Normal", "Namespace", "team-a"), ("team-b", "WindDown", "Normal", "Namespace", "team-b")]
    assert "120s" in events[0]["message"]
    # the pod left from an earlier job of the same name (another owner uid) is not this job's: not deleted
    assert server.obj(POD + "resnet-worker-1") is not None


def test_an_on_failure_job_gets_the_configured_grace_not_its_own(server):
    """resnet's replicas are restartPolicy OnFailure: its pods are deleted first, with 300 s. Their own
    terminationGracePeriodSeconds is 30 s: had the job been suspended first, the Training Operator would have deleted
    them with that, and a later delete could not have lengthened it. The batch Job's pod gets its own 30 s."""
    for name in ("resnet-master-0", "resnet-worker-0", "preprocess-7xkq2"):
        assert server.obj(POD + name)["spec"]["terminationGracePeriodSeconds"] == 30
    assert set(spec["restartPolicy"] for spec in server.obj(RESNET)["spec"]["pytorchReplicaSpecs"].values()) == {"OnFailure"}
    code, _actions, lines, _clock = run(server, "wind-down")
    assert code == 0
    assert server.grace == {POD + "resnet-master-0": 300, POD + "resnet-worker-0": 300, POD + "preprocess-7xkq2": 30}
    assert not [line for line in lines if line.startswith("warn PyTorchJob")]
    assert server.obj(RESNET)["status"]["conditions"][-1]["type"] == "Running"  # not failed: the operator restarts such pods


def test_the_stand_in_controllers_delete_with_the_pods_own_grace_and_a_later_delete_only_shortens_it(server):
    """What the test above relies on: suspended first, the pods get 30 s and keep it."""
    api = gs.Api(server.url)
    server.linger[POD + "resnet-master-0"] = None
    job = server.obj(RESNET)
    api.patch(RESNET, {"metadata": {"resourceVersion": job["metadata"]["resourceVersion"]}, "spec": {"runPolicy": {"suspend": True}}})
    assert server.grace == {POD + "resnet-master-0": 30, POD + "resnet-worker-0": 30}
    api.delete(POD + "resnet-master-0", 300)
    assert server.grace[POD + "resnet-master-0"] == 30
    api.delete(POD + "resnet-master-0", 10)
    assert server.grace[POD + "resnet-master-0"] == 10


def test_a_batch_job_is_suspended_first_and_its_pods_are_never_patched_and_it_is_resumed(server):
    """The Job controller deletes the pods of a Job it suspends, having removed its tracking finalizer: they don't
    count as failed. The program neither patches nor deletes them, and says that they get their own 30 s."""
    before = copy.deepcopy(server.obj(PREPROCESS))
    assert before["status"]["failed"] == 1  # one earlier pod failed (backoffLimit 2): one more failure would be one less retry
    code, _actions, lines, _clock = run(server, "wind-down")
    assert code == 0
    job = server.obj(PREPROCESS)
    assert job["spec"]["suspend"] is True and job["metadata"]["annotations"] == {"gpulab.io/wind-down-suspended": "true"}
    # the running pod went with its own grace and did not count as a failure; the failed pod of the earlier try is left
    assert server.grace[POD + "preprocess-7xkq2"] == 30
    assert job["status"]["failed"] == 1
    assert server.obj(POD + "preprocess-7xkq2") is None and server.obj(POD + "preprocess-2hx9d") is not None
    assert [(m, p) for m, p in server.writes() if "preprocess" in p] == [("PATCH", PREPROCESS)]
    assert not [(m, p) for m, p in server.writes() if m == "PATCH" and p.startswith(POD)]
    assert PREPROCESS_WARNING in lines and PREPROCESS_WARNING in json.loads(lines[-1])["notes"]
    assert lines.index("suspend Job team-a/preprocess") < lines.index(PREPROCESS_WARNING)
    code, actions, _lines, _clock = run(server, "wind-up")
    assert code == 0 and "resume Job team-a/preprocess" in actions
    job = server.obj(PREPROCESS)
    assert job["spec"] == before["spec"] and "annotations" not in job["metadata"]
    assert [body["spec"] for m, p, _q, _h, body in server.requests if (m, p) == ("PATCH", PREPROCESS)] == [{"suspend": True}, {"suspend": False}]


def test_a_pod_deleted_with_its_tracking_finalizer_counts_as_a_failure_of_its_job(server):
    """What the test above relies on: the stand-in counts such a delete as the Job controller does."""
    gs.Api(server.url).delete(POD + "preprocess-7xkq2", 300)
    assert server.obj(PREPROCESS)["status"]["failed"] == 2


# -- the order by restartPolicy: the jobs of fixtures/pytorchjobs-restart-policies.json, all running in team-b ----------
TEAM_B_JOB = "/apis/kubeflow.org/v1/namespaces/team-b/pytorchjobs/"
TEAM_B_POD = "/api/v1/namespaces/team-b/pods/"
RESTART_POLICY_ACTIONS = [
    "delete Pod team-b/gan-default-master-0 (grace 300s)",  # restartPolicy unset: OnFailure, the PyTorchJob default
    "suspend PyTorchJob team-b/gan-default",
    "suspend PyTorchJob team-b/llm-never",  # Master Never
    "suspend PyTorchJob team-b/rl-patient",  # Never, terminationGracePeriodSeconds 600
    "delete Pod team-b/sd-exitcode-master-0 (grace 300s)",  # ExitCode: SIGTERM's 143 is retried
    "delete Pod team-b/sd-exitcode-worker-0 (grace 300s)",
    "suspend PyTorchJob team-b/sd-exitcode",
    "suspend PyTorchJob team-b/vae-strict",  # OnFailure, but runPolicy.backoffLimit 0
]
RESTART_POLICY_WARNINGS = [
    "warn PyTorchJob team-b/llm-never: its pods get 30s to checkpoint, not 300s; set terminationGracePeriodSeconds: 300 in its pod template "
    "(or restartPolicy OnFailure)",
    "warn PyTorchJob team-b/vae-strict: its pods get 30s to checkpoint, not 300s; set terminationGracePeriodSeconds: 300 in its pod template "
    "(or a runPolicy.backoffLimit above 0)",
]


def seed_restart_policies(server):
    for item in fixture("pytorchjobs-restart-policies.json")["items"]:
        server.add(KUBEFLOW, "pytorchjobs", item)
    for item in fixture("pods-restart-policies.json")["items"]:
        server.add("/api/v1", "pods", item)


def failed(server, name):
    return [c["type"] for c in server.obj(TEAM_B_JOB + name)["status"]["conditions"] if c["type"] == "Failed" and c["status"] == "True"]


@pytest.mark.parametrize("name, fails", [("llm-never", True), ("vae-strict", True), ("sd-exitcode", False), ("gan-default", False), ("rl-patient", True)])
def test_the_stand_in_operator_fails_a_job_whose_pod_is_killed_unless_its_restart_policy_restarts_it(server, name, fails):
    """What the tests below rely on: deleting a pod of a job that is not suspended fails a Never job (or one with
    backoffLimit 0) at once, and only such a job; once the job is suspended, the operator deletes its pods harmlessly."""
    seed_restart_policies(server)
    api = gs.Api(server.url)
    api.delete(TEAM_B_POD + name + "-master-0", 300)
    assert bool(failed(server, name)) is fails
    if fails:
        assert server.obj(TEAM_B_JOB + name)["metadata"]["resourceVersion"] != fixture_job(name)["metadata"]["resourceVersion"]
    other = "sd-exitcode" if name == "llm-never" else "llm-never"
    job = server.obj(TEAM_B_JOB + other)
    api.patch(TEAM_B_JOB + other, {"metadata": {"resourceVersion": job["metadata"]["resourceVersion"]}, "spec": {"runPolicy": {"suspend": True}}})
    assert server.obj(TEAM_B_POD + other + "-master-0") is None and not failed(server, other)


def fixture_job(name):
    (job,) = [item for item in fixture("pytorchjobs-restart-policies.json")["items"] if item["metadata"]["name"] == name]
    return job


def test_a_never_job_is_suspended_first_and_gets_the_warning(server):
    """llm-never's Master has restartPolicy Never: deleting its pods first would fail it for good if the operator
    reconciled before the suspension (the stand-in fails it at once). It is suspended first, the operator deletes
    its pods with their own terminationGracePeriodSeconds (30 s for the Master, 120 s for the Worker), and the run
    says that they get 30 s, not 300 s. rl-patient (Never too) sets 600 s: suspended first, no warning."""
    seed_restart_policies(server)
    code, actions, lines, _clock = run(server, "wind-down")
    assert code == 0
    assert [a for a in actions if "team-b/" in a and "PyTorchJob" in a or "Pod team-b/" in a] == RESTART_POLICY_ACTIONS
    assert [line for line in lines if line.startswith("warn PyTorchJob")] == RESTART_POLICY_WARNINGS
    assert lines.index("suspend PyTorchJob team-b/llm-never") < lines.index(RESTART_POLICY_WARNINGS[0])
    for name in ("llm-never", "rl-patient", "vae-strict"):
        job = server.obj(TEAM_B_JOB + name)
        assert job["spec"]["runPolicy"]["suspend"] is True and job["metadata"]["annotations"] == {"gpulab.io/wind-down-suspended": "true"}
        assert not failed(server, name)
        # the program never deleted its pods: the operator did, after the suspension, with their own grace
        assert not [p for m, p in server.writes() if m == "DELETE" and p.startswith(TEAM_B_POD + name + "-")]
    assert server.grace[TEAM_B_POD + "llm-never-master-0"] == 30 and server.grace[TEAM_B_POD + "llm-never-worker-0"] == 120
    assert server.grace[TEAM_B_POD + "rl-patient-master-0"] == 600 and server.grace[TEAM_B_POD + "vae-strict-master-0"] == 30
    # waited for: the pods it deleted (resnet's 2, gan-default's 1, sd-exitcode's 2) and those of the jobs it
    # suspended first (llm-never's 2, rl-patient's 1, vae-strict's 1, preprocess's 1)
    assert json.loads(lines[-1])["notes"][-1] == "all 10 deleted pods are gone after 0s"
    # wind-up resumes them
    code, actions, _lines, _clock = run(server, "wind-up")
    assert code == 0
    assert [a for a in actions if "team-b/" in a and "PyTorchJob" in a] == [
        "resume PyTorchJob team-b/%s" % name for name in ("gan-default", "llm-never", "rl-patient", "sd-exitcode", "vae-strict")]
    assert all(server.obj(TEAM_B_JOB + name)["spec"]["runPolicy"]["suspend"] is False
               for name in ("gan-default", "llm-never", "rl-patient", "sd-exitcode", "vae-strict"))


def test_restart_policies_that_restart_a_killed_pod_get_the_configured_grace(server):
    """ExitCode (SIGTERM's 143 is retryable) and an unset restartPolicy (OnFailure for a PyTorchJob): the pods are
    deleted first, with the grace, and the jobs are then suspended; nothing failed, no warning."""
    seed_restart_policies(server)
    code, _actions, lines, _clock = run(server, "wind-down", "--grace-seconds", "240")
    assert code == 0
    for name in ("sd-exitcode-master-0", "sd-exitcode-worker-0", "gan-default-master-0"):
        assert server.grace[TEAM_B_POD + name] == 240
    for name in ("sd-exitcode", "gan-default"):
        writes = [(m, p) for m, p in server.writes() if p.startswith((TEAM_B_POD + name + "-", TEAM_B_JOB + name))]
        assert [m for m, _p in writes] == ["DELETE"] * (len(writes) - 1) + ["PATCH"] and len(writes) > 1
        assert not failed(server, name) and server.obj(TEAM_B_JOB + name)["spec"]["runPolicy"]["suspend"] is True
        assert not [line for line in lines if line.startswith("warn PyTorchJob team-b/%s:" % name)]


def test_a_grace_period_no_longer_than_the_pods_own_gets_no_warning(server):
    seed_restart_policies(server)
    code, _actions, lines, _clock = run(server, "wind-down", "--grace-seconds", "30")
    assert code == 0
    assert not [line for line in lines if line.startswith("warn ")]
    assert server.grace[TEAM_B_POD + "gan-default-master-0"] == 30 and server.grace[TEAM_B_POD + "llm-never-master-0"] == 30


def test_dry_run_says_the_same_actions_and_warnings_for_suspend_first_jobs(server):
    seed_restart_policies(server)
    state = copy.deepcopy(server.objects)
    code, dry, dry_lines, _clock = run(server, "wind-down", "--dry-run")
    assert code == 0 and server.writes() == [] and server.objects == state
    code, real, real_lines, _clock = run(server, "wind-down")
    assert code == 0
    assert dry == ["would " + action for action in real]
    warnings = [line for line in real_lines if line.startswith("warn ")]
    assert [line for line in dry_lines if line.startswith("warn ")] == warnings == RESTART_POLICY_WARNINGS + [PREPROCESS_WARNING]


@pytest.mark.parametrize("kind, spec, expected", [
    ("PyTorchJob", {"pytorchReplicaSpecs": {"Master": {}, "Worker": {}}}, None),  # default OnFailure
    ("PyTorchJob", {"pytorchReplicaSpecs": {"Master": {"restartPolicy": "Always"}}}, None),
    ("PyTorchJob", {"pytorchReplicaSpecs": {"Master": {"restartPolicy": "ExitCode"}, "Worker": {"restartPolicy": "Never"}}}, ["restartPolicy OnFailure"]),
    ("PyTorchJob", {"pytorchReplicaSpecs": {"Master": {"restartPolicy": "Sometimes"}}}, ["restartPolicy OnFailure"]),  # unknown
    ("PyTorchJob", {}, ["restartPolicy OnFailure"]),  # no replica specs: nothing known
    ("PyTorchJob", {"pytorchReplicaSpecs": {"Master": {}}, "runPolicy": {"backoffLimit": 0}}, ["a runPolicy.backoffLimit above 0"]),
    ("PyTorchJob", {"pytorchReplicaSpecs": {"Master": {}}, "runPolicy": {"backoffLimit": 1}}, None),
    ("PaddleJob", {"paddleReplicaSpecs": {"Master": {}, "Worker": {}}}, None),  # default OnFailure
    ("TFJob", {"tfReplicaSpecs": {"Chief": {"restartPolicy": "OnFailure"}, "Worker": {}}}, ["restartPolicy OnFailure"]),  # default Never
    ("TFJob", {"tfReplicaSpecs": {"Chief": {"restartPolicy": "OnFailure"}, "Worker": {"restartPolicy": "ExitCode"}}}, None),
    ("MPIJob", {"mpiReplicaSpecs": {"Launcher": {"restartPolicy": "OnFailure"}, "Worker": {"restartPolicy": "OnFailure"}}}, ["restartPolicy ExitCode"]),
    ("MPIJob", {"mpiReplicaSpecs": {"Launcher": {"restartPolicy": "ExitCode"}, "Worker": {"restartPolicy": "ExitCode"}}}, None),
    ("XGBoostJob", {"xgbReplicaSpecs": {"Master": {}, "Worker": {"restartPolicy": "ExitCode"}}}, ["restartPolicy ExitCode"]),
    ("XGBoostJob", {"xgbReplicaSpecs": {"Master": {"restartPolicy": "Never"}}, "runPolicy": {"backoffLimit": 0}},
     ["restartPolicy ExitCode", "a runPolicy.backoffLimit above 0"]),
    ("Job", {"template": {"spec": {"restartPolicy": "OnFailure"}}}, []),  # batch/v1: always suspended first
])
def test_suspend_first_by_kind_restart_policy_and_backoff_limit(kind, spec, expected):
    assert gs.suspend_first(kind, {"spec": spec}) == expected


@pytest.mark.parametrize("kind, spec, expected", [
    ("PyTorchJob", {"pytorchReplicaSpecs": {"Master": {"template": {"spec": {}}},
                                            "Worker": {"template": {"spec": {"terminationGracePeriodSeconds": 120}}}}}, 30),
    ("PyTorchJob", {"pytorchReplicaSpecs": {"Master": {"template": {"spec": {"terminationGracePeriodSeconds": 600}}},
                                            "Worker": {"template": {"spec": {"terminationGracePeriodSeconds": 450}}}}}, 450),
    ("MPIJob", {"mpiReplicaSpecs": {"Launcher": {"template": {"spec": {"terminationGracePeriodSeconds": None}}}}}, 30),
    ("Job", {"template": {"spec": {"terminationGracePeriodSeconds": 0}}}, 0),
    ("Job", {}, 30),
])
def test_own_grace_is_the_shortest_of_the_pod_templates(kind, spec, expected):
    assert gs.own_grace(kind, {"spec": spec}) == expected


@pytest.mark.parametrize("path, why", [
    ("/apis/kubeflow.org/v1/namespaces/team-a/pytorchjobs/bert-done", "finished (Succeeded)"),
    ("/apis/kubeflow.org/v1/namespaces/team-b/pytorchjobs/vit-failed", "finished (Failed)"),
    ("/apis/kubeflow.org/v1/namespaces/team-b/pytorchjobs/gpt-paused", "suspended by its owner"),
    ("/apis/kubeflow.org/v1/namespaces/team-b/pytorchjobs/tune-lr-x7k2p9", "owned by Katib Trial tune-lr-x7k2p9"),
    ("/api/v1/namespaces/team-b/pods/tune-lr-x7k2p9-master-0", "pod of a job owned by a Katib Trial"),
    ("/api/v1/namespaces/team-a/pods/bert-done-master-0", "pod of a finished job"),
    ("/apis/batch/v1/namespaces/team-b/jobs/etl-done", "finished (Complete)"),
    ("/apis/batch/v1/namespaces/team-b/jobs/export-failed", "finished (Failed)"),
    ("/apis/batch/v1/namespaces/team-b/jobs/held", "suspended by its owner"),
    ("/apis/batch/v1/namespaces/team-a/jobs/nightly-29399880", "owned by CronJob nightly"),
    ("/api/v1/namespaces/team-a/pods/nightly-29399880-q5w8m", "pod of a Job owned by a CronJob"),
    ("/api/v1/namespaces/team-a/pods/preprocess-2hx9d", "finished pod of a running Job"),
    ("/apis/kubeflow.org/v1/namespaces/team-b/notebooks/sketch", "stopped by its user"),
    ("/apis/apps/v1/namespaces/team-a/deployments/idle", "replicas 0"),
    ("/apis/apps/v1/namespaces/team-b/deployments/hello-00001-deployment", "owned by Knative Revision hello-00001"),
    ("/apis/apps/v1/namespaces/team-a/statefulsets/lab", "owned by Notebook lab"),
    ("/apis/apps/v1/namespaces/team-b/statefulsets/sketch", "owned by Notebook sketch"),
    ("/api/v1/nodes/gpu04", "has a gpulab.io/day-use taint someone else put there"),
    ("/api/v1/nodes/gpu03", "not a day-use node"),
    ("/api/v1/nodes/cp01", "not a day-use node"),
    ("/api/v1/namespaces/kubeflow", "not a tenant namespace"),
    ("/apis/kubeflow.org/v1/namespaces/kubeflow/pytorchjobs/mnist-smoke", "not a tenant namespace"),
    ("/api/v1/namespaces/kubeflow/pods/mnist-smoke-master-0", "not a tenant namespace"),
    ("/apis/apps/v1/namespaces/kubeflow/deployments/ml-pipeline-ui", "not a tenant namespace"),
    ("/apis/batch/v1/namespaces/kubeflow/jobs/sync-manifests", "not a tenant namespace"),
])
def test_skip_rules_leave_objects_untouched_both_ways(server, path, why):
    before = copy.deepcopy(server.obj(path))
    assert before is not None, why
    assert run(server, "wind-down")[0] == 0
    assert run(server, "wind-up")[0] == 0
    assert server.obj(path) == before, why
    assert [p for _m, p in server.writes() if p == path or p.startswith(path + "/")] == [], why


@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]])
def test_objects_another_controller_owns_are_skipped_and_said_so(server, dry_run):
    code, actions, lines, _clock = run(server, "wind-down", *dry_run)
    assert code == 0  # not errors
    assert [line for line in skips(lines) if "owned by" in line] == OWNED
    assert [note for note in json.loads(lines[-1])["notes"] if note.startswith("skip ")][:len(OWNED) + 2] == [OWNED[0]] + UNSERVED + OWNED[1:]
    assert not [a for a in actions if "tune-lr" in a or "nightly" in a or "hello" in a or "team-a/lab " in a]


def test_an_owned_workload_is_left_alone_even_when_its_owner_kind_is_not_served(server):
    """The notebook's StatefulSet stays the notebook controller's even when Notebook isn't listed."""
    server.unserved.add((KUBEFLOW, "notebooks"))
    assert run(server, "wind-down")[0] == 0
    assert server.obj("/apis/apps/v1/namespaces/team-a/statefulsets/lab")["spec"]["replicas"] == 1


@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]])
def test_a_statefulset_whose_scale_down_would_delete_its_volumes_is_an_error_and_left_alone(server, dry_run):
    (cache,) = fixture("statefulset-whenscaled-delete.json")["items"]
    assert cache["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Delete"
    server.add("/apis/apps/v1", "statefulsets", cache)
    path = "/apis/apps/v1/namespaces/team-b/statefulsets/cache"
    code, actions, lines, _clock = run(server, "wind-down", *dry_run)
    assert code == 1
    assert [line for line in lines if line.startswith("error: ")] == [
        "error: scale StatefulSet team-b/cache: whenScaled: Delete would delete its volumes; set it to Retain"]
    # the others go on
    assert actions == [("would " if dry_run else "") + action for action in WIND_DOWN]
    assert lines[-2].endswith(": 12 changes, 1 errors")
    assert server.obj(path) == cache and ("PATCH", path) not in server.writes()
    assert run(server, "wind-up")[0] == 0
    assert server.obj(path) == cache and ("PATCH", path) not in server.writes()


def test_day_use_nodes_are_tainted_not_cordoned_and_wind_up_removes_only_that_taint(server):
    gpu01, gpu02 = "/api/v1/nodes/gpu01", "/api/v1/nodes/gpu02"
    cordoned = copy.deepcopy(server.obj(gpu02)["spec"])
    assert cordoned["unschedulable"] is True and [t["key"] for t in cordoned["taints"]] == ["node.kubernetes.io/unschedulable"]
    assert run(server, "wind-down")[0] == 0
    node = server.obj(gpu01)
    assert node["spec"]["taints"] == [DAY_USE_TAINT] and "unschedulable" not in node["spec"]
    assert node["metadata"]["annotations"]["gpulab.io/wind-down-tainted"] == "true"
    # a merge patch replaces the list: the node's taints as read, plus ours, on the resourceVersion read
    (body,) = [b for m, p, _q, _h, b in server.requests if (m, p) == ("PATCH", gpu02)]
    assert body == {"metadata": {"annotations": {"gpulab.io/wind-down-tainted": "true"}, "resourceVersion": "1184118"},
                    "spec": {"taints": cordoned["taints"] + [DAY_USE_TAINT]}}
    # by day someone adds other taints, one with our key; wind-up removes exactly ours (key and effect) and the marker
    others = [{"key": "nvidia.com/gpu", "value": "maintenance", "effect": "NoExecute"},
              {"key": "gpulab.io/day-use", "value": "maintenance", "effect": "NoExecute"}]
    server.obj(gpu01)["spec"]["taints"][:0] = copy.deepcopy(others)
    assert run(server, "wind-up")[0] == 0
    assert server.obj(gpu01)["spec"]["taints"] == others
    assert "annotations" not in server.obj(gpu01)["metadata"] or "gpulab.io/wind-down-tainted" not in server.obj(gpu01)["metadata"]["annotations"]
    assert server.obj(gpu02)["spec"] == cordoned


def test_a_node_without_the_marker_keeps_a_day_use_taint_at_wind_up(server):
    """Someone tainted the node like wind-down does, but wind-down did not: it is theirs."""
    gpu03 = "/api/v1/nodes/gpu03"
    server.obj(gpu03)["spec"]["taints"] = [dict(DAY_USE_TAINT)]
    before = copy.deepcopy(server.obj(gpu03))
    code, actions, _lines, _clock = run(server, "wind-up")
    assert (code, actions) == (0, [])
    assert server.obj(gpu03) == before


def test_the_taint_key_is_an_option(server):
    code, _actions, _lines, _clock = run(server, "wind-down", "--day-use-taint", "gpulab.io/workstation")
    assert code == 0
    ours = dict(DAY_USE_TAINT, key="gpulab.io/workstation")
    # gpu04's gpulab.io/day-use taint is not this key: it gets ours too
    assert server.obj("/api/v1/nodes/gpu04")["spec"]["taints"] == [{"key": "gpulab.io/day-use", "value": "reserved", "effect": "NoSchedule"}, ours]
    assert server.obj("/api/v1/nodes/gpu01")["spec"]["taints"] == [ours]
    code, actions, _lines, _clock = run(server, "wind-up", "--day-use-taint", "gpulab.io/workstation")
    assert code == 0 and actions[:3] == ["untaint Node gpu01", "untaint Node gpu02", "untaint Node gpu04"]
    assert server.obj("/api/v1/nodes/gpu04")["spec"]["taints"] == [{"key": "gpulab.io/day-use", "value": "reserved", "effect": "NoSchedule"}]


def test_a_taint_added_between_list_and_patch_is_kept(server):
    path = "/api/v1/nodes/gpu01"
    other = {"key": "nvidia.com/gpu", "value": "maintenance", "effect": "NoExecute"}
    server.concurrent[path] = 1
    server.meanwhile[path] = lambda node: merge_patch(node, {"spec": {"taints": [other]}})
    code, actions, _lines, _clock = run(server, "wind-down")
    assert (code, actions) == (0, WIND_DOWN)
    assert [(m, p) for m, p, _q, _h, _b in server.requests if p == path] == [("PATCH", path), ("GET", path), ("PATCH", path)]
    assert server.obj(path)["spec"]["taints"] == [other, DAY_USE_TAINT]


def test_wind_up_restores_exactly_what_was_there(server):
    before = server.snapshot()
    assert run(server, "wind-down")[0] == 0
    assert server.snapshot() != before
    code, actions, lines, _clock = run(server, "wind-up")
    assert (code, actions, lines[-2]) == (0, WIND_UP, "wind-up: 10 changes, 0 errors")
    after = server.snapshot()
    assert sorted(after) == sorted(before)
    for key in before:
        assert after[key] == before[key], key
    events = sorted((obj["metadata"]["namespace"], obj["reason"]) for key, obj in server.objects.items() if key[1] == "events")
    assert events == [("team-a", "WindDown"), ("team-a", "WindUp"), ("team-b", "WindDown"), ("team-b", "WindUp")]


@pytest.mark.parametrize("mode", ["wind-down", "wind-up"])
def test_second_run_changes_nothing(server, mode):
    if mode == "wind-up":
        run(server, "wind-down")
    assert run(server, mode)[0] == 0
    state, writes = copy.deepcopy(server.objects), len(server.writes())
    code, actions, lines, _clock = run(server, mode)
    assert (code, actions, lines[-2]) == (0, [], "%s: 0 changes, 0 errors" % mode)
    assert len(server.writes()) == writes and server.objects == state


def test_wind_up_without_wind_down_writes_nothing(server):
    state = copy.deepcopy(server.objects)
    code, actions, lines, _clock = run(server, "wind-up")
    assert (code, actions, lines[-2]) == (0, [], "wind-up: 0 changes, 0 errors")
    assert server.writes() == [] and server.objects == state


@pytest.mark.parametrize("mode, expected", [("wind-down", WIND_DOWN), ("wind-up", WIND_UP)])
def test_dry_run_writes_nothing_and_says_what_the_run_would_do(server, mode, expected):
    if mode == "wind-up":
        run(server, "wind-down")
    state, writes = copy.deepcopy(server.objects), len(server.writes())
    code, actions, lines, _clock = run(server, mode, "--dry-run")
    assert code == 0
    assert len(server.writes()) == writes and server.objects == state
    assert actions == ["would " + action for action in expected]
    assert lines[-2] == "%s (dry run): %d changes, 0 errors" % (mode, len(expected))
    code, real, _lines, _clock = run(server, mode)
    assert code == 0 and real == expected


def test_conflict_is_read_again_and_retried_once(server):
    path = "/apis/apps/v1/namespaces/team-a/deployments/web"
    server.concurrent[path] = 1
    code, actions, _lines, _clock = run(server, "wind-down")
    assert (code, actions) == (0, WIND_DOWN)
    assert [(m, p) for m, p, _q, _h, _b in server.requests if p == path] == [("PATCH", path), ("GET", path), ("PATCH", path)]
    assert server.obj(path)["spec"]["replicas"] == 0


def test_second_conflict_is_an_error_and_the_others_go_on(server):
    path = "/apis/apps/v1/namespaces/team-a/deployments/web"
    server.concurrent[path] = 2
    code, actions, lines, _clock = run(server, "wind-down")
    assert code == 1
    assert actions == [a for a in WIND_DOWN if "team-a/web" not in a]
    assert [line for line in lines if line.startswith("error: ")] == [
        'error: scale Deployment team-a/web 2 -> 0: 409 Conflict: Operation cannot be fulfilled on deployments "web": the object has been modified; '
        'please apply your changes to the latest version and try again']
    assert lines[-2] == "wind-down: 11 changes, 1 errors"
    assert server.obj(path)["spec"]["replicas"] == 2


def test_the_suspension_after_the_pods_meets_more_conflicts_than_other_patches(server):
    """The job's controller writes its status as the deleted pods terminate: the suspension tries three times."""
    server.concurrent[RESNET] = 2
    code, actions, _lines, _clock = run(server, "wind-down")
    assert (code, actions) == (0, WIND_DOWN)
    assert [m for m, p, _q, _h, _b in server.requests if p == RESNET] == ["PATCH", "GET", "PATCH", "GET", "PATCH"]
    assert server.obj(RESNET)["spec"]["runPolicy"]["suspend"] is True


def test_conflict_decides_again_on_what_it_reads(server):
    """Someone suspends the job between our list and our patch: after the 409 it gets no marker (wind-up leaves it
    suspended). Its pods were deleted first, with the grace, as its owner's suspension would have deleted them."""
    server.concurrent[RESNET] = 1
    server.meanwhile[RESNET] = lambda job: merge_patch(job, {"spec": {"runPolicy": {"suspend": True}}})
    code, actions, _lines, _clock = run(server, "wind-down")
    assert code == 0
    assert [a for a in actions if "resnet" in a] == ["delete Pod team-a/resnet-master-0 (grace 300s)", "delete Pod team-a/resnet-worker-0 (grace 300s)"]
    assert [(m, p) for m, p, _q, _h, _b in server.requests if p == RESNET] == [("PATCH", RESNET), ("GET", RESNET)]
    assert "annotations" not in server.obj(RESNET)["metadata"]
    assert run(server, "wind-up")[0] == 0 and server.obj(RESNET)["spec"]["runPolicy"]["suspend"] is True


def test_a_job_that_failed_while_its_pods_were_deleted_is_an_error(server):
    """Its controller counted the terminating pods as failed before the suspension got there (which the order chosen
    by restartPolicy should rule out; an operator that behaves otherwise, say): the run says so."""
    failed = {"type": "Failed", "status": "True", "reason": "PyTorchJobFailed", "message": "PyTorchJob resnet is failed because 1 Master replica(s) failed."}
    server.concurrent[RESNET] = 1
    server.meanwhile[RESNET] = lambda job: merge_patch(job, {"status": {"conditions": job["status"]["conditions"] + [failed]}})
    code, _actions, lines, _clock = run(server, "wind-down")
    assert code == 1
    assert [line for line in lines if line.startswith("error: ")] == [
        "error: suspend PyTorchJob team-a/resnet: it became Failed while its pods were being deleted; not suspended"]
    assert "annotations" not in server.obj(RESNET)["metadata"]


def test_server_error_on_one_object_is_counted_and_the_rest_proceeds(server):
    path = "/apis/kubeflow.org/v1/namespaces/team-a/notebooks/lab"
    server.fail[("PATCH", path)] = (500, fixture("status-500-internal-error.json"))
    code, actions, lines, _clock = run(server, "wind-down")
    assert code == 1
    assert actions == [a for a in WIND_DOWN if a != "stop Notebook team-a/lab"]
    errors = json.loads(lines[-1])["errors"]
    assert len(errors) == 1 and errors[0].startswith("stop Notebook team-a/lab: 500 InternalError: Internal error occurred: failed calling webhook")
    assert lines[-2] == "wind-down: 11 changes, 1 errors"


def test_list_error_in_one_namespace_is_an_error_and_the_other_namespaces_are_listed(server):
    server.fail[("GET", "/apis/apps/v1/namespaces/team-b/statefulsets")] = (500, fixture("status-500-internal-error.json"))
    code, actions, lines, _clock = run(server, "wind-down")
    assert code == 1
    assert "scale StatefulSet team-b/postgres 1 -> 0" not in actions and "taint Node gpu01" in actions
    assert [line for line in lines if line.startswith("error: ")] == [
        "error: list StatefulSet in team-b: 500 InternalError: " + fixture("status-500-internal-error.json")["message"]]
    assert "skip StatefulSet team-a/lab: owned by Notebook lab" in lines  # team-a was listed


def test_pods_that_cannot_be_listed_leave_a_delete_first_job_running_and_a_suspend_first_job_is_suspended(server):
    """resnet, suspended without its pods deleted first, would have them killed with their own 30 s: it runs on. The
    batch Job is suspended first anyway, its pods were listed only to be waited for."""
    server.fail[("GET", "/api/v1/namespaces/team-a/pods")] = (500, fixture("status-500-internal-error.json"))
    code, actions, lines, _clock = run(server, "wind-down")
    assert code == 1
    assert [a for a in actions if "resnet" in a or "preprocess" in a] == ["suspend Job team-a/preprocess"]
    assert [line.split(": 500")[0] for line in lines if line.startswith("error: ")] == [
        "error: list Pods of PyTorchJob team-a/resnet", "error: list Pods of Job team-a/preprocess"]
    assert server.obj(RESNET)["spec"]["runPolicy"]["suspend"] is False and server.obj(PREPROCESS)["spec"]["suspend"] is True


def test_unserved_kubeflow_kinds_are_skipped_not_errors(server):
    server.unserved |= {(KUBEFLOW, "pytorchjobs"), (KUBEFLOW, "notebooks")}
    before = server.snapshot()
    code, actions, lines, _clock = run(server, "wind-down")
    assert code == 0
    assert actions == [a for a in WIND_DOWN if "PyTorchJob" not in a and "resnet" not in a and "Notebook" not in a]
    assert [line for line in skips(lines) if "not served" in line] == [
        "skip %s: /apis/kubeflow.org/v1/%s is not served here (NotFound)" % kind
        for kind in (("PyTorchJob", "pytorchjobs"), ("TFJob", "tfjobs"), ("MPIJob", "mpijobs"), ("Notebook", "notebooks"))]
    code, _actions, _lines, _clock = run(server, "wind-up")
    assert code == 0 and server.snapshot() == before


def test_an_unserved_kind_is_said_once_not_once_per_namespace(server):
    code, _actions, lines, _clock = run(server, "wind-down")
    assert code == 0
    assert [p for m, p, _q, _h, _b in server.requests if p.endswith("/pytorchjobs")] == [
        "/apis/kubeflow.org/v1/namespaces/team-a/pytorchjobs", "/apis/kubeflow.org/v1/namespaces/team-b/pytorchjobs"]
    assert [line for line in lines[:-1] if "TFJob" in line] == [UNSERVED[0]]
    assert [p for m, p, _q, _h, _b in server.requests if "tfjobs" in p] == ["/apis/kubeflow.org/v1/namespaces/team-a/tfjobs"]


def test_job_kinds_choose_what_is_listed_and_batch_jobs_always_are(server):
    run(server, "wind-down", "--job-kinds", "tfjobs", "--dry-run")
    listed = [p for m, p, _q, _h, _b in server.requests if m == "GET" and ("kubeflow.org" in p or "batch" in p)]
    assert listed == ["/apis/kubeflow.org/v1/namespaces/team-a/tfjobs",
                      "/apis/batch/v1/namespaces/team-a/jobs", "/apis/batch/v1/namespaces/team-b/jobs",
                      "/apis/kubeflow.org/v1/namespaces/team-a/notebooks", "/apis/kubeflow.org/v1/namespaces/team-b/notebooks"]


# What RBAC has to grant, as (verb, API group, resource): cluster-wide, and in each tenant namespace (RoleBindings).
CLUSTER_WIDE = set((verb, "", resource) for verb in ("list", "get", "patch") for resource in ("namespaces", "nodes"))
PER_TENANT = (set([("create", "", "events"), ("list", "", "pods"), ("get", "", "pods"), ("delete", "", "pods")])
              | set((verb, group, resource) for verb in ("list", "get", "patch")
                    for group, resource in (("apps", "deployments"), ("apps", "statefulsets"), ("batch", "jobs"), ("kubeflow.org", "pytorchjobs"),
                                            ("kubeflow.org", "tfjobs"), ("kubeflow.org", "mpijobs"), ("kubeflow.org", "notebooks"))))


def permission(method, path):
    """(verb, API group, resource, namespace or None) of a request, as RBAC sees it."""
    prefix, plural, ns, name = split(path)
    group = "" if prefix.startswith("/api/") else prefix.split("/")[2]
    return {"GET": "get" if name else "list", "PATCH": "patch", "DELETE": "delete", "POST": "create"}[method], group, plural, ns


def test_namespaced_kinds_are_used_in_tenant_namespaces_only_and_only_namespaces_and_nodes_cluster_wide(server):
    # a conflict on one object of each kind patched, and a pod that lingers: the reads a run can make
    for path in ("/api/v1/namespaces/team-a", "/api/v1/nodes/gpu01", "/apis/apps/v1/namespaces/team-a/deployments/web",
                 "/apis/apps/v1/namespaces/team-b/statefulsets/postgres", RESNET, PREPROCESS, "/apis/kubeflow.org/v1/namespaces/team-a/notebooks/lab"):
        server.concurrent[path] = 1
    server.linger[POD + "resnet-master-0"] = 1
    for mode in ("wind-down", "wind-up"):
        assert run(server, mode)[0] == 0
    used = [permission(method, path) for method, path, _q, _h, _b in server.requests]
    assert set((verb, group, resource) for verb, group, resource, ns in used if ns is None) == CLUSTER_WIDE
    assert set(ns for _v, _g, _r, ns in used if ns is not None) == {"team-a", "team-b"}
    namespaced = set((verb, group, resource) for verb, group, resource, ns in used if ns is not None)
    # tfjobs and mpijobs are not served here: only listed (like pytorchjobs, which is exercised in full)
    assert namespaced == PER_TENANT - set((verb, "kubeflow.org", kind) for verb in ("get", "patch") for kind in ("tfjobs", "mpijobs"))
    # pods are listed, read and deleted, never patched (the Job controller removes its own finalizer)
    assert set((verb, group, resource) for verb, group, resource in namespaced if resource == "pods") == {
        ("list", "", "pods"), ("get", "", "pods"), ("delete", "", "pods")}


def test_suspend_not_kept_by_the_server_is_an_error(server):
    server.drop_suspend = True
    code, actions, lines, _clock = run(server, "wind-down")
    assert code == 1
    assert "suspend PyTorchJob team-a/resnet" in actions  # the patch went through, less the field
    assert [line for line in lines if line.startswith("error: ")] == [
        "error: suspend PyTorchJob team-a/resnet: the server did not keep spec.runPolicy.suspend (Training Operator older than 1.7?); "
        "the job runs on and its controller recreates the deleted pods"]
    assert server.obj(RESNET)["spec"]["runPolicy"].get("suspend") is None


def test_bad_recorded_replica_count_is_left_alone_and_reported(server):
    run(server, "wind-down")
    path = "/apis/apps/v1/namespaces/team-a/deployments/web"
    server.obj(path)["metadata"]["annotations"]["gpulab.io/wind-down-replicas"] = "two"
    before = copy.deepcopy(server.obj(path))
    code, actions, lines, _clock = run(server, "wind-up")
    assert code == 1
    assert actions == [a for a in WIND_UP if "team-a/web" not in a]
    assert json.loads(lines[-1])["errors"] == [
        "scale Deployment team-a/web: recorded gpulab.io/wind-down-replicas 'two' is not a non-negative integer; left alone"]
    assert server.obj(path) == before
    assert ("PATCH", path) not in server.writes()[-len(WIND_UP):]


def test_lists_follow_continue_tokens(server):
    server.page_size = 1
    code, actions, _lines, _clock = run(server, "wind-down")
    assert (code, actions) == (0, WIND_DOWN)
    for ns in ("team-a", "team-b"):  # two Deployments in each
        deployments = [q for m, p, q, _h, _b in server.requests if m == "GET" and p == "/apis/apps/v1/namespaces/%s/deployments" % ns]
        assert [q.get("continue") for q in deployments] == [None, ["1"]]


def test_wait_for_deleted_pods_until_gone(server):
    server.linger["/api/v1/namespaces/team-a/pods/resnet-master-0"] = 3
    code, _actions, lines, clock = run(server, "wind-down")
    assert code == 0
    assert "all 3 deleted pods are gone after 15s" in lines
    assert clock.sleeps == [5, 5, 5]


def test_wait_for_deleted_pods_is_bounded_and_reports_what_is_left(server):
    server.linger["/api/v1/namespaces/team-a/pods/resnet-worker-0"] = None
    code, _actions, lines, clock = run(server, "wind-down", "--grace-seconds", "12")
    assert code == 0  # a slow pod is reported, not a failure of the run
    assert "still present after 42s: Pod team-a/resnet-worker-0" in lines
    assert sum(clock.sleeps) == 42 and max(clock.sleeps) <= 5
    assert json.loads(lines[-1])["notes"][-1] == "still present after 42s: Pod team-a/resnet-worker-0"


@pytest.mark.parametrize("linger, said, slept", [(2, "all 3 deleted pods are gone after 10s", 10),
                                                 (None, "still present after 42s: Pod team-a/preprocess-7xkq2", 42)])
def test_the_pods_of_a_job_suspended_first_are_waited_for_within_the_same_bound(server, linger, said, slept):
    """The Job controller deletes preprocess's pod with its own grace: the run waits for it as for the pods it
    deleted itself, at most grace + 30 s."""
    server.linger[POD + "preprocess-7xkq2"] = linger
    code, _actions, lines, clock = run(server, "wind-down", "--grace-seconds", "12")
    assert code == 0
    assert server.grace[POD + "preprocess-7xkq2"] == 30  # deleted by its controller, not by the program
    assert ("DELETE", POD + "preprocess-7xkq2") not in server.writes()
    assert said in lines and sum(clock.sleeps) == slept


def test_the_whole_run_is_bounded_by_timeout(server):
    server.linger["/api/v1/namespaces/team-a/pods/resnet-worker-0"] = None
    code, _actions, lines, clock = run(server, "wind-down", "--timeout", "20")
    assert code == 0 and sum(clock.sleeps) == 20
    assert "still present after 20s: Pod team-a/resnet-worker-0" in lines


def test_running_out_of_time_stops_the_run_with_an_error(server):
    clock = FakeClock()
    out = io.StringIO()
    api = gs.Api(server.url)
    original = api.list

    def slow_list(path, label_selector=None, limit=500):
        clock.now += 400
        return original(path, label_selector, limit)

    api.list = slow_list
    code = gs.main(["wind-down", "--timeout", "1000"], api=api, out=out, clock=clock, sleep=clock.sleep)
    lines = out.getvalue().splitlines()
    assert code == 1
    assert "error: run stopped after --timeout 1000s; the remaining steps were not done" in lines
    assert not [w for w in server.writes() if "/nodes/" in w[1]]


def test_api_error_carries_the_status_reason_and_message(server):
    api = gs.Api(server.url)
    with pytest.raises(gs.ApiError) as caught:
        api.get("/apis/apps/v1/namespaces/team-a/deployments/nope")
    assert (caught.value.code, caught.value.reason, caught.value.message) == (404, "NotFound", 'deployments "nope" not found')
    with pytest.raises(gs.ApiError) as caught:
        api.list("/apis/kubeflow.org/v1/tfjobs")
    assert caught.value.status == fixture("status-404-notfound.json")
    with pytest.raises(gs.ApiError) as caught:
        gs.Api("http://127.0.0.1:1", timeout=2).get("/api/v1/nodes")
    assert caught.value.code == 0


def test_in_cluster_configuration(tmp_path):
    (tmp_path / "token").write_text("eyJhbGciOi.token\n")
    api = gs.Api.in_cluster({"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}, str(tmp_path))
    assert (api.base_url, api.token, api.ca_file) == ("https://10.96.0.1:443", "eyJhbGciOi.token", str(tmp_path / "ca.crt"))
    api = gs.Api.in_cluster({"KUBERNETES_SERVICE_HOST": "fd00:10:96::1", "KUBERNETES_SERVICE_PORT": "443"}, str(tmp_path))
    assert api.base_url == "https://[fd00:10:96::1]:443"
    with pytest.raises(gs.ApiError):
        gs.Api.in_cluster({}, str(tmp_path))


def test_without_api_access_the_run_fails(monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    out = io.StringIO()
    assert gs.main(["wind-up"], out=out) == 1
    assert out.getvalue().startswith("error: no API access:")


@pytest.mark.parametrize("argv", [
    [], ["wind-sideways"], ["wind-down", "--grace-seconds", "-1"], ["wind-down", "--grace-seconds", "five"],
    ["wind-down", "--job-kinds", "pytorchjobs,trainjobs"], ["wind-up", "--timeout", "0"], ["wind-up", "--tenant-label", "a=b"],
    ["wind-up", "--day-use-selector", " "], ["wind-down", "--day-use-taint", "gpulab.io/day-use=wind-down:NoSchedule"],
    ["wind-down", "--no-such-option"],
])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        gs.main(argv, api=object())
    assert caught.value.code == 2
    assert "usage: gpulab_schedule.py" in capsys.readouterr().err
