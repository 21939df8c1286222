# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tenants' rules and objects (module_utils/_tenants.py) and their place in the inventory rules."""
from __future__ import absolute_import, division, print_function

import copy
from decimal import Decimal

import pytest

from ansible_collections.gpulab.cluster.plugins.module_utils import _tenants as t
from ansible_collections.gpulab.cluster.plugins.module_utils._inventory_rules import validate

__metaclass__ = type

VISION = {"name": "vision", "owner": "ana@gpulab.lan", "members": ["ana@gpulab.lan", "ben@gpulab.lan"],
          "quota": {"cpu": "24", "memory": "40Gi", "gpu": 6, "storage": "2Ti", "pods": 60}}


def tenant(**changes):
    result = copy.deepcopy(VISION)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


@pytest.mark.parametrize("text, expected", [
    ("500m", Decimal("0.5")), ("2", Decimal(2)), (2, Decimal(2)), ("1Gi", Decimal(2 ** 30)),
    ("3584Mi", Decimal(3584 * 2 ** 20)), ("1G", Decimal(10 ** 9)), ("1e3", Decimal(1000)), ("0.5Ki", Decimal(512)),
    ("100n", Decimal("1E-7")),
])
def test_quantities_as_kubernetes_reads_them(text, expected):
    assert t.quantity(text) == expected


@pytest.mark.parametrize("text", ["", "1GB", "-1", "1.2.3", "Gi", True, None, [1], "1 Gi"])
def test_not_quantities(text):
    assert t.quantity(text) is None


def test_a_valid_tenant_has_no_problem():
    assert t.problems([VISION, {"name": "old", "state": "absent", "delete_data": "old"}]) == []


@pytest.mark.parametrize("changes, problem", [
    ({"name": "Vision"}, "gpulab_tenants Vision: the name is not a valid namespace name"),
    ({"name": "a" * 64}, "the name is not a valid namespace name"),
    ({"name": "kube-tenant"}, "gpulab_tenants kube-tenant: the name is a namespace of Kubernetes"),
    ({"name": "rook-ceph"}, "the name is a namespace of Kubernetes or of the cluster's layers"),
    ({"state": "gone"}, "gpulab_tenants vision: state 'gone' is neither present nor absent"),
    ({"quota": None}, "gpulab_tenants vision.quota is None; give the tenant's quota as a mapping"),
    ({"quota": {"cpu": "24", "memory": "40Gi"}}, "gpulab_tenants vision.quota has no gpu; every tenant needs"),
    ({"quota": {"cpu": "24", "memory": "40Gi", "gpu": 1.5}}, "gpulab_tenants vision.quota.gpu 1.5 is not a whole"),
    ({"quota": {"cpu": "lots", "memory": "40Gi", "gpu": 1}}, "vision.quota.cpu 'lots' is not a Kubernetes quantity"),
    ({"quota": {"cpu": "24", "memory": "40Gi", "gpu": 1, "gpus": 2}}, "vision.quota has unknown key(s) gpus"),
    ({"quota": {"cpu": "3", "memory": "40Gi", "gpu": 1}},
     "gpulab_tenants vision.quota.cpu '3' is below the LimitRange's max.cpu '4'"),
    ({"quota": {"cpu": "24", "memory": "3Gi", "gpu": 1}},
     "gpulab_tenants vision.quota.memory '3Gi' is below the LimitRange's max.memory '3584Mi'"),
    ({"limits": {"default_request": {"cpu": "1", "memory": "4Gi"}, "default": {"cpu": "2", "memory": "3Gi"},
                 "max": {"cpu": "4", "memory": "6Gi"}}},
     "vision.limits.default_request.memory '4Gi' is above gpulab_tenants vision.limits.default.memory '3Gi'"),
    ({"limits": {"default": {"cpu": "2", "memory": "3Gi"}}},
     "gpulab_tenants vision.limits.default_request is None; it must give cpu and memory"),
    ({"members": "ana@gpulab.lan"}, "gpulab_tenants vision: members is 'ana@gpulab.lan'; it must be a list"),
    ({"owner": None, "members": None}, "gpulab_tenants vision has neither owner nor members"),
    ({"delete_data": "vision"}, "gpulab_tenants vision: delete_data applies only to a tenant with state: absent"),
    ({"quotas": {}}, "gpulab_tenants vision has unknown key(s) quotas"),
])
def test_each_problem_names_the_tenant_and_key(changes, problem):
    found = t.problems([tenant(**changes)])
    assert any(problem in line for line in found), found


def test_absent_tenant_permission_must_repeat_its_name():
    found = t.problems([{"name": "old", "state": "absent", "delete_data": True}])
    assert found == ["gpulab_tenants old: delete_data is True; to allow deleting the tenant's volumes it must repeat "
                     "the tenant's name (old)"]


def test_a_tenant_listed_twice():
    assert t.problems([VISION, VISION]) == ["gpulab_tenants vision is listed twice; list each tenant once"]


def test_site_limits_apply_to_tenants_without_their_own():
    small = {"default_request": {"cpu": "250m", "memory": "512Mi"}, "default": {"cpu": "1", "memory": "1Gi"},
             "max": {"cpu": "2", "memory": "2Gi"}}
    lean = tenant(quota={"cpu": "2", "memory": "2Gi", "gpu": 1})
    assert t.problems([lean], small) == []
    assert t.problems([lean]) != []
    (limit_range,) = [o for o in t.objects([lean], small) if o["kind"] == "LimitRange"]
    assert limit_range["spec"]["limits"] == [{"type": "Container",
                                              "defaultRequest": {"cpu": "250m", "memory": "512Mi"},
                                              "default": {"cpu": "1", "memory": "1Gi"},
                                              "max": {"cpu": "2", "memory": "2Gi"}}]


