# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A stand-in Kubernetes API for the tests of _kubeapply and the kubeflow module: objects by key, failures
scripted per object (recorded Status bodies), a clock that moves only when slept."""
from __future__ import absolute_import, division, print_function

import copy

from ansible_collections.gpulab.cluster.plugins.module_utils import _kubeapply as ka

__metaclass__ = type


class StandIn(object):
    """An API server: objects by key, scripted failures per object, a clock that moves only when slept."""

    def __init__(self, live=(), failures=None, established_after=0, endpoints_after=0, version="v1.33.5",
                 default_classes=("cephfs",), ready_after=0, field_manager="gpulab-kubeflow", namespaces=False):
        self.live = dict((self.key(o), copy.deepcopy(o)) for o in live)
        self.failures = dict((k, list(v)) for k, v in (failures or {}).items())
        self.established_after = established_after
        self.endpoints_after = endpoints_after
        self.git_version = version
        self.default_classes = list(default_classes)
        self.ready_after = ready_after
        self.field_manager = field_manager
        # like an API server: a namespaced object needs its Namespace (as the recorded 404 says)
        self.namespaces = namespaces
        self.now = 1000.0
        self.applied = []
        self.slept = []
        self.services_asked = []

    @staticmethod
    def key(o):
        return ka.ref(o)

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds

    def get(self, o):
        return copy.deepcopy(self.live.get(self.key(o)))

    def apply(self, o, field_manager, force, dry_run):
        assert field_manager == self.field_manager
        queue = self.failures.get(self.key(o))
        if queue:
            raise queue.pop(0)
        namespace = (o.get("metadata") or {}).get("namespace")
        if self.namespaces and namespace and namespace not in ("default", "kube-system") and \
                "Namespace %s" % namespace not in self.live and not dry_run:
            raise ka.ApiError(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                                    "code": 404, "message": 'namespaces "%s" not found' % namespace,
                                    "details": {"name": namespace, "kind": "namespaces"}})
        self.applied.append((self.key(o), dry_run, self.now))
        merged = copy.deepcopy(self.live.get(self.key(o)) or {})
        merged.update(copy.deepcopy(o))
        merged.setdefault("metadata", {})["resourceVersion"] = str(len(self.applied))
        merged["metadata"]["managedFields"] = [{"manager": field_manager}]
        if not dry_run:
            self.live[self.key(o)] = copy.deepcopy(merged)
        return merged

    def crd_established(self, name):
        return self.now >= 1000.0 + self.established_after

    def service_ready(self, namespace, name):
        self.services_asked.append((namespace, name))
        return self.now >= 1000.0 + self.endpoints_after

    def version(self):
        return self.git_version

    def default_storage_classes(self):
        return list(self.default_classes)

    def workload_ready(self, kind, namespace, name):
        return self.now >= 1000.0 + self.ready_after

    def gateway_address(self):
        return "192.168.50.240"
