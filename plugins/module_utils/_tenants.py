# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The tenants of a gpulab.cluster site, as pure functions: their rules and their Kubernetes objects.

A tenant is an entry of the inventory's ``gpulab_tenants``::

    {"name": "vision", "owner": "ana@gpulab.lan", "members": ["ana@gpulab.lan", "ben@gpulab.lan"],
     "quota": {"cpu": "24", "memory": "40Gi", "gpu": 6, "storage": "2Ti", "pods": 60},
     "limits": {"default": {...}, "default_request": {...}, "max": {...}}}      # optional, per container

or ``{"name": "old-team", "state": "absent"}`` (add ``"delete_data": "old-team"`` to allow deleting a namespace that
still holds volumes). ``problems(tenants, site_limits)`` lists what is wrong, one sentence each naming the tenant and
the key; ``objects(tenants, site_limits, kubeflow)`` returns the objects of the present tenants, each namespace first.
"""

from __future__ import absolute_import, division, print_function

import re
from decimal import Decimal, InvalidOperation

__metaclass__ = type

TENANT_LABEL = "gpulab.io/tenant"
JOBS_ACCOUNT = "gpulab-jobs"
# The schedule layer's service account and the ClusterRole of what it may do in a tenant's namespace.
SCHEDULE_ACCOUNT = "gpulab-schedule"
SCHEDULE_ROLE = "gpulab-schedule-tenant"
OBJECT_NAME = "gpulab-tenant"

DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# Namespaces of Kubernetes and of the layers of this collection: never a tenant.
RESERVED = ("default", "kubeflow", "kubeflow-system", "istio-system", "auth", "oauth2-proxy", "cert-manager",
            "knative-serving", "knative-eventing", "rook-ceph", "calico-system", "calico-apiserver", "tigera-operator",
            "nvidia-device-plugin", "gpulab-system", "gpulab-smoke", "gpulab-registry", "monitoring", "metallb-system",
            "cattle-system")
RESERVED_PREFIX = "kube-"

# What each quota key limits (ResourceQuota spec.hard keys). Memory bounds requests and limits: an 8 GB node has
# no room for overcommitted memory.
QUOTA_KEYS = (
    ("cpu", ("requests.cpu",)),
    ("memory", ("requests.memory", "limits.memory")),
    ("gpu", ("requests.nvidia.com/gpu",)),
    ("storage", ("requests.storage",)),
    ("pods", ("pods",)),
)
QUOTA_REQUIRED = ("cpu", "memory", "gpu")
LIMIT_KINDS = (("default_request", "defaultRequest"), ("default", "default"), ("max", "max"))
LIMIT_RESOURCES = ("cpu", "memory")

# A container's share of a worker when no limits are given (docs/operations.md): about 3.7 GiB of an 8 GB worker is
# left for training at night (docs/storage.md "Memory budget"), so the largest container may take 3.5 GiB.
DEFAULT_LIMITS = {
    "default_request": {"cpu": "500m", "memory": "1Gi"},
    "default": {"cpu": "2", "memory": "3Gi"},
    "max": {"cpu": "4", "memory": "3584Mi"},
}

# Who may pass a user's kubeflow-userid header into a tenant namespace: Kubeflow's ingress gateway and its pipelines
# UI, as in the policy Kubeflow's access management writes for a contributor. No other pod may claim to be a user.
GATEWAY_PRINCIPALS = ("cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account",
                      "cluster.local/ns/kubeflow/sa/ml-pipeline-ui")

TENANT_KEYS = ("name", "state", "owner", "members", "quota", "limits", "delete_data")

_QUANTITY = re.compile(r"^([+]?[0-9]+(?:\.[0-9]*)?|[+]?\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$")
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def quantity(value):
    """A Kubernetes resource quantity ("500m", "3Gi", 2, "1e3") as a Decimal, or None if it is not one."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    text = str(value).strip()
    match = _QUANTITY.match(text)
    if not match:
        return None
    try:
        number = Decimal(match.group(1))
    except InvalidOperation:
        return None
    suffix = match.group(2) or ""
    if suffix in _BINARY:
        return number * (Decimal(1024) ** _BINARY[suffix])
    if suffix in _DECIMAL:
        return number.scaleb(_DECIMAL[suffix])
    if suffix:
        return number.scaleb(int(suffix[1:]))
    return number


