# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Applying a large set of Kubernetes objects in an order that works, with bounded retries (gpulab.cluster.kubeflow).

Kubeflow's own install loops ``kustomize build | kubectl apply`` until it stops failing. This applies once, in the
order the API server needs, and retries only what is known to pass with time:

1. CustomResourceDefinitions, each waited for until Established (a custom resource sent before is refused with 404);
2. Namespaces;
3. everything else;
4. admission webhook configurations, each only once the Service it calls has a ready endpoint (a webhook registered
   before its server answers makes every matching request fail with a 500 "failed calling webhook").

A ``Client`` (the module's adapter over the ``kubernetes`` library, or a test's stand-in) does the I/O; the
``Applier`` decides. Errors come in as ``ApiError`` with the HTTP code and the API server's Status body.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json

CRD = ("apiextensions.k8s.io", "CustomResourceDefinition")
NAMESPACE = ("", "Namespace")
WEBHOOK_KINDS = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
WORKLOAD_KINDS = ("Deployment", "StatefulSet")

# Phases of the apply, in order.
PHASE_CRDS, PHASE_NAMESPACES, PHASE_OBJECTS, PHASE_WEBHOOKS = range(4)
PHASE_NAMES = ("CustomResourceDefinitions", "Namespaces", "objects", "admission webhooks")

# What a retry may wait for, and what the API server says then (recorded bodies: tests/unit/plugins/fixtures/kubeflow).
TRANSIENT_KIND = "kind not served yet"
TRANSIENT_WEBHOOK = "webhook not reachable yet"
TRANSIENT_SERVER = "API server busy"
WEBHOOK_DOWN_MARKERS = ("connection refused", "no endpoints available for service", "context deadline exceeded",
                        "i/o timeout", "connection reset by peer", "x509: certificate signed by unknown authority")
MAX_DELAY = 60
# Fields the API server owns or moves on its own: never a sign that the applied fields changed.
VOLATILE_METADATA = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid", "selfLink")


class ApiError(Exception):
    """An error the API server answered (``code``, the Status body as a dict) or a client-side one (code None)."""

    def __init__(self, code, body=None, message=None):
        self.code = code
        self.body = body if isinstance(body, dict) else {}
        self.reason = self.body.get("reason")
        text = message or self.body.get("message") or (body if isinstance(body, str) else "") or "no message"
        super(ApiError, self).__init__(text)
        self.message = text

    @classmethod
    def from_body(cls, code, text):
        """From the raw body the client got (JSON Status, or anything else)."""
        try:
            body = json.loads(text) if text else {}
        except ValueError:
            return cls(code, message=(text or "").strip() or None)
        return cls(code, body if isinstance(body, dict) else {})

    def causes(self):
        return (self.body.get("details") or {}).get("causes") or []


class KindNotServed(ApiError):
    """The client found no API resource for the object's apiVersion and kind (kubectl: "no matches for kind")."""

    def __init__(self, api_version, kind):
        super(KindNotServed, self).__init__(None, message='no matches for kind "%s" in version "%s"' % (kind, api_version))


class ConnectionLost(ApiError):
    """The API server did not answer (restarting, a load balancer failing over)."""

    def __init__(self, reason):
        super(ConnectionLost, self).__init__(None, message="the API server did not answer: %s" % reason)


class ApplyFailed(Exception):
    """The apply stopped; the message names the object and the last error."""


def rolled_out(live):
    """Whether a live Deployment or StatefulSet has rolled out its current spec, as ``kubectl rollout status`` judges:
    the controller has seen this generation, every replica runs the current template, none of the old ones is left,
    and the updated ones are available (ready, for a StatefulSet). An old ReplicaSet that is still Available while
    the new pods crash is not rolled out."""
    spec, status = live.get("spec") or {}, live.get("status") or {}
    wanted = spec.get("replicas", 1)
    wanted = 1 if wanted is None else wanted
    generation = (live.get("metadata") or {}).get("generation")
    if generation is not None and status.get("observedGeneration", 0) < generation:
        return False
    updated = status.get("updatedReplicas", 0)
    if live.get("kind") == "StatefulSet":
        if status.get("updateRevision") and status.get("currentRevision") != status.get("updateRevision"):
            return False
        return status.get("readyReplicas", 0) >= wanted and updated >= wanted
    return updated >= wanted and status.get("replicas", updated) <= updated and \
        status.get("availableReplicas", 0) >= updated


