# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wind the gpulab cluster down in the morning and up again in the evening.

What wind-down does NOT touch (those keep running, and keep their GPUs, by day):

- bare Pods (no controller to suspend or scale them), Argo and Kubeflow Pipelines workflow pods among them;
- objects another controller owns (an ownerReference with ``controller: true``): a CronJob's Jobs, a Katib Trial's
  training jobs, Knative's Deployments, a Notebook's StatefulSet. It says ``skip <Kind> <ns>/<name>: owned by ...``;
- InferenceServices (KServe), and the Deployments and Knative services they own;
- StatefulSets whose ``persistentVolumeClaimRetentionPolicy.whenScaled`` is ``Delete`` (scaling them to 0 would
  delete their volumes): an error, so that someone sets it to ``Retain``;
- anything outside the tenant namespaces (namespaces labelled ``gpulab.io/tenant``).

Run in the cluster from a CronJob, with only the Python standard library:
``python3 gpulab_schedule.py {wind-down,wind-up} [--dry-run] ...``.

wind-down, in tenant namespaces only: announce it (namespace annotation and Event); stop each running training job
(Kubeflow Training Operator kinds, ``spec.runPolicy.suspend``, and batch/v1 Jobs, ``spec.suspend``) in the one order
that cannot make it fail for good (see ``suspend_first``): a Training Operator job whose controller restarts every pod
that is killed has its pods deleted with a grace period to checkpoint and is then suspended; any other job (a replica
with restartPolicy Never, and every batch/v1 Job) is suspended first and its controller deletes the pods with their
own terminationGracePeriodSeconds, with a ``warn`` line when that is shorter than the grace period; stop running
notebooks (``kubeflow-resource-stopped``); scale Deployments and StatefulSets to 0; taint the day-use nodes
(``gpulab.io/day-use=wind-down:NoSchedule``); then wait for the jobs' pods to go. Every change carries a
``gpulab.io/wind-down-*`` marker that says what was done, and wind-up undoes exactly what the markers record, in the
reverse order. Objects that were already in the target state (a job suspended by its owner, a notebook its user
stopped, a node that already has a day-use taint) get no marker and are left alone both ways.

Namespaced kinds are listed namespace by namespace, so the program needs namespaced permissions in the tenant
namespaces only; cluster-wide it reads and patches Namespaces and Nodes.

One line per action on stdout, a summary line and a JSON line. Exit status: 0 without errors, 1 with errors (an API
error on one object does not stop the others), 2 for bad arguments.
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
TAINTED = "gpulab.io/wind-down-tainted"
TAINT_VALUE = "wind-down"
TAINT_EFFECT = "NoSchedule"
NOTEBOOK_STOP = "kubeflow-resource-stopped"
JOB_NAME_LABEL = "training.kubeflow.org/job-name"
# The Job controller labels a Job's pods with both batch.kubernetes.io/job-name and the older job-name since
# Kubernetes 1.27; gpulab's clusters are newer (1.31 and later), so the prefixed label alone finds them.
BATCH_JOB_NAME_LABEL = "batch.kubernetes.io/job-name"