def _show(value):
    return repr(value) if isinstance(value, str) else str(value)


def _state(tenant):
    return tenant.get("state", "present")


def _members(tenant):
    """The tenant's users, owner first, each once."""
    owner = tenant.get("owner")
    members = list(tenant.get("members") or [])
    if owner is None and members:
        owner = members[0]
    ordered = [owner] if owner is not None else []
    for member in members:
        if member not in ordered:
            ordered.append(member)
    return ordered


def limits_of(tenant, site_limits=None):
    """The tenant's LimitRange values: its own, else the site's, else DEFAULT_LIMITS."""
    return tenant.get("limits") or site_limits or DEFAULT_LIMITS


def _limits_problems(where, limits):
    if not isinstance(limits, dict):
        return ["%s is %s; it must be a mapping with default_request, default and max" % (where, _show(limits))]
    problems = []
    unknown = sorted(set(limits) - set(kind for kind, _key in LIMIT_KINDS))
    if unknown:
        problems.append("%s has unknown key(s) %s; the keys are default_request, default and max"
                        % (where, ", ".join(map(str, unknown))))
    parsed = {}
    for kind, _key in LIMIT_KINDS:
        values = limits.get(kind)
        if not isinstance(values, dict) or sorted(values) != sorted(LIMIT_RESOURCES):
            problems.append("%s.%s is %s; it must give cpu and memory (e.g. {cpu: 500m, memory: 1Gi})"
                            % (where, kind, _show(values)))
            continue
        for resource in LIMIT_RESOURCES:
            amount = quantity(values[resource])
            if amount is None or amount <= 0:
                problems.append("%s.%s.%s %s is not a positive Kubernetes quantity (e.g. 500m, 2, 1Gi)"
                                % (where, kind, resource, _show(values[resource])))
            else:
                parsed[(kind, resource)] = amount
    for resource in LIMIT_RESOURCES:
        chain = [(kind, parsed.get((kind, resource))) for kind, _key in LIMIT_KINDS]
        for (low_kind, low), (high_kind, high) in zip(chain, chain[1:]):
            if low is not None and high is not None and low > high:
                problems.append("%s.%s.%s %s is above %s.%s.%s %s; a container's request must fit its limit and the "
                                "maximum" % (where, low_kind, resource, _show(limits[low_kind][resource]), where,
                                             high_kind, resource, _show(limits[high_kind][resource])))
    return problems


def _quota_problems(where, quota, limits):
    if not isinstance(quota, dict):
        return ["%s is %s; give the tenant's quota as a mapping with cpu, memory and gpu (storage and pods optional)"
                % (where, _show(quota))]
    problems = []
    known = [key for key, _hard in QUOTA_KEYS]
    unknown = sorted(str(key) for key in quota if key not in known)
    if unknown:
        problems.append("%s has unknown key(s) %s; the keys are %s" % (where, ", ".join(unknown), ", ".join(known)))
    for key in QUOTA_REQUIRED:
        if key not in quota:
            problems.append("%s has no %s; every tenant needs a quota for cpu, memory and gpu (0 for none)"
                            % (where, key))
    for key in known:
        if key not in quota:
            continue
        amount = quantity(quota[key])
        whole = key in ("gpu", "pods")
        if amount is None or amount < 0 or (whole and amount != amount.to_integral_value()):
            problems.append("%s.%s %s is not a %s" % (where, key, _show(quota[key]),
                                                      "whole number" if whole else "Kubernetes quantity (e.g. 24, 40Gi)"))
            continue
        if key in LIMIT_RESOURCES and isinstance(limits, dict):
            largest = quantity((limits.get("max") or {}).get(key))
            if largest is not None and amount < largest:
                problems.append("%s.%s %s is below the LimitRange's max.%s %s: the largest container the tenant may "
                                "run would not fit; raise the quota or lower the limit"
                                % (where, key, _show(quota[key]), key, _show(limits["max"][key])))
    return problems