def test_objects_without_kubeflow_bind_owner_admin_and_members_edit():
    found = t.objects([VISION, {"name": "old", "state": "absent"}])
    assert [(o["kind"], o["metadata"]["name"]) for o in found] == [
        ("Namespace", "vision"), ("ResourceQuota", "gpulab-tenant"), ("LimitRange", "gpulab-tenant"),
        ("ServiceAccount", "gpulab-jobs"), ("RoleBinding", "gpulab-jobs"), ("RoleBinding", "gpulab-owner"),
        ("RoleBinding", "gpulab-member-ben-gpulab-lan")]
    bindings = dict((o["metadata"]["name"], (o["roleRef"]["name"], o["subjects"][0]["name"])) for o in found
                    if o["kind"] == "RoleBinding")
    assert bindings["gpulab-owner"] == ("admin", "ana@gpulab.lan")
    assert bindings["gpulab-member-ben-gpulab-lan"] == ("edit", "ben@gpulab.lan")


def test_with_kubeflow_members_get_kubeflows_contributor_names_and_only_the_gateway_may_vouch():
    found = t.objects([tenant(members=["ana@gpulab.lan", "Ben.O'Neil+ml@gpulab.lan"])], kubeflow=True)
    (binding,) = [o for o in found if o["kind"] == "RoleBinding" and o["roleRef"]["name"] == "kubeflow-edit"]
    # KFAM: lower case, each run of characters outside [a-z0-9] one '-'
    assert binding["metadata"]["name"] == "user-ben-o-neil-ml-gpulab-lan-clusterrole-edit"
    (policy,) = [o for o in found if o["kind"] == "AuthorizationPolicy"]
    assert policy["spec"]["rules"][0]["from"] == [{"source": {"principals": [
        "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account",
        "cluster.local/ns/kubeflow/sa/ml-pipeline-ui"]}}]


def test_members_whose_binding_names_collide_are_refused():
    found = t.problems([tenant(members=["ana@gpulab.lan", "a.b@x.lan", "a-b@x.lan"])])
    assert found == ["gpulab_tenants vision: members a.b@x.lan and a-b@x.lan would share the RoleBinding "
                     "user-a-b-x-lan-clusterrole-edit; Kubeflow names a member's binding after the e-mail with every "
                     "run of other characters as '-'"]


def test_empty_site_limits_and_members_mean_the_defaults():
    assert t.problems([tenant(members=None)], {}) == []


def test_the_owner_defaults_to_the_first_member():
    found = t.objects([tenant(owner=None)], kubeflow=True)
    (profile,) = [o for o in found if o["kind"] == "Profile"]
    assert profile["spec"]["owner"]["name"] == "ana@gpulab.lan"


def test_objects_refuse_a_bad_list_with_every_problem():
    with pytest.raises(ValueError) as caught:
        t.objects([tenant(name="Bad"), tenant(quota={"cpu": 1, "memory": "1Gi", "gpu": 0})])
    assert "Bad: the name" in str(caught.value) and "quota.cpu 1 is below" in str(caught.value)


def test_summary():
    summary = t.summary([VISION, {"name": "old", "state": "absent", "delete_data": "old"},
                         {"name": "keep", "state": "absent"}, tenant(name="b", owner="cy@gpulab.lan")])
    assert summary == {"present": ["vision", "b"], "users": ["ana@gpulab.lan", "ben@gpulab.lan", "cy@gpulab.lan"],
                       "absent": [{"name": "old", "delete_data": True}, {"name": "keep", "delete_data": False}],
                       "bindings": ["vision/gpulab-jobs", "vision/gpulab-owner", "vision/gpulab-member-ben-gpulab-lan",
                                    "b/gpulab-jobs", "b/gpulab-owner", "b/gpulab-member-ana-gpulab-lan",
                                    "b/gpulab-member-ben-gpulab-lan"],
                       "policies": []}
    with_kubeflow = t.summary([VISION], None, True)
    assert with_kubeflow["bindings"] == ["vision/gpulab-jobs", "vision/user-ben-gpulab-lan-clusterrole-edit"]
    assert with_kubeflow["policies"] == ["vision/user-ben-gpulab-lan-clusterrole-edit"]


def test_inventory_rules_report_tenant_problems():
    hosts = {"cp01": {"gpulab_tenants": [tenant(name="Bad")], "gpulab_tenant_limits": "small"}}
    problems = validate({"groups": {"all": ["cp01"]}, "hostvars": hosts})
    assert "gpulab_tenant_limits is 'small' (str); it must be a mapping" in problems
    assert any(p.startswith("gpulab_tenants Bad: the name is not a valid namespace name") for p in problems)


def test_the_schedule_may_act_in_each_tenant_namespace_only_with_the_schedule_layer():
    assert not [o for o in t.objects([VISION]) if o["metadata"]["name"] == "gpulab-schedule"]
    (binding,) = [o for o in t.objects([VISION], schedule_namespace="gpulab-system")
                  if o["metadata"]["name"] == "gpulab-schedule"]
    assert binding["metadata"]["namespace"] == "vision" and binding["kind"] == "RoleBinding"
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": "gpulab-schedule-tenant"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "gpulab-schedule", "namespace": "gpulab-system"}]


def test_summary_refuses_a_list_with_problems():
    """Its keep-lists decide what pruning deletes: a list it cannot render must not yield empty ones."""
    with pytest.raises(ValueError, match="the name is not a valid namespace name"):
        t.summary([VISION, tenant(name="Bad")])