KUBEFLOW = "/apis/kubeflow.org/v1"
APPS = "/apis/apps/v1"
BATCH = "/apis/batch/v1"
CORE = "/api/v1"
# kubeflow.org/v1 kinds of the Training Operator whose RunPolicy has ``suspend`` (1.7 and later)
JOB_KINDS = {"pytorchjobs": "PyTorchJob", "tfjobs": "TFJob", "mpijobs": "MPIJob", "xgboostjobs": "XGBoostJob", "paddlejobs": "PaddleJob"}
# What the Training Operator v1 does with a running job's pod that is killed (deleted: SIGTERM, then SIGKILL after the
# grace period) while the job is not suspended, read in kubeflow/training-operator (pkg/apis/kubeflow.org/v1 and
# pkg/controller.v1): per kind, the field of its replica specs, the restartPolicy its defaulting gives a replica that
# sets none, and the replica restartPolicies under which its controller restarts such a pod instead of failing the job.
# - Defaults: SetDefaults_<Kind> calls setDefaultRestartPolicy (defaulting_utils.go: only when the field is empty)
#   with PytorchJobDefaultRestartPolicy = OnFailure (pytorch_types.go), PaddleJobDefaultRestartPolicy = OnFailure,
#   TFJobDefaultRestartPolicy = Never, MPIJobDefaultRestartPolicy = Never, XGBoostJobDefaultRestartPolicy = Never: so
#   "absent means Never" holds for TFJob, MPIJob and XGBoostJob, not for PyTorchJob and PaddleJob.
# - Restarts: common/pod.go ReconcilePods deletes (to recreate) a Failed pod when the replica's restartPolicy is
#   OnFailure or Always, or ExitCode with train_util.IsRetryableExitCode(exitCode), which is ``exitCode >= 128``
#   (SIGTERM: 143, SIGKILL: 137), and marks the job Restarting. Whether the job fails anyway is each kind's
#   UpdateJobStatus: PyTorchJob and PaddleJob fail it only for restartPolicy Never; TFJob keeps it Restarting;
#   MPIJob and XGBoostJob fail it for any failed replica unless its restartPolicy is ExitCode.
# - common/job.go ReconcileJobs also fails a job on a new failed pod when runPolicy.backoffLimit is set and
#   NumRequeues + 1 exceeds it; the controllers' work queue is util.FakeWorkQueue (NumRequeues 0): a backoffLimit of 0
#   fails the job on the first pod killed, whatever its restartPolicy.
# What ExitCode relies on (and the others too, for pods deleted first): the exit code the operator reads is that of the
# job's default container. Killed by SIGTERM or SIGKILL it is 143 or 137; a script that catches SIGTERM and then exits
# with 1..127 fails an ExitCode replica, and one that exits 0 counts as succeeded (a PyTorchJob's Master then ends the
# job) - should the pod end before the suspension, which follows the deletes at once, or should the suspension fail.
# A batch/v1 Job is always suspended first: the Job controller then removes its tracking finalizer from each active
# pod and deletes it (job_controller.go manageJob -> deleteJobPods), so the pod is not counted as failed.
TRAINING = {
    "PyTorchJob": ("pytorchReplicaSpecs", "OnFailure", ("OnFailure", "Always", "ExitCode")),
    "PaddleJob": ("paddleReplicaSpecs", "OnFailure", ("OnFailure", "Always", "ExitCode")),
    "TFJob": ("tfReplicaSpecs", "Never", ("OnFailure", "Always", "ExitCode")),
    "MPIJob": ("mpiReplicaSpecs", "Never", ("ExitCode",)),
    "XGBoostJob": ("xgbReplicaSpecs", "Never", ("ExitCode",)),
}
# a pod's terminationGracePeriodSeconds when its template sets none (the API server's default)
DEFAULT_POD_GRACE = 30
# condition types that end a job: the Training Operator's, and batch/v1's (with the interim ones of Kubernetes 1.31+)
TRAINING_FINISHED = ("Succeeded", "Failed")
BATCH_FINISHED = ("Complete", "Failed", "SuccessCriteriaMet", "FailureTarget")
WORKLOADS = (("Deployment", "deployments"), ("StatefulSet", "statefulsets"))
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
POLL_SECONDS = 5
WAIT_MARGIN = 30
# A job's controller writes its status while the pods deleted just before terminate: the suspend patch may meet
# that many conflicts (it reads the job again and decides again after each).
SUSPEND_ATTEMPTS = 3


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

    def patch(self, path, patch, content_type="application/merge-patch+json"):
        """A JSON merge patch (RFC 7386, null removes a key) unless told another patch type."""
        return self.request("PATCH", path, patch, content_type=content_type)

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


def controller_of(obj):
    """The ownerReference of the controller that manages the object (``controller: true``), or None."""
    return next((ref for ref in meta(obj).get("ownerReferences") or [] if ref.get("controller") is True), None)