def group_of(obj):
    api_version = obj.get("apiVersion") or ""
    return api_version.split("/")[0] if "/" in api_version else ""


def ref(obj):
    """``Kind namespace/name`` (or ``Kind name``) of an object, as messages and results show it."""
    meta = obj.get("metadata") or {}
    where = "%s/%s" % (meta["namespace"], meta.get("name")) if meta.get("namespace") else meta.get("name")
    return "%s %s" % (obj.get("kind"), where)


def phase(obj):
    kind = obj.get("kind")
    if (group_of(obj), kind) == CRD:
        return PHASE_CRDS
    if (group_of(obj), kind) == NAMESPACE:
        return PHASE_NAMESPACES
    if group_of(obj) == "admissionregistration.k8s.io" and kind in WEBHOOK_KINDS:
        return PHASE_WEBHOOKS
    return PHASE_OBJECTS


def check_object(obj, where):
    """Refuse what cannot be applied, naming the document: (kind, apiVersion, metadata.name are required)."""
    if not isinstance(obj, dict):
        raise ApplyFailed("%s is not a Kubernetes object (a YAML mapping)" % where)
    missing = [key for key in ("apiVersion", "kind") if not obj.get(key)]
    if not (obj.get("metadata") or {}).get("name"):
        missing.append("metadata.name")
    if missing:
        raise ApplyFailed("%s has no %s" % (where, ", ".join(missing)))


def order(objects):
    """The objects in apply order (stable within a phase: the build's own order)."""
    return sorted(objects, key=phase)


def classify(error, obj):
    """TRANSIENT_* for an error that passes with time, None for one that will not."""
    if isinstance(error, KindNotServed):
        return TRANSIENT_KIND
    if error.code == 404 and group_of(obj) and "could not find the requested resource" in error.message:
        return TRANSIENT_KIND
    if error.code == 500 and "failed calling webhook" in error.message and any(
            marker in error.message for marker in WEBHOOK_DOWN_MARKERS):
        return TRANSIENT_WEBHOOK
    if error.code in (429, 503) or (error.code == 500 and error.reason == "ServerTimeout"):
        return TRANSIENT_SERVER
    if error.code is None and isinstance(error, ConnectionLost):
        return TRANSIENT_SERVER
    return None


def _namespace_missing(error):
    return error.code == 404 and error.message.startswith('namespaces "') and error.message.endswith('" not found')


def describe(error):
    """One line for a failure: the server's message, and for apply conflicts the fields and their managers."""
    text = error.message
    if error.code == 409 and any(c.get("reason") == "FieldManagerConflict" for c in error.causes()):
        fields = ["%s (%s)" % (c.get("field"), c.get("message")) for c in error.causes()]
        text += "; fields owned by another manager: %s. Set force_conflicts=true to take them over" % ", ".join(
            fields)
    if error.code:
        text = "HTTP %d %s: %s" % (error.code, error.reason or "", text)
    return text


def comparable(obj):
    """The object without what the server moves by itself, to tell a real change from a no-op apply."""
    if obj is None:
        return None
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out.get("metadata") or {}
    for key in VOLATILE_METADATA:
        meta.pop(key, None)
    return out


