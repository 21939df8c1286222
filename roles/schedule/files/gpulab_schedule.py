# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wind the gpulab cluster down in the morning and up again in the evening.

Run in the cluster from a CronJob, with only the Python standard library:
``python3 gpulab_schedule.py {wind-down,wind-up} [--dry-run] ...``.

wind-down, in tenant namespaces only (namespaces labelled ``gpulab.io/tenant``):
announce it (namespace annotation and Event), suspend running Kubeflow training jobs
(``spec.runPolicy.suspend``) and delete their pods with a grace period to checkpoint,
stop running notebooks (``kubeflow-resource-stopped``), scale Deployments and
StatefulSets to 0, cordon the day-use nodes, then wait for the deleted pods to go.
Every change carries a ``gpulab.io/wind-down-*`` marker that says what was done, and
wind-up undoes exactly what the markers record, in the reverse order. Objects that
were already in the target state (a job suspended by its owner, a notebook its user
stopped, a node an admin cordoned) get no marker and are left alone both ways.

One line per action on stdout, a summary line and a JSON line. Exit status: 0 without
errors, 1 with errors (an API error on one object does not stop the others), 2 for
bad arguments.
"""
from __future__ import absolute_import, division, print_function

import argparse
import datetime
import functools
import json
import os
import re
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

__metaclass__ = type

ANNOUNCED = "gpulab.io/wind-down"
SUSPENDED = "gpulab.io/wind-down-suspended"
STOPPED = "gpulab.io/wind-down-stopped"
REPLICAS = "gpulab.io/wind-down-replicas"
CORDONED = "gpulab.io/wind-down-cordoned"
NOTEBOOK_STOP = "kubeflow-resource-stopped"
JOB_NAME_LABEL = "training.kubeflow.org/job-name"

KUBEFLOW = "/apis/kubeflow.org/v1"
APPS = "/apis/apps/v1"
CORE = "/api/v1"
# kubeflow.org/v1 kinds of the Training Operator whose RunPolicy has ``suspend`` (1.7 and later)
JOB_KINDS = {"pytorchjobs": "PyTorchJob", "tfjobs": "TFJob", "mpijobs": "MPIJob", "xgboostjobs": "XGBoostJob", "paddlejobs": "PaddleJob"}
WORKLOADS = (("Deployment", "deployments"), ("StatefulSet", "statefulsets"))
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
POLL_SECONDS = 5
WAIT_MARGIN = 30


class ApiError(Exception):
    """An API request that failed: the HTTP code (0: no answer) and the Status body's reason and message."""

    def __init__(self, code, status_body):
        self.code = code
        self.status = status_body if isinstance(status_body, dict) else {}
        self.reason = self.status.get("reason", "")
        self.message = self.status.get("message") or str(status_body or "")
        prefix = " ".join(str(part) for part in (code, self.reason) if part)  # code 0: no answer, just the message
        super(ApiError, self).__init__("%s: %s" % (prefix, self.message) if prefix else self.message)


