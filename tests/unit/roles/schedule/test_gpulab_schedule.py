# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""roles/schedule/files/gpulab_schedule.py against a stand-in API server over real HTTP.

The server stores objects seeded from fixtures/ (list bodies shaped as a real API server returns them, see
fixtures/README.md), serves paginated lists with label selectors, JSON merge patches (RFC 7386) with the
resourceVersion precondition (409 Conflict Status), deletes, posts, and a 404 Status for kinds it does not serve.
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


# fixture file -> the API path prefix and plural its items live under
SEED = {"namespaces.json": ("/api/v1", "namespaces"), "nodes.json": ("/api/v1", "nodes"), "pods.json": ("/api/v1", "pods"),
        "deployments.json": ("/apis/apps/v1", "deployments"), "statefulsets.json": ("/apis/apps/v1", "statefulsets"),
        "pytorchjobs.json": ("/apis/kubeflow.org/v1", "pytorchjobs"), "notebooks.json": ("/apis/kubeflow.org/v1", "notebooks")}
KINDS = {"namespaces": "Namespace", "nodes": "Node", "pods": "Pod", "events": "Event", "deployments": "Deployment",
         "statefulsets": "StatefulSet", "pytorchjobs": "PyTorchJob", "tfjobs": "TFJob", "mpijobs": "MPIJob", "notebooks": "Notebook"}
WRITES = ("PATCH", "DELETE", "POST")


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


class ApiServer(object):
    """Objects by (prefix, plural, namespace, name); every request recorded as (method, path, query, headers, body)."""

    def __init__(self):
        self.objects = {}
        self.requests = []
        self.unserved = {("/apis/kubeflow.org/v1", "tfjobs"), ("/apis/kubeflow.org/v1", "mpijobs")}
        self.page_size = 500
        self.fail = {}          # (method, path) -> (code, body), every time
        self.concurrent = {}    # path -> how many PATCHes find the object changed by someone else first
        self.linger = {}        # pod path -> how many GETs still find it after its DELETE (None: for ever)
        self.drop_suspend = False  # a Training Operator before 1.7: its CRD schema prunes spec.runPolicy.suspend
        self.version = itertools.count(2000000)
        for name, (prefix, plural) in SEED.items():
            for item in fixture(name)["items"]:
                self.objects[(prefix, plural, item["metadata"].get("namespace"), item["metadata"]["name"])] = item
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
            if path in self.linger:
                obj["metadata"]["deletionTimestamp"] = "2026-11-30T07:00:05Z"
                obj["metadata"]["deletionGracePeriodSeconds"] = body["gracePeriodSeconds"]
            else:
                del self.objects[key]
            return 200, obj
        assert method == "PATCH" and headers["Content-Type"] == "application/merge-patch+json"
        if self.concurrent.get(path):
            self.concurrent[path] -= 1
            obj["metadata"]["resourceVersion"] = str(next(self.version))
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        if wanted is not None and wanted != obj["metadata"]["resourceVersion"]:
            conflict = fixture("status-409-conflict.json")
            conflict["message"] = conflict["message"].replace('resourcequotas "quota"', '%s "%s"' % (plural, name))
            conflict["details"] = {"name": name, "kind": plural}
            return 409, conflict
        new = merge_patch(obj, body)
        if self.drop_suspend and plural.endswith("jobs"):
            new["spec"]["runPolicy"].pop("suspend", None)
        if not new["metadata"].get("annotations"):
            new["metadata"].pop("annotations", None)  # an empty map is not kept
        new["metadata"]["resourceVersion"] = str(next(self.version))
        self.objects[key] = new
        return 200, new

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
    return code, [line for line in lines[:-2] if not line.startswith(("skip ", "error: ", "still present", "all "))], lines, clock


WIND_DOWN = [
    "announce Namespace team-a (grace 300s)",
    "announce Namespace team-b (grace 300s)",
    "suspend PyTorchJob team-a/resnet",
    "delete Pod team-a/resnet-master-0 (grace 300s)",
    "delete Pod team-a/resnet-worker-0 (grace 300s)",
    "stop Notebook team-a/lab",
    "scale Deployment team-a/web 2 -> 0",
    "scale Deployment team-b/api 1 -> 0",
    "scale StatefulSet team-b/postgres 1 -> 0",
    "cordon Node gpu01",
]
WIND_UP = [
    "uncordon Node gpu01",
    "scale Deployment team-a/web 0 -> 2",
    "scale Deployment team-b/api 0 -> 1",
    "scale StatefulSet team-b/postgres 0 -> 1",
    "start Notebook team-a/lab",
    "resume PyTorchJob team-a/resnet",
    "end wind-down Namespace team-a",
    "end wind-down Namespace team-b",
]