class Applier(object):
    """Applies objects through ``client`` with the order, waits and retry bounds of the module's options.

    ``client`` provides: ``get(obj)`` (the live object or None), ``apply(obj, field_manager, force, dry_run)`` (the
    object the server returns), ``crd_established(name)``, ``service_ready(namespace, name)`` and ``clock()`` /
    ``sleep(seconds)``. Every wait and retry goes through the last two, so tests run without time passing.
    """

    def __init__(self, client, field_manager, force_conflicts=False, dry_run=False, retries=5, retry_delay=5,
                 apply_timeout=1800, crd_timeout=120, webhook_timeout=300, poll=2):
        self.client = client
        self.field_manager = field_manager
        self.force = force_conflicts
        self.dry_run = dry_run
        self.retries = retries
        self.retry_delay = retry_delay
        self.crd_timeout = crd_timeout
        self.webhook_timeout = webhook_timeout
        self.poll = poll
        self.deadline = client.clock() + apply_timeout
        self.apply_timeout = apply_timeout
        self.results = []
        self.retried = []

    def run(self, objects):
        """Apply every object; return the results (kind, namespace, name, action) in apply order."""
        for obj in order(objects):
            if phase(obj) == PHASE_WEBHOOKS and not self.dry_run:
                self._wait_for_webhook_services(obj)
            self.results.append(self._apply_one(obj))
            if phase(obj) == PHASE_CRDS and not self.dry_run:
                self._wait_for(lambda: self.client.crd_established(obj["metadata"]["name"]), self.crd_timeout,
                               "%s to be Established" % ref(obj))
        return self.results

    def _result(self, obj, action):
        meta = obj.get("metadata") or {}
        return dict(kind=obj.get("kind"), api_version=obj.get("apiVersion"), namespace=meta.get("namespace"),
                    name=meta.get("name"), action=action)

    def _apply_one(self, obj):
        attempts = 0
        delay = self.retry_delay
        while True:
            attempts += 1
            try:
                before = self.client.get(obj)
                after = self.client.apply(obj, self.field_manager, self.force, self.dry_run)
            except ApiError as error:
                kind = classify(error, obj)
                if self.dry_run and (kind == TRANSIENT_KIND or _namespace_missing(error)):
                    # check mode: its CRD or its namespace comes with this same apply, which a dry run does not make
                    return self._result(obj, "created")
                if kind is None:
                    raise ApplyFailed("%s: %s" % (ref(obj), describe(error)))
                if attempts >= self.retries:
                    raise ApplyFailed("%s: still failing after %d attempts (%s): %s" % (
                        ref(obj), attempts, kind, describe(error)))
                if self.client.clock() + delay > self.deadline:
                    raise ApplyFailed("%s: apply_timeout (%ds) reached after %d attempts (%s): %s" % (
                        ref(obj), self.apply_timeout, attempts, kind, describe(error)))
                self._note_retry(obj, attempts, kind, error)
                self.client.sleep(delay)
                delay = min(delay * 2, MAX_DELAY)
                continue
            if before is None:
                return self._result(obj, "created")
            return self._result(obj, "changed" if comparable(before) != comparable(after) else "unchanged")

    def _note_retry(self, obj, attempts, kind, error):
        entry = dict(object=ref(obj), attempts=attempts + 1, reason=kind, error=error.message)
        if self.retried and self.retried[-1]["object"] == entry["object"]:
            self.retried[-1] = entry
        else:
            self.retried.append(entry)

    def _wait_for(self, ready, timeout, what):
        # its own bound: apply_timeout bounds the apply and its retries, not the waits between them
        limit = self.client.clock() + timeout
        while True:
            if ready():
                return
            if self.client.clock() + self.poll > limit:
                raise ApplyFailed("timed out after %ds waiting for %s" % (timeout, what))
            self.client.sleep(self.poll)

    def _wait_for_webhook_services(self, obj):
        for hook in obj.get("webhooks") or ():
            service = ((hook.get("clientConfig") or {}).get("service")) or None
            if not service:
                continue
            self._wait_for(lambda: self.client.service_ready(service.get("namespace"), service.get("name")),
                           self.webhook_timeout, "a ready endpoint of Service %s/%s, which %s calls" % (
                               service.get("namespace"), service.get("name"), ref(obj)))


def counts(results):
    out = dict(total=len(results), created=0, changed=0, unchanged=0)
    for result in results:
        out[result["action"]] += 1
    return out