class Api(object):
    """The few calls this program makes, on the Kubernetes REST API, with JSON bodies."""

    def __init__(self, base_url, token=None, ca_file=None, timeout=30):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.ca_file = ca_file
        self.timeout = timeout
        self._context = None

    @classmethod
    def in_cluster(cls, environ=None, sa_dir=SA_DIR):
        """The API server and credentials a pod gets: service environment variables and the service account files."""
        environ = os.environ if environ is None else environ
        host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT")
        if not host or not port:
            raise ApiError(0, "not in a cluster: KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set")
        with open(os.path.join(sa_dir, "token"), encoding="utf-8") as handle:
            token = handle.read().strip()
        return cls("https://%s:%s" % ("[%s]" % host if ":" in host else host, port), token, os.path.join(sa_dir, "ca.crt"))

    def request(self, method, path, body=None, query=None, content_type="application/json"):
        url = self.base_url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        if url.startswith("https:") and self._context is None:
            self._context = ssl.create_default_context(cafile=self.ca_file)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=self._context) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            raw = err.read()
            try:
                status = json.loads(raw.decode("utf-8"))
            except ValueError:
                status = raw.decode("utf-8", "replace").strip() or err.reason
            raise ApiError(err.code, status)
        except (urllib.error.URLError, OSError) as err:
            raise ApiError(0, "%s %s: %s" % (method, path, getattr(err, "reason", err)))
        try:
            return json.loads(raw.decode("utf-8")) if raw else {}
        except ValueError as err:
            raise ApiError(0, "%s %s: the answer is not JSON: %s" % (method, path, err))

    def get(self, path):
        return self.request("GET", path)

    def list(self, path, label_selector=None, limit=500):
        """All items of a collection, page by page (``limit``, then ``continue`` from the list's metadata)."""
        items, query = [], {"limit": str(limit)}
        if label_selector:
            query["labelSelector"] = label_selector
        while True:
            page = self.request("GET", path, query=query)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items
            query = dict(query, **{"continue": token})

    def patch(self, path, patch):
        """A JSON merge patch (RFC 7386): null removes a key."""
        return self.request("PATCH", path, patch, content_type="application/merge-patch+json")

    def delete(self, path, grace_seconds):
        return self.request("DELETE", path, {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": grace_seconds})

    def post(self, path, body):
        return self.request("POST", path, body)


class Abort(Exception):
    """The run cannot go on (past --timeout): the remaining steps are not done."""


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(obj):
    return obj.get("metadata") or {}


def annotations(obj):
    return meta(obj).get("annotations") or {}


def ident(obj):
    return "%s/%s" % (meta(obj)["namespace"], meta(obj)["name"]) if meta(obj).get("namespace") else meta(obj)["name"]


def obj_path(prefix, plural, obj):
    ns = meta(obj).get("namespace")
    return "%s%s/%s/%s" % (prefix, "/namespaces/" + ns if ns else "", plural, meta(obj)["name"])


def job_finished(job):
    return any(c.get("type") in ("Succeeded", "Failed") and c.get("status") == "True" for c in (job.get("status") or {}).get("conditions") or [])


def job_suspended(job):
    return ((job.get("spec") or {}).get("runPolicy") or {}).get("suspend") is True


def owned_by_notebook(obj):
    return any(ref.get("kind") == "Notebook" and str(ref.get("apiVersion", "")).startswith("kubeflow.org/") for ref in meta(obj).get("ownerReferences") or [])


def replicas_of(obj):
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else value  # the API server defaults a missing count to 1


def recorded_replicas(obj):
    """The count wind-down recorded, or None when it is not a non-negative integer."""
    value = annotations(obj).get(REPLICAS, "")
    return int(value) if re.match(r"^[0-9]+$", value) else None


class Runner(object):
    """One wind-down or wind-up run: what it changed, what failed, what it skipped."""

    def __init__(self, api, args, out=None, clock=time.monotonic, sleep=time.sleep):
        self.api, self.args, self.out = api, args, out or sys.stdout
        self.clock, self.sleep = clock, sleep
        self.deadline = clock() + args.timeout
        self.changes, self.errors, self.notes = [], [], []
        self.deleted_pods = []
        self.tenants = {}

    # -- reporting ---------------------------------------------------------------------------------
    def say(self, line):
        print(line, file=self.out)
        self.out.flush()

    def done(self, action):
        self.changes.append(action)
        self.say(("would " if self.args.dry_run else "") + action)

    def error(self, action, err):
        text = "%s: %s" % (action, err)
        self.errors.append(text)
        self.say("error: " + text)

    def note(self, text):
        self.notes.append(text)
        self.say(text)

    def check_time(self):
        if self.clock() > self.deadline:
            raise Abort("run stopped after --timeout %ss; the remaining steps were not done" % self.args.timeout)

    # -- building blocks ---------------------------------------------------------------------------
    def collect(self, kind, prefix, plural, label_selector=None, tenants_only=True):
        """The objects of a kind, all namespaces (in tenant namespaces only unless told); None if it can't be listed."""
        self.check_time()
        try:
            items = self.api.list("%s/%s" % (prefix, plural), label_selector)
        except ApiError as err:
            if err.code == 404:
                self.note("skip %s: %s/%s is not served here (%s)" % (kind, prefix, plural, err.reason or 404))
            else:
                self.error("list %s" % kind, err)
            return None
        return [item for item in items if not tenants_only or meta(item).get("namespace") in self.tenants]

    def change(self, path, obj, decide):
        """Apply the patch ``decide(obj)`` plans, as a merge patch with the object's resourceVersion as precondition.

        ``decide`` returns (action, patch) or None (nothing to do). On 409 Conflict the object is read again,
        decided again and patched once more. Returns the patched object, or None (no change, dry run, or error).
        """
        self.check_time()
        plan = decide(obj)
        if plan is None:
            return None
        action, patch = plan
        if self.args.dry_run:
            self.done(action)
            return None
        for attempt in (1, 2):
            patch.setdefault("metadata", {})["resourceVersion"] = meta(obj).get("resourceVersion")
            try:
                result = self.api.patch(path, patch)
            except ApiError as err:
                if err.code != 409 or attempt == 2:
                    self.error(action, err)
                    return None
                try:
                    obj = self.api.get(path)
                except ApiError as err2:
                    self.error(action, err2)
                    return None
                plan = decide(obj)
                if plan is None:
                    return None
                action, patch = plan
                continue
            self.done(action)
            return result
        return None

    def event(self, ns, reason, message):
        """A core/v1 Event on the tenant's Namespace, in that namespace (so ``kubectl get events -n`` shows it)."""
        now = utc_now()
        self.api.post("%s/namespaces/%s/events" % (CORE, ns["metadata"]["name"]), {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": "gpulab-%s-" % reason.lower(), "namespace": ns["metadata"]["name"]},
            "involvedObject": {"apiVersion": "v1", "kind": "Namespace", "name": ns["metadata"]["name"],
                               "namespace": ns["metadata"]["name"], "uid": ns["metadata"].get("uid")},
            "reason": reason, "type": "Normal", "message": message, "count": 1,
            "firstTimestamp": now, "lastTimestamp": now, "source": {"component": "gpulab-schedule"}})

    def load_tenants(self):
        """The tenant namespaces, by name; False when they cannot be listed (an error, and nothing else is done)."""
        items = self.collect("Namespace", CORE, "namespaces", self.args.tenant_label, tenants_only=False)
        self.tenants = dict((meta(ns)["name"], ns) for ns in items or [])
        return items is not None

    # -- wind-down ---------------------------------------------------------------------------------
    def announce(self):
        grace = self.args.grace_seconds
        message = ("Wind-down: the cluster goes back to day use. Running training jobs are suspended and their pods get %ds "
                   "to checkpoint; notebooks are stopped; Deployments and StatefulSets are scaled to 0. "
                   "Wind-up restores them." % grace)

        def decide(ns):
            if ANNOUNCED in annotations(ns):
                return None
            return "announce Namespace %s (grace %ds)" % (meta(ns)["name"], grace), {"metadata": {"annotations": {ANNOUNCED: utc_now()}}}

        for name in sorted(self.tenants):
            ns = self.tenants[name]
            if self.change("%s/namespaces/%s" % (CORE, name), ns, decide) is not None:
                try:
                    self.event(ns, "WindDown", message)
                except ApiError as err:
                    self.error("post WindDown Event in %s" % name, err)

    @staticmethod
    def plan_suspend(kind, job):
        if job_suspended(job) or job_finished(job):
            return None
        return "suspend %s %s" % (kind, ident(job)), {"metadata": {"annotations": {SUSPENDED: "true"}}, "spec": {"runPolicy": {"suspend": True}}}

    def suspend_jobs(self):
        for plural in self.args.job_kinds:
            kind = JOB_KINDS[plural]
            for job in self.collect(kind, KUBEFLOW, plural) or []:
                running = self.plan_suspend(kind, job) is not None
                result = self.change(obj_path(KUBEFLOW, plural, job), job, functools.partial(self.plan_suspend, kind))
                if result is not None and not job_suspended(result):
                    self.error("suspend %s %s" % (kind, ident(job)), "the server did not keep spec.runPolicy.suspend "
                               "(Training Operator older than 1.7?); its pods are left alone")
                elif result is not None or (self.args.dry_run and running):
                    self.delete_pods(job)

    def delete_pods(self, job):
        """Delete the job's pods (its controller's, by label and owner uid) with the grace period, so they get SIGTERM."""
        ns, name, uid = meta(job)["namespace"], meta(job)["name"], meta(job).get("uid")
        try:
            pods = self.api.list("%s/namespaces/%s/pods" % (CORE, ns), "%s=%s" % (JOB_NAME_LABEL, name))
        except ApiError as err:
            self.error("list Pods of %s/%s" % (ns, name), err)
            return
        for pod in pods:
            owners = meta(pod).get("ownerReferences") or []
            if uid and owners and not any(ref.get("uid") == uid for ref in owners):
                continue
            action = "delete Pod %s (grace %ds)" % (ident(pod), self.args.grace_seconds)
            self.check_time()
            if self.args.dry_run:
                self.done(action)
                continue
            try:
                self.api.delete(obj_path(CORE, "pods", pod), self.args.grace_seconds)
            except ApiError as err:
                if err.code != 404:
                    self.error(action, err)
                    continue
            self.done(action)
            self.deleted_pods.append(pod)

    def stop_notebooks(self):
        def decide(nb):
            if NOTEBOOK_STOP in annotations(nb):
                return None
            return "stop Notebook %s" % ident(nb), {"metadata": {"annotations": {NOTEBOOK_STOP: utc_now(), STOPPED: "true"}}}

        for nb in self.collect("Notebook", KUBEFLOW, "notebooks") or []:
            self.change(obj_path(KUBEFLOW, "notebooks", nb), nb, decide)

    @staticmethod
    def plan_scale_down(kind, obj):
        count = replicas_of(obj)
        if owned_by_notebook(obj) or count == 0:
            return None
        return "scale %s %s %s -> 0" % (kind, ident(obj), count), {"metadata": {"annotations": {REPLICAS: str(count)}}, "spec": {"replicas": 0}}

    def scale_down(self):
        for kind, plural in WORKLOADS:
            for obj in self.collect(kind, APPS, plural) or []:
                self.change(obj_path(APPS, plural, obj), obj, functools.partial(self.plan_scale_down, kind))

    def cordon(self):
        def decide(node):
            if (node.get("spec") or {}).get("unschedulable"):
                return None
            return "cordon Node %s" % ident(node), {"metadata": {"annotations": {CORDONED: "true"}}, "spec": {"unschedulable": True}}

        for node in self.collect("Node", CORE, "nodes", self.args.day_use_selector, tenants_only=False) or []:
            self.change(obj_path(CORE, "nodes", node), node, decide)

    def wait_for_pods(self):
        """Wait until the deleted pods are gone (or replaced: another uid), at most grace + 30 s and within --timeout."""
        if not self.deleted_pods:
            return
        start = self.clock()
        end = min(start + self.args.grace_seconds + WAIT_MARGIN, self.deadline)
        left = list(self.deleted_pods)
        while True:
            still = []
            for pod in left:
                try:
                    current = self.api.get(obj_path(CORE, "pods", pod))
                except ApiError as err:
                    if err.code == 404:
                        continue
                    current = pod  # can't tell: count it as still there
                if meta(current).get("uid") == meta(pod).get("uid"):
                    still.append(pod)
            left = still
            now = self.clock()
            if not left or now >= end:
                break
            self.sleep(min(POLL_SECONDS, end - now))
        waited = int(round(self.clock() - start))
        if left:
            self.note("still present after %ds: %s" % (waited, ", ".join("Pod " + ident(pod) for pod in left)))
        else:
            self.note("all %d deleted pods are gone after %ds" % (len(self.deleted_pods), waited))

    # -- wind-up -----------------------------------------------------------------------------------
    def uncordon(self):
        def decide(node):
            if CORDONED not in annotations(node):
                return None
            return "uncordon Node %s" % ident(node), {"metadata": {"annotations": {CORDONED: None}}, "spec": {"unschedulable": None}}

        for node in self.collect("Node", CORE, "nodes", tenants_only=False) or []:
            self.change(obj_path(CORE, "nodes", node), node, decide)

    def plan_scale_up(self, kind, obj):
        if REPLICAS not in annotations(obj):
            return None
        count = recorded_replicas(obj)
        if count is None:
            self.error("scale %s %s" % (kind, ident(obj)), "recorded %s %r is not a non-negative integer; left alone"
                       % (REPLICAS, annotations(obj)[REPLICAS]))
            return None
        return ("scale %s %s %s -> %d" % (kind, ident(obj), replicas_of(obj), count),
                {"metadata": {"annotations": {REPLICAS: None}}, "spec": {"replicas": count}})

    def scale_up(self):
        for kind, plural in WORKLOADS:
            for obj in self.collect(kind, APPS, plural) or []:
                self.change(obj_path(APPS, plural, obj), obj, functools.partial(self.plan_scale_up, kind))

    def start_notebooks(self):
        def decide(nb):
            if STOPPED not in annotations(nb):
                return None
            return "start Notebook %s" % ident(nb), {"metadata": {"annotations": {NOTEBOOK_STOP: None, STOPPED: None}}}

        for nb in self.collect("Notebook", KUBEFLOW, "notebooks") or []:
            self.change(obj_path(KUBEFLOW, "notebooks", nb), nb, decide)

    @staticmethod
    def plan_resume(kind, job):
        if SUSPENDED not in annotations(job):
            return None
        return "resume %s %s" % (kind, ident(job)), {"metadata": {"annotations": {SUSPENDED: None}}, "spec": {"runPolicy": {"suspend": False}}}

    def resume_jobs(self):
        for plural in reversed(self.args.job_kinds):
            kind = JOB_KINDS[plural]
            for job in self.collect(kind, KUBEFLOW, plural) or []:
                self.change(obj_path(KUBEFLOW, plural, job), job, functools.partial(self.plan_resume, kind))

    def end_announcement(self):
        def decide(ns):
            if ANNOUNCED not in annotations(ns):
                return None
            return "end wind-down Namespace %s" % meta(ns)["name"], {"metadata": {"annotations": {ANNOUNCED: None}}}

        for name in sorted(self.tenants):
            ns = self.tenants[name]
            if self.change("%s/namespaces/%s" % (CORE, name), ns, decide) is not None:
                try:
                    self.event(ns, "WindUp", "Wind-up: training jobs resume, notebooks start, Deployments and StatefulSets are scaled back.")
                except ApiError as err:
                    self.error("post WindUp Event in %s" % name, err)

    # -- the run -----------------------------------------------------------------------------------
    def run(self):
        steps = {"wind-down": (self.announce, self.suspend_jobs, self.stop_notebooks, self.scale_down, self.cordon, self.wait_for_pods),
                 "wind-up": (self.uncordon, self.scale_up, self.start_notebooks, self.resume_jobs, self.end_announcement)}
        try:
            if self.load_tenants():
                for step in steps[self.args.mode]:
                    step()
        except Abort as err:
            self.errors.append(str(err))
            self.say("error: %s" % err)
        self.say("%s%s: %d changes, %d errors" % (self.args.mode, " (dry run)" if self.args.dry_run else "", len(self.changes), len(self.errors)))
        self.say(json.dumps({"mode": self.args.mode, "dry_run": self.args.dry_run, "changes": self.changes,
                             "errors": self.errors, "notes": self.notes}, sort_keys=True))
        return 1 if self.errors else 0


def parse_args(argv):
    def non_negative(text):
        value = int(text)
        if value < 0:
            raise ValueError(text)
        return value

    def positive(text):
        value = int(text)
        if value <= 0:
            raise ValueError(text)
        return value

    def job_kinds(text):
        kinds = [kind.strip() for kind in text.split(",") if kind.strip()]
        unknown = [kind for kind in kinds if kind not in JOB_KINDS]
        if unknown:
            raise argparse.ArgumentTypeError("unknown job kind(s) %s; known: %s" % (", ".join(unknown), ", ".join(sorted(JOB_KINDS))))
        return kinds

    def label(text):
        if not re.match(r"^[A-Za-z0-9./_-]+$", text):
            raise argparse.ArgumentTypeError("not a label key: %r" % text)
        return text

    def selector(text):
        if not text.strip():
            raise argparse.ArgumentTypeError("empty label selector")
        return text

    non_negative.__name__, positive.__name__ = "non-negative integer", "positive integer"
    parser = argparse.ArgumentParser(prog="gpulab_schedule.py", description="Wind the gpulab cluster down (morning) or up (evening).")
    parser.add_argument("mode", choices=("wind-down", "wind-up"))
    parser.add_argument("--dry-run", action="store_true", help="change nothing; print what would be done")
    parser.add_argument("--grace-seconds", type=non_negative, default=300, help="time the training pods get to checkpoint (default 300)")
    parser.add_argument("--tenant-label", type=label, default="gpulab.io/tenant", help="label key of tenant namespaces")
    parser.add_argument("--day-use-selector", type=selector, default="gpulab.io/day-use=true", help="label selector of day-use nodes")
    parser.add_argument("--job-kinds", type=job_kinds, default=["pytorchjobs", "tfjobs", "mpijobs"], help="kubeflow.org/v1 job kinds (plural, comma-separated)")
    parser.add_argument("--timeout", type=positive, default=900, help="seconds for the whole run (default 900)")
    return parser.parse_args(argv)


def main(argv=None, api=None, out=None, clock=time.monotonic, sleep=time.sleep):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    out = out or sys.stdout
    if api is None:
        try:
            api = Api.in_cluster()
        except (ApiError, OSError) as err:
            print("error: no API access: %s" % err, file=out)
            return 1
    return Runner(api, args, out, clock, sleep).run()


if __name__ == "__main__":
    sys.exit(main())