def test_wind_down_acts_in_order_and_says_so(server):
    code, actions, lines, _clock = run(server, "wind-down")
    assert code == 0
    assert actions == WIND_DOWN
    assert "skip TFJob: /apis/kubeflow.org/v1/tfjobs is not served here (NotFound)" in lines
    assert "skip MPIJob: /apis/kubeflow.org/v1/mpijobs is not served here (NotFound)" in lines
    assert lines[-2] == "wind-down: 10 changes, 0 errors"
    assert json.loads(lines[-1])["changes"] == WIND_DOWN
    # the writes went out in that order too: patches, pod deletes, events
    assert server.writes() == [
        ("PATCH", "/api/v1/namespaces/team-a"), ("POST", "/api/v1/namespaces/team-a/events"),
        ("PATCH", "/api/v1/namespaces/team-b"), ("POST", "/api/v1/namespaces/team-b/events"),
        ("PATCH", "/apis/kubeflow.org/v1/namespaces/team-a/pytorchjobs/resnet"),
        ("DELETE", "/api/v1/namespaces/team-a/pods/resnet-master-0"), ("DELETE", "/api/v1/namespaces/team-a/pods/resnet-worker-0"),
        ("PATCH", "/apis/kubeflow.org/v1/namespaces/team-a/notebooks/lab"),
        ("PATCH", "/apis/apps/v1/namespaces/team-a/deployments/web"), ("PATCH", "/apis/apps/v1/namespaces/team-b/deployments/api"),
        ("PATCH", "/apis/apps/v1/namespaces/team-b/statefulsets/postgres"), ("PATCH", "/api/v1/nodes/gpu01")]


def test_wind_down_writes_what_the_api_expects(server):
    run(server, "wind-down", "--grace-seconds", "120")
    job = server.obj("/apis/kubeflow.org/v1/namespaces/team-a/pytorchjobs/resnet")
    assert job["spec"]["runPolicy"] == {"cleanPodPolicy": "None", "suspend": True}
    assert job["metadata"]["annotations"] == {"gpulab.io/wind-down-suspended": "true"}
    notebook = server.obj("/apis/kubeflow.org/v1/namespaces/team-a/notebooks/lab")["metadata"]["annotations"]
    assert notebook["gpulab.io/wind-down-stopped"] == "true"
    assert len(notebook["kubeflow-resource-stopped"]) == 20 and notebook["kubeflow-resource-stopped"].endswith("Z")
    web = server.obj("/apis/apps/v1/namespaces/team-a/deployments/web")
    assert web["spec"]["replicas"] == 0 and web["metadata"]["annotations"]["gpulab.io/wind-down-replicas"] == "2"
    node = server.obj("/api/v1/nodes/gpu01")
    assert node["spec"]["unschedulable"] is True and node["metadata"]["annotations"]["gpulab.io/wind-down-cordoned"] == "true"
    assert "gpulab.io/wind-down" in server.obj("/api/v1/namespaces/team-a")["metadata"]["annotations"]
    for method, path, _query, headers, body in server.requests:
        assert headers["Authorization"] == "Bearer not-a-secret"
        if method == "PATCH":
            assert headers["Content-Type"] == "application/merge-patch+json"
            assert body["metadata"]["resourceVersion"]  # optimistic concurrency on every patch
        if method == "DELETE":
            assert body == {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 120}
    pods = [(path, query) for method, path, query, _h, _b in server.requests if method == "GET" and path.endswith("/pods")]
    assert pods == [("/api/v1/namespaces/team-a/pods", {"limit": ["500"], "labelSelector": ["training.kubeflow.org/job-name=resnet"]})]
    events = [obj for key, obj in server.objects.items() if key[1] == "events"]
    assert sorted((e["metadata"]["namespace"], e["reason"], e["type"], e["involvedObject"]["kind"], e["involvedObject"]["name"]) for e in events) == [
        ("team-a", "WindDown", "Normal", "Namespace", "team-a"), ("team-b", "WindDown", "Normal", "Namespace", "team-b")]
    assert "120s" in events[0]["message"]
    # the pod left from an earlier job of the same name (another owner uid) is not this job's: not deleted
    assert server.obj("/api/v1/namespaces/team-a/pods/resnet-worker-1") is not None