def job_finished(kind, job):
    kinds = BATCH_FINISHED if kind == "Job" else TRAINING_FINISHED
    return any(c.get("type") in kinds and c.get("status") == "True" for c in (job.get("status") or {}).get("conditions") or [])


def finished_as(kind, job):
    """The type of the condition that ended the job ("Failed", "Succeeded", ...), or None."""
    kinds = BATCH_FINISHED if kind == "Job" else TRAINING_FINISHED
    return next((c["type"] for c in (job.get("status") or {}).get("conditions") or [] if c.get("type") in kinds and c.get("status") == "True"), None)


def suspend_field(kind):
    return "spec.suspend" if kind == "Job" else "spec.runPolicy.suspend"


def suspend_spec(kind, value):
    """The spec part of a merge patch that sets the job's suspend field: batch/v1 ``spec.suspend``, else ``spec.runPolicy.suspend``."""
    return {"suspend": value} if kind == "Job" else {"runPolicy": {"suspend": value}}


def job_suspended(kind, job):
    spec = job.get("spec") or {}
    return (spec if kind == "Job" else spec.get("runPolicy") or {}).get("suspend") is True


def suspend_first(kind, job):
    """None when the job's pods can be deleted before the job is suspended: every replica's restartPolicy (or the
    kind's default) makes the Training Operator restart a killed pod (see TRAINING), and no runPolicy.backoffLimit of
    0 fails the job on it. Otherwise the job must be suspended first, and the list says what the job would have to
    change for its pods to be deleted first (empty for a batch/v1 Job, which is always suspended first)."""
    if kind == "Job":
        return []
    field, default, restarting = TRAINING[kind]
    spec = job.get("spec") or {}
    replicas = spec.get(field) or {}
    needs = []
    if not replicas or any(((replica or {}).get("restartPolicy") or default) not in restarting for replica in replicas.values()):
        needs.append("restartPolicy %s" % restarting[0])  # no replica specs, or a policy unknown: not known safe
    backoff_limit = (spec.get("runPolicy") or {}).get("backoffLimit")
    if isinstance(backoff_limit, int) and backoff_limit < 1:
        needs.append("a runPolicy.backoffLimit above 0")
    return needs or None


def own_grace(kind, job):
    """The shortest terminationGracePeriodSeconds of the job's pod templates (30 where one sets none): what its pods
    get when the job's controller deletes them."""
    spec = job.get("spec") or {}
    if kind == "Job":
        templates = [spec.get("template") or {}]
    else:
        templates = [(replica or {}).get("template") or {} for replica in (spec.get(TRAINING[kind][0]) or {}).values()]
    values = [(template.get("spec") or {}).get("terminationGracePeriodSeconds") for template in templates]
    return min([value if isinstance(value, int) else DEFAULT_POD_GRACE for value in values] or [DEFAULT_POD_GRACE])


def pod_finished(pod):
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def replicas_of(obj):
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else value  # the API server defaults a missing count to 1


def recorded_replicas(obj):
    """The count wind-down recorded, or None when it is not a non-negative integer."""
    value = annotations(obj).get(REPLICAS, "")
    return int(value) if re.match(r"^[0-9]+$", value) else None


def deletes_volumes(kind, obj):
    """A StatefulSet whose PVCs Kubernetes deletes when it is scaled down (whenScaled: Delete, GA in 1.32)."""
    policy = (obj.get("spec") or {}).get("persistentVolumeClaimRetentionPolicy") or {}
    return kind == "StatefulSet" and policy.get("whenScaled") == "Delete"