def problems(tenants, site_limits=None):
    """Every problem of a gpulab_tenants list (and of the site's default limits), one sentence each."""
    found = []
    if site_limits:  # empty: the collection's defaults
        found.extend(_limits_problems("gpulab_tenant_limits", site_limits))
    if tenants is None:
        return found
    if not isinstance(tenants, (list, tuple)):
        return found + ["gpulab_tenants is %s; it must be a list of tenants ({name, owner, members, quota})"
                        % _show(tenants)]
    seen = set()
    for position, tenant in enumerate(tenants, start=1):
        if not isinstance(tenant, dict) or not isinstance(tenant.get("name"), str):
            found.append("gpulab_tenants item %d is %s; each tenant is a mapping with at least a name"
                         % (position, _show(tenant)))
            continue
        name = tenant["name"]
        where = "gpulab_tenants %s" % name
        if not DNS_LABEL.match(name):
            found.append("%s: the name is not a valid namespace name (lowercase letters, digits and '-', at most "
                         "63, starting and ending with a letter or digit)" % where)
        elif name in RESERVED or name.startswith(RESERVED_PREFIX):
            found.append("%s: the name is a namespace of Kubernetes or of the cluster's layers; choose another"
                         % where)
        if name in seen:
            found.append("%s is listed twice; list each tenant once" % where)
        seen.add(name)
        unknown = sorted(str(key) for key in tenant if key not in TENANT_KEYS)
        if unknown:
            found.append("%s has unknown key(s) %s; the keys are %s" % (where, ", ".join(unknown),
                                                                        ", ".join(TENANT_KEYS)))
        state = _state(tenant)
        if state not in ("present", "absent"):
            found.append("%s: state %s is neither present nor absent" % (where, _show(state)))
            continue
        if state == "absent":
            if "delete_data" in tenant and tenant["delete_data"] != name:
                found.append("%s: delete_data is %s; to allow deleting the tenant's volumes it must repeat the "
                             "tenant's name (%s)" % (where, _show(tenant["delete_data"]), name))
            continue
        if "delete_data" in tenant:
            found.append("%s: delete_data applies only to a tenant with state: absent" % where)
        members = tenant.get("members") or []
        if not isinstance(members, (list, tuple)) or not all(isinstance(m, str) and m.strip() for m in members):
            found.append("%s: members is %s; it must be a list of user names (the e-mails users log in with)"
                         % (where, _show(members)))
        elif "owner" in tenant and not (isinstance(tenant["owner"], str) and tenant["owner"].strip()):
            found.append("%s: owner is %s; it must be a user name" % (where, _show(tenant["owner"])))
        elif not _members(tenant):
            found.append("%s has neither owner nor members; give at least its owner" % where)
        else:
            names = {}
            for user in _members(tenant)[1:]:
                other = names.setdefault(binding_name(user, True), user)
                if other != user:
                    found.append("%s: members %s and %s would share the RoleBinding %s; Kubeflow names a member's "
                                 "binding after the e-mail with every run of other characters as '-'"
                                 % (where, other, user, binding_name(user, True)))
        if "limits" in tenant:
            found.extend(_limits_problems("%s.limits" % where, tenant["limits"]))
        found.extend(_quota_problems("%s.quota" % where, tenant.get("quota"), limits_of(tenant, site_limits)))
    return found


def binding_name(user, kubeflow=False):
    """The RoleBinding (and with Kubeflow the AuthorizationPolicy) of a member. With Kubeflow, named the way Kubeflow's
    access management names a contributor's (runs of other characters become one '-'), so its dashboard lists and
    removes them; without, a name of this collection's (another roleRef: a roleRef cannot change in place)."""
    safe = re.sub(r"[^a-z0-9]+", "-", user.lower()).strip("-")
    return ("user-%s-clusterrole-edit" if kubeflow else "gpulab-member-%s") % safe


def _meta(name, namespace=None, labels=None, annotations=None):
    meta = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = dict({"app.kubernetes.io/managed-by": "gpulab.cluster"}, **(labels or {}))
    if annotations:
        meta["annotations"] = annotations
    return meta


def _user(name):
    return {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name}


def _binding(name, namespace, role, subjects, annotations=None):
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": _meta(name, namespace, annotations=annotations),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": subjects}


def _text(value):
    return value if isinstance(value, str) else str(value)