@pytest.mark.parametrize("path, why", [
    ("/apis/kubeflow.org/v1/namespaces/team-a/pytorchjobs/bert-done", "finished (Succeeded)"),
    ("/apis/kubeflow.org/v1/namespaces/team-b/pytorchjobs/vit-failed", "finished (Failed)"),
    ("/apis/kubeflow.org/v1/namespaces/team-b/pytorchjobs/gpt-paused", "suspended by its owner"),
    ("/api/v1/namespaces/team-a/pods/bert-done-master-0", "pod of a finished job"),
    ("/apis/kubeflow.org/v1/namespaces/team-b/notebooks/sketch", "stopped by its user"),
    ("/apis/apps/v1/namespaces/team-a/deployments/idle", "replicas 0"),
    ("/apis/apps/v1/namespaces/team-a/statefulsets/lab", "owned by Notebook lab"),
    ("/apis/apps/v1/namespaces/team-b/statefulsets/sketch", "owned by Notebook sketch"),
    ("/api/v1/nodes/gpu02", "cordoned by someone else"),
    ("/api/v1/nodes/gpu03", "not a day-use node"),
    ("/api/v1/nodes/cp01", "not a day-use node"),
    ("/api/v1/namespaces/kubeflow", "not a tenant namespace"),
    ("/apis/kubeflow.org/v1/namespaces/kubeflow/pytorchjobs/mnist-smoke", "not a tenant namespace"),
    ("/api/v1/namespaces/kubeflow/pods/mnist-smoke-master-0", "not a tenant namespace"),
    ("/apis/apps/v1/namespaces/kubeflow/deployments/ml-pipeline-ui", "not a tenant namespace"),
])
def test_skip_rules_leave_objects_untouched_both_ways(server, path, why):
    before = copy.deepcopy(server.obj(path))
    assert before is not None, why
    assert run(server, "wind-down")[0] == 0
    assert run(server, "wind-up")[0] == 0
    assert server.obj(path) == before, why
    assert [p for _m, p in server.writes() if p == path or p.startswith(path + "/")] == [], why


def test_wind_up_restores_exactly_what_was_there(server):
    before = server.snapshot()
    assert run(server, "wind-down")[0] == 0
    assert server.snapshot() != before
    code, actions, lines, _clock = run(server, "wind-up")
    assert (code, actions, lines[-2]) == (0, WIND_UP, "wind-up: 8 changes, 0 errors")
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
    assert lines[-2] == "wind-down: 9 changes, 1 errors"
    assert server.obj(path)["spec"]["replicas"] == 2


def test_conflict_decides_again_on_what_it_reads(server):
    """Someone suspends the job between our list and our patch: after the 409 it is left alone, pods too."""
    path = "/apis/kubeflow.org/v1/namespaces/team-a/pytorchjobs/resnet"
    server.concurrent[path] = 1
    server.obj(path)["spec"]["runPolicy"]["suspend"] = True  # what the re-read finds
    listed = server.list
    server.list = lambda prefix, plural, ns, query: (  # the list still shows it running
        listed(prefix, plural, ns, query) if plural != "pytorchjobs" else (200, dict(fixture("pytorchjobs.json"))))
    code, actions, _lines, _clock = run(server, "wind-down")
    assert code == 0
    assert [a for a in actions if "resnet" in a] == []
    assert [(m, p) for m, p, _q, _h, _b in server.requests if p == path] == [("PATCH", path), ("GET", path)]