def taints_of(node):
    return list((node.get("spec") or {}).get("taints") or [])


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
    def list_cluster(self, kind, plural, label_selector=None):
        """The objects of a cluster-scoped core kind (Namespace, Node); None (an error) if they can't be listed."""
        self.check_time()
        try:
            return self.api.list("%s/%s" % (CORE, plural), label_selector)
        except ApiError as err:
            self.error("list %s" % kind, err)
            return None

    def list_in_tenants(self, kind, prefix, plural):
        """The objects of a namespaced kind in the tenant namespaces, listed namespace by namespace (never cluster-wide).

        A 404 means the kind is not served (its CRD is not installed): said once, and None. Another error is counted
        for that namespace and the other namespaces are still listed.
        """
        items = []
        for ns in sorted(self.tenants):
            self.check_time()
            try:
                items.extend(self.api.list("%s/namespaces/%s/%s" % (prefix, ns, plural)))
            except ApiError as err:
                if err.code == 404:
                    self.note("skip %s: %s/%s is not served here (%s)" % (kind, prefix, plural, err.reason or 404))
                    return None
                self.error("list %s in %s" % (kind, ns), err)
        return items

    def owned_elsewhere(self, kind, obj):
        """True, and says so, when another controller owns the object: wind-down leaves it to that controller."""
        ref = controller_of(obj)
        if ref is None:
            return False
        self.note("skip %s %s: owned by %s %s" % (kind, ident(obj), ref.get("kind"), ref.get("name")))
        return True

    def change(self, path, obj, decide, attempts=2, check=True):
        """Apply the patch ``decide(obj)`` plans, as a merge patch with the object's resourceVersion as precondition.

        ``decide`` returns (action, patch) or None (nothing to do). On 409 Conflict the object is read again,
        decided again and patched again, ``attempts`` times in all. Returns the patched object, or None (no change,
        dry run, or error).
        """
        if check:
            self.check_time()
        plan = decide(obj)
        if plan is None:
            return None
        action, patch = plan
        if self.args.dry_run:
            self.done(action)
            return None
        for attempt in range(1, attempts + 1):
            patch.setdefault("metadata", {})["resourceVersion"] = meta(obj).get("resourceVersion")
            try:
                result = self.api.patch(path, patch)
            except ApiError as err:
                if err.code != 409 or attempt == attempts:
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
        items = self.list_cluster("Namespace", "namespaces", self.args.tenant_label)
        self.tenants = dict((meta(ns)["name"], ns) for ns in items or [])
        return items is not None

    def job_kinds(self):
        """(kind, prefix, plural) of the training jobs: the chosen Training Operator kinds, then batch/v1 Jobs."""
        return [(JOB_KINDS[plural], KUBEFLOW, plural) for plural in self.args.job_kinds] + [("Job", BATCH, "jobs")]

    # -- wind-down ---------------------------------------------------------------------------------
    def announce(self):
        grace = self.args.grace_seconds
        message = ("Wind-down: the cluster goes back to day use. Running training jobs are suspended and their pods get %ds "
                   "to checkpoint (their own terminationGracePeriodSeconds where a job would fail if its pods went first: "
                   "see the wind-down log); notebooks are stopped; Deployments and StatefulSets are scaled to 0. "
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
        if job_suspended(kind, job) or job_finished(kind, job) or controller_of(job) is not None:
            return None
        return "suspend %s %s" % (kind, ident(job)), {"metadata": {"annotations": {SUSPENDED: "true"}}, "spec": suspend_spec(kind, True)}

    def suspend_jobs(self):
        for kind, prefix, plural in self.job_kinds():
            for job in self.list_in_tenants(kind, prefix, plural) or []:
                if job_suspended(kind, job) or job_finished(kind, job) or self.owned_elsewhere(kind, job):
                    continue
                self.suspend_job(kind, prefix, plural, job)

    def suspend_job(self, kind, prefix, plural, job):
        """Stop a running job in the order that cannot make its controller fail it for good (``suspend_first``).

        Its pods can be deleted first: they are, with the grace period (SIGTERM, then that long to checkpoint), THEN
        the job is suspended. In this order because the API server only ever shortens a pending grace period:
        suspended first, the job's controller would delete the pods itself with their own
        terminationGracePeriodSeconds, and a later delete could not lengthen that. A pod killed before the suspension
        gets there is restarted, not counted against the job. When the pods can't be listed such a job is left
        running.

        Otherwise (a replica with restartPolicy Never, a backoffLimit of 0, a batch/v1 Job) a pod killed while the job
        is not suspended could fail it for good, so the job is suspended first and its controller deletes the pods
        with their own terminationGracePeriodSeconds: a ``warn`` line says so when that is shorter than the grace
        period. Its pods are listed first only to be waited for: a job whose pods can't be listed is suspended anyway.
        """
        self.check_time()
        needs = suspend_first(kind, job)
        pods = self.pods_of(kind, job)
        if needs is None:
            if pods is None:
                return
            self.delete_pods(pods)
        read = [job]

        def decide(obj):
            read[0] = obj
            return self.plan_suspend(kind, obj)

        # no --timeout check between the pods' deletion and the suspension: the two go together
        done = len(self.changes)
        result = self.change(obj_path(prefix, plural, job), job, decide, attempts=SUSPEND_ATTEMPTS, check=False)
        action = "suspend %s %s" % (kind, ident(job))
        if result is not None and not job_suspended(kind, result):
            self.error(action, "the server did not keep %s%s; the job runs on%s"
                       % (suspend_field(kind), "" if kind == "Job" else " (Training Operator older than 1.7?)",
                          " and its controller recreates the deleted pods" if needs is None else ""))
        elif needs is None:
            if result is None and read[0] is not job and job_finished(kind, read[0]):
                # its controller counted the terminating pods as failed before the suspension got there
                self.error(action, "it became %s while its pods were being deleted; not suspended" % finished_as(kind, read[0]))
        elif len(self.changes) > done:  # suspended (or, in a dry run, would be): its controller deletes the pods
            if result is not None:
                self.deleted_pods.extend(pods or [])
            grace = own_grace(kind, read[0])
            if grace < self.args.grace_seconds:
                self.note("warn %s %s: its pods get %ds to checkpoint, not %ds; set terminationGracePeriodSeconds: %d in its pod template%s"
                          % (kind, ident(job), grace, self.args.grace_seconds, self.args.grace_seconds,
                             " (or %s)" % " and ".join(needs) if needs else ""))

    def pods_of(self, kind, job):
        """The job's pods that still run (by label and owner uid): None (an error) when they can't be listed."""
        ns, name, uid = meta(job)["namespace"], meta(job)["name"], meta(job).get("uid")
        label = BATCH_JOB_NAME_LABEL if kind == "Job" else JOB_NAME_LABEL
        try:
            pods = self.api.list("%s/namespaces/%s/pods" % (CORE, ns), "%s=%s" % (label, name))
        except ApiError as err:
            self.error("list Pods of %s %s" % (kind, ident(job)), err)
            return None
        running = []
        for pod in pods:
            owners = meta(pod).get("ownerReferences") or []
            if uid and owners and not any(ref.get("uid") == uid for ref in owners):
                continue  # a pod of an earlier job of the same name
            if pod_finished(pod) or meta(pod).get("deletionTimestamp"):
                continue  # nothing left to stop, or already terminating (a delete could only shorten its grace)
            running.append(pod)
        return running

    def delete_pods(self, pods):
        """Delete the pods with the grace period, so that they get SIGTERM and that long to checkpoint."""
        for pod in pods:
            action = "delete Pod %s (grace %ds)" % (ident(pod), self.args.grace_seconds)
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

        for nb in self.list_in_tenants("Notebook", KUBEFLOW, "notebooks") or []:
            self.change(obj_path(KUBEFLOW, "notebooks", nb), nb, decide)

    @staticmethod
    def plan_scale_down(kind, obj):
        count = replicas_of(obj)
        if count == 0 or controller_of(obj) is not None or deletes_volumes(kind, obj):
            return None
        return "scale %s %s %s -> 0" % (kind, ident(obj), count), {"metadata": {"annotations": {REPLICAS: str(count)}}, "spec": {"replicas": 0}}

    def scale_down(self):
        for kind, plural in WORKLOADS:
            for obj in self.list_in_tenants(kind, APPS, plural) or []:
                if replicas_of(obj) == 0 or self.owned_elsewhere(kind, obj):
                    continue
                if deletes_volumes(kind, obj):
                    self.error("scale %s %s" % (kind, ident(obj)), "whenScaled: Delete would delete its volumes; set it to Retain")
                    continue
                self.change(obj_path(APPS, plural, obj), obj, functools.partial(self.plan_scale_down, kind))

    def day_use_taint(self):
        return {"key": self.args.day_use_taint, "value": TAINT_VALUE, "effect": TAINT_EFFECT}

    def plan_taint(self, node):
        taints = taints_of(node)
        if any(taint.get("key") == self.args.day_use_taint for taint in taints):
            return None  # ours from an earlier run, or someone else's: theirs to remove
        # a merge patch replaces the whole list: the node's taints as read (resourceVersion precondition) plus ours
        return "taint Node %s" % ident(node), {"metadata": {"annotations": {TAINTED: "true"}}, "spec": {"taints": taints + [self.day_use_taint()]}}

    def taint(self):
        """Taint the day-use nodes NoSchedule: new tenant pods stay off them; a cordon would also keep off the Ceph
        daemons that restart there by day, which tolerate the taint."""
        for node in self.list_cluster("Node", "nodes", self.args.day_use_selector) or []:
            self.change(obj_path(CORE, "nodes", node), node, self.plan_taint)

    def wait_for_pods(self):
        """Wait until the jobs' pods are gone (or replaced: another uid), those wind-down deleted and those of the jobs it
        suspended first, which their controllers delete: at most grace + 30 s and within --timeout."""
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
    def plan_untaint(self, node):
        if TAINTED not in annotations(node):
            return None
        ours = (self.args.day_use_taint, TAINT_EFFECT)
        kept = [taint for taint in taints_of(node) if (taint.get("key"), taint.get("effect")) != ours]
        return "untaint Node %s" % ident(node), {"metadata": {"annotations": {TAINTED: None}}, "spec": {"taints": kept or None}}

    def untaint(self):
        for node in self.list_cluster("Node", "nodes") or []:
            self.change(obj_path(CORE, "nodes", node), node, self.plan_untaint)

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
            for obj in self.list_in_tenants(kind, APPS, plural) or []:
                self.change(obj_path(APPS, plural, obj), obj, functools.partial(self.plan_scale_up, kind))

    def start_notebooks(self):
        def decide(nb):
            if STOPPED not in annotations(nb):
                return None
            return "start Notebook %s" % ident(nb), {"metadata": {"annotations": {NOTEBOOK_STOP: None, STOPPED: None}}}

        for nb in self.list_in_tenants("Notebook", KUBEFLOW, "notebooks") or []:
            self.change(obj_path(KUBEFLOW, "notebooks", nb), nb, decide)

    @staticmethod
    def plan_resume(kind, job):
        if SUSPENDED not in annotations(job):
            return None
        return "resume %s %s" % (kind, ident(job)), {"metadata": {"annotations": {SUSPENDED: None}}, "spec": suspend_spec(kind, False)}

    def resume_jobs(self):
        for kind, prefix, plural in reversed(self.job_kinds()):
            for job in self.list_in_tenants(kind, prefix, plural) or []:
                self.change(obj_path(prefix, plural, job), job, functools.partial(self.plan_resume, kind))

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
        steps = {"wind-down": (self.announce, self.suspend_jobs, self.stop_notebooks, self.scale_down, self.taint, self.wait_for_pods),
                 "wind-up": (self.untaint, self.scale_up, self.start_notebooks, self.resume_jobs, self.end_announcement)}
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
    parser.add_argument("--day-use-taint", type=label, default="gpulab.io/day-use", help="key of the NoSchedule taint on day-use nodes by day")
    parser.add_argument("--job-kinds", type=job_kinds, default=["pytorchjobs", "tfjobs", "mpijobs"],
                        help="kubeflow.org/v1 job kinds (plural, comma-separated); batch/v1 Jobs are always handled")
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