def tenant_objects(tenant, site_limits=None, kubeflow=False, schedule_namespace=None):
    """The objects of one present tenant: Namespace first, then quota, limits, accounts, bindings, Profile. With
    ``schedule_namespace``, the schedule layer's service account there may wind the tenant's workloads down and up
    (a RoleBinding in the tenant's namespace only: it has no such rights elsewhere)."""
    name = tenant["name"]
    users = _members(tenant)
    owner = users[0]
    limits = limits_of(tenant, site_limits)
    hard = {}
    for key, keys in QUOTA_KEYS:
        if key in tenant["quota"]:
            for hard_key in keys:
                hard[hard_key] = _text(tenant["quota"][key])
    # Kubeflow's profile controller takes over an existing namespace only when its owner annotation names the
    # Profile's owner; a namespace made here carries no owner reference, so deleting the Profile keeps the data.
    found = [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": _meta(name, labels={TENANT_LABEL: name}, annotations={"owner": owner})},
        {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": _meta(OBJECT_NAME, name), "spec": {"hard": hard}},
        {"apiVersion": "v1", "kind": "LimitRange", "metadata": _meta(OBJECT_NAME, name),
         "spec": {"limits": [dict([("type", "Container")] + [
             (key, dict((resource, _text(limits[kind][resource])) for resource in LIMIT_RESOURCES))
             for kind, key in LIMIT_KINDS])]}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(JOBS_ACCOUNT, name)},
        _binding(JOBS_ACCOUNT, name, "edit", [{"kind": "ServiceAccount", "name": JOBS_ACCOUNT, "namespace": name}]),
    ]
    if schedule_namespace:
        found.append(_binding(SCHEDULE_ACCOUNT, name, SCHEDULE_ROLE, [{"kind": "ServiceAccount", "name": SCHEDULE_ACCOUNT,
                                                                      "namespace": schedule_namespace}]))
    if not kubeflow:
        # With Kubeflow its profile controller binds the owner (namespaceAdmin, kubeflow-admin).
        found.append(_binding("gpulab-owner", name, "admin", [_user(owner)]))
    for user in users[1:]:
        found.append(_binding(binding_name(user, kubeflow), name, "kubeflow-edit" if kubeflow else "edit", [_user(user)],
                              annotations={"role": "edit", "user": user}))
        if kubeflow:
            # What Kubeflow's dashboard adds for a contributor: Istio lets the user's requests into the namespace.
            found.append({"apiVersion": "security.istio.io/v1beta1", "kind": "AuthorizationPolicy",
                          "metadata": _meta(binding_name(user, kubeflow), name,
                                            annotations={"role": "edit", "user": user}),
                          "spec": {"rules": [{"from": [{"source": {"principals": list(GATEWAY_PRINCIPALS)}}],
                                              "when": [{"key": "request.headers[kubeflow-userid]",
                                                        "values": [user]}]}]}})
    if kubeflow:
        found.append({"apiVersion": "kubeflow.org/v1", "kind": "Profile", "metadata": _meta(name),
                      "spec": {"owner": {"kind": "User", "name": owner}}})
    return found


def objects(tenants, site_limits=None, kubeflow=False, schedule_namespace=None):
    """The objects of every present tenant, in list order; raises ValueError with every problem first."""
    found = problems(tenants, site_limits)
    if found:
        raise ValueError("; ".join(found))
    result = []
    for tenant in tenants or []:
        if _state(tenant) == "present":
            result.extend(tenant_objects(tenant, site_limits, kubeflow, schedule_namespace))
    return result


def summary(tenants, site_limits=None, kubeflow=False, schedule_namespace=None):
    """What the role needs besides the objects: the present and absent tenants' names, the present users, and the
    namespace/name of every RoleBinding and AuthorizationPolicy rendered (what pruning keeps)."""
    tenants = [t for t in tenants or [] if isinstance(t, dict)]
    present = [t for t in tenants if _state(t) == "present"]
    users = []
    for tenant in present:
        users.extend(user for user in _members(tenant) if user not in users)
    keep = {"RoleBinding": [], "AuthorizationPolicy": []}
    # raises on a list with problems: an empty keep-list would let pruning delete every binding
    for obj in objects(tenants, site_limits, kubeflow, schedule_namespace):
        if obj["kind"] in keep:
            keep[obj["kind"]].append("%s/%s" % (obj["metadata"]["namespace"], obj["metadata"]["name"]))
    return {"present": [t["name"] for t in present], "users": users,
            "absent": [{"name": t["name"], "delete_data": t.get("delete_data") == t["name"]}
                       for t in tenants if _state(t) == "absent"],
            "bindings": keep["RoleBinding"], "policies": keep["AuthorizationPolicy"]}