def test_server_error_on_one_object_is_counted_and_the_rest_proceeds(server):
    path = "/apis/kubeflow.org/v1/namespaces/team-a/notebooks/lab"
    server.fail[("PATCH", path)] = (500, fixture("status-500-internal-error.json"))
    code, actions, lines, _clock = run(server, "wind-down")
    assert code == 1
    assert actions == [a for a in WIND_DOWN if a != "stop Notebook team-a/lab"]
    errors = json.loads(lines[-1])["errors"]
    assert len(errors) == 1 and errors[0].startswith("stop Notebook team-a/lab: 500 InternalError: Internal error occurred: failed calling webhook")
    assert lines[-2] == "wind-down: 9 changes, 1 errors"


def test_list_error_is_an_error_not_a_skip(server):
    server.fail[("GET", "/apis/apps/v1/statefulsets")] = (500, fixture("status-500-internal-error.json"))
    code, actions, lines, _clock = run(server, "wind-down")
    assert code == 1
    assert "scale StatefulSet team-b/postgres 1 -> 0" not in actions and "cordon Node gpu01" in actions
    assert any(line.startswith("error: list StatefulSet: 500 InternalError") for line in lines)


def test_unserved_kubeflow_kinds_are_skipped_not_errors(server):
    server.unserved |= {("/apis/kubeflow.org/v1", "pytorchjobs"), ("/apis/kubeflow.org/v1", "notebooks")}
    before = server.snapshot()
    code, actions, lines, _clock = run(server, "wind-down")
    assert code == 0
    assert actions == [a for a in WIND_DOWN if "PyTorchJob" not in a and "Pod " not in a and "Notebook" not in a]
    assert [line for line in lines if line.startswith("skip ")] == [
        "skip %s: /apis/kubeflow.org/v1/%s is not served here (NotFound)" % kind
        for kind in (("PyTorchJob", "pytorchjobs"), ("TFJob", "tfjobs"), ("MPIJob", "mpijobs"), ("Notebook", "notebooks"))]
    # the notebook's StatefulSet stays the notebook controller's even when Notebook isn't listed
    assert server.obj("/apis/apps/v1/namespaces/team-a/statefulsets/lab")["spec"]["replicas"] == 1
    code, _actions, _lines, _clock = run(server, "wind-up")
    assert code == 0 and server.snapshot() == before


def test_job_kinds_choose_what_is_listed(server):
    run(server, "wind-down", "--job-kinds", "tfjobs", "--dry-run")
    listed = [p for m, p, _q, _h, _b in server.requests if m == "GET" and "kubeflow.org" in p]
    assert listed == ["/apis/kubeflow.org/v1/tfjobs", "/apis/kubeflow.org/v1/notebooks"]


def test_suspend_not_kept_by_the_server_is_an_error_and_pods_stay(server):
    server.drop_suspend = True
    code, actions, lines, _clock = run(server, "wind-down")
    assert code == 1
    assert not [a for a in actions if "Pod " in a]
    assert any("did not keep spec.runPolicy.suspend" in line for line in lines if line.startswith("error: "))
    assert server.obj("/api/v1/namespaces/team-a/pods/resnet-master-0") is not None


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
    deployments = [q for m, p, q, _h, _b in server.requests if m == "GET" and p == "/apis/apps/v1/deployments"]
    assert [q.get("continue") for q in deployments] == [None, ["1"], ["2"], ["3"]]


def test_wait_for_deleted_pods_until_gone(server):
    server.linger["/api/v1/namespaces/team-a/pods/resnet-master-0"] = 3
    code, _actions, lines, clock = run(server, "wind-down")
    assert code == 0
    assert "all 2 deleted pods are gone after 15s" in lines
    assert clock.sleeps == [5, 5, 5]


def test_wait_for_deleted_pods_is_bounded_and_reports_what_is_left(server):
    server.linger["/api/v1/namespaces/team-a/pods/resnet-worker-0"] = None
    code, _actions, lines, clock = run(server, "wind-down", "--grace-seconds", "12")
    assert code == 0  # a slow pod is reported, not a failure of the run
    assert "still present after 42s: Pod team-a/resnet-worker-0" in lines
    assert sum(clock.sleeps) == 42 and max(clock.sleeps) <= 5
    assert json.loads(lines[-1])["notes"][-1] == "still present after 42s: Pod team-a/resnet-worker-0"


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
    ["wind-up", "--day-use-selector", " "], ["wind-down", "--no-such-option"],
])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        gs.main(argv, api=object())
    assert caught.value.code == 2
    assert "usage: gpulab_schedule.py" in capsys.readouterr().err
