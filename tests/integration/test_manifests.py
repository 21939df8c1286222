# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""playbooks/manifests.yml run for real on the production inventory: every built-in kind passes strict schema
validation for the inventory's Kubernetes minor, and the storage layer's manifests say what docs/storage.md says.

One render (about 5 s) per module, into a temporary folder; the playbook contacts no host.
"""

from __future__ import absolute_import, division, print_function

import datetime
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from zoneinfo import ZoneInfo

import kubernetes_validate
import pytest
import yaml

__metaclass__ = type

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PRODUCTION = os.path.join(ROOT, "inventories", "production")
PLAYBOOK = os.path.join(ROOT, "playbooks", "manifests.yml")
ANSIBLE = os.path.join(os.path.dirname(sys.executable), "ansible")
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
ANSIBLE_INVENTORY = os.path.join(os.path.dirname(sys.executable), "ansible-inventory")

# API groups of custom resources: their schemas come with the operators' CRDs, not with Kubernetes.
CUSTOM_GROUPS = ("ceph.rook.io", "operator.tigera.io", "kubeflow.org", "security.istio.io", "metallb.io")
# Helm values files are rendered too, but they are not Kubernetes objects.
VALUES_SUFFIX = "-values.yaml"
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"


def _env():
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0")
    # Any host contacted by mistake would time out and fail the run.
    env["ANSIBLE_TIMEOUT"] = "2"
    return env


def render(inventory, output, extra=()):
    """Run playbooks/manifests.yml into output (a copy of the playbook's folder layout), return (rc, output)."""
    result = subprocess.run([ANSIBLE_PLAYBOOK, "-i", inventory, PLAYBOOK,
                             "-e", "gpulab_manifests_dir=%s" % output] + list(extra),
                            cwd=ROOT, env=_env(), check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True, timeout=240)
    return result.returncode, result.stdout


def load(folder):
    """{relative path: [documents]} of every YAML file under folder."""
    found = {}
    for dirpath, _dirs, files in os.walk(folder):
        for name in sorted(files):
            path = os.path.join(dirpath, name)
            with open(path) as handle:
                found[os.path.relpath(path, folder)] = [doc for doc in yaml.safe_load_all(handle) if doc is not None]
    return found


@pytest.fixture(scope="module")
def output(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("manifests"))
    rc, log = render(PRODUCTION, folder)
    assert rc == 0, log
    return folder


@pytest.fixture(scope="module")
def rendered(output):
    return load(output)


@pytest.fixture(scope="module")
def documents(rendered):
    return [doc for name, docs in rendered.items() if not name.endswith(VALUES_SUFFIX) for doc in docs]


@pytest.fixture(scope="module")
def inventory():
    listing = subprocess.run([ANSIBLE_INVENTORY, "-i", PRODUCTION, "--list"], cwd=ROOT, env=_env(), check=True,
                             stdout=subprocess.PIPE, universal_newlines=True).stdout
    return yaml.safe_load(listing)


@pytest.fixture(scope="module")
def kubernetes_version(inventory):
    versions = set(hvars["gpulab_kubernetes_version"] for hvars in inventory["_meta"]["hostvars"].values())
    assert len(versions) == 1
    return versions.pop()


def _members(group):
    """The hosts of a production group in inventory order, as Ansible lists them."""
    listing = subprocess.run([ANSIBLE, "-i", PRODUCTION, group, "--list-hosts"], cwd=ROOT, env=_env(), check=True,
                             stdout=subprocess.PIPE, universal_newlines=True).stdout
    return [line.strip() for line in listing.splitlines()[1:] if line.strip()]


def _of_kind(documents, kind):
    return [doc for doc in documents if doc.get("kind") == kind]


def _is_custom(doc):
    return doc.get("apiVersion", "").split("/")[0] in CUSTOM_GROUPS


def test_every_role_renders(rendered):
    assert sorted(rendered) == [
        "cni/calico-installation.yaml",
        "gpu/device-plugin-values.yaml",
        "gpu/node-labels.yaml",
        "gpu/runtimeclass.yaml",
        "gpu/smoke-pytorchjob.yaml",
        "gpu/smoke.yaml",
        "platform/alloy-values.yaml",
        "platform/dcgm-values.yaml",
        "platform/gpu-dashboard.yaml",
        "platform/loki-values.yaml",
        "platform/metallb-pool.yaml",
        "platform/metallb-values.yaml",
        "platform/monitoring-values.yaml",
        "platform/network-policies.yaml",
        "platform/registry.yaml",
        "schedule/day-use-labels.yaml",
        "schedule/schedule.yaml",
        "storage/ceph-pools.yaml",
        "storage/cephcluster.yaml",
        "storage/cephfilesystem.yaml",
        "storage/storageclass-cephfs.yaml",
        "storage/storageclass-rbd.yaml",
        "tenants/tenants.yaml",
    ]
    assert [name for name, docs in rendered.items() if not docs] == []


def test_builtin_kinds_pass_strict_validation(documents, kubernetes_version):
    builtin = [doc for doc in documents if not _is_custom(doc)]
    assert builtin, "no built-in kind was rendered"
    for doc in builtin:
        # Raises ValidationError (unknown or mistyped field, strict) or SchemaNotFoundError (unknown kind/version).
        kubernetes_validate.validate(doc, kubernetes_version, strict=True)


def test_custom_resources_are_named(documents):
    custom = [doc for doc in documents if _is_custom(doc)]
    assert {doc["kind"] for doc in custom} >= {"CephCluster", "CephBlockPool", "CephFilesystem", "Installation",
                                               "Profile", "AuthorizationPolicy"}
    for doc in custom:
        assert doc.get("apiVersion") and doc.get("kind") and doc.get("metadata", {}).get("name"), doc
        if doc["apiVersion"].startswith("ceph.rook.io/"):
            assert doc["metadata"].get("namespace") == "rook-ceph", doc


def test_strict_validation_catches_a_stray_field(documents, kubernetes_version):
    """The validation above can fail: the same StorageClass with a field Kubernetes does not know is refused."""
    storage_class = dict(_of_kind(documents, "StorageClass")[0], parameter={"typo": "x"})
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(storage_class, kubernetes_version, strict=True)


def test_exactly_one_default_storage_class_and_it_is_cephfs(documents):
    classes = _of_kind(documents, "StorageClass")
    defaults = [sc for sc in classes if sc["metadata"].get("annotations", {}).get(DEFAULT_CLASS) == "true"]
    assert [sc["provisioner"] for sc in defaults] == ["rook-ceph.cephfs.csi.ceph.com"]
    cephfs = defaults[0]
    filesystem = _of_kind(documents, "CephFilesystem")[0]
    assert cephfs["parameters"]["fsName"] == filesystem["metadata"]["name"]
    assert cephfs["parameters"]["pool"] == "%s-%s" % (filesystem["metadata"]["name"],
                                                      filesystem["spec"]["dataPools"][0]["name"])
    rbd = [sc for sc in classes if sc["provisioner"] == "rook-ceph.rbd.csi.ceph.com"]
    assert len(rbd) == 1
    block_pools = [pool["metadata"]["name"] for pool in _of_kind(documents, "CephBlockPool")]
    assert rbd[0]["parameters"]["pool"] in block_pools
    for sc in (cephfs, rbd[0]):
        assert sc["parameters"]["clusterID"] == "rook-ceph"
        for key, value in sc["parameters"].items():
            if key.startswith("csi.storage.k8s.io/") and key.endswith("-secret-namespace"):
                assert value == "rook-ceph"


def _pools(documents):
    """(where, pool spec) of every pool: block pools, the filesystem's metadata pool and data pools."""
    pools = [("CephBlockPool/%s" % doc["metadata"]["name"], doc["spec"]) for doc in _of_kind(documents, "CephBlockPool")]
    for doc in _of_kind(documents, "CephFilesystem"):
        pools.append(("%s metadata" % doc["metadata"]["name"], doc["spec"]["metadataPool"]))
        pools.extend(("%s data %s" % (doc["metadata"]["name"], pool["name"]), pool)
                     for pool in doc["spec"]["dataPools"])
    return pools


def test_every_pool_keeps_three_copies_and_writes_with_two(documents):
    pools = _pools(documents)
    assert len(pools) == 4
    for where, spec in pools:
        assert spec["replicated"]["size"] == 3, where
        assert spec["replicated"]["requireSafeReplicaSize"] is True, where
        assert spec["parameters"]["min_size"] == "2", where
        assert spec["failureDomain"] == "host", where
    assert "builtin-mgr" in [doc["metadata"]["name"] for doc in _of_kind(documents, "CephBlockPool")]


def test_every_worker_lists_its_device(documents, inventory):
    cluster = _of_kind(documents, "CephCluster")[0]["spec"]
    assert cluster["storage"]["useAllNodes"] is False and cluster["storage"]["useAllDevices"] is False
    nodes = dict((node["name"], [device["name"] for device in node["devices"]]) for node in cluster["storage"]["nodes"])
    osd_hosts = _members("storage_osd")
    assert osd_hosts == _members("workers") and len(osd_hosts) == 15
    assert list(nodes) == osd_hosts
    for host in osd_hosts:
        assert nodes[host] == inventory["_meta"]["hostvars"][host]["storage_osd_devices"]
        assert nodes[host] == ["/dev/disk/by-partlabel/data"]


def test_cluster_is_pinned_and_sized_as_documented(documents):
    spec = _of_kind(documents, "CephCluster")[0]["spec"]
    assert spec["cephVersion"]["image"] == "quay.io/ceph/ceph:v19.2.3"
    assert spec["mon"] == {"count": 3, "allowMultiplePerNode": False}
    assert spec["mgr"]["count"] == 2
    # docs/storage.md: the OSD's request is its osd_memory_target (2 GiB), 1 GiB more before the OOM killer.
    assert spec["resources"]["osd"] == {"requests": {"cpu": "500m", "memory": "2Gi"}, "limits": {"memory": "3Gi"}}
    assert spec["resources"]["mon"]["limits"] == {"memory": "1Gi"}
    assert spec["resources"]["mgr"]["limits"] == {"memory": "1Gi"}
    assert "limits" not in spec["resources"]["prepareosd"]
    for daemon, resources in spec["resources"].items():
        assert "cpu" not in resources.get("limits", {}), daemon
    mds = _of_kind(documents, "CephFilesystem")[0]["spec"]["metadataServer"]
    assert mds["activeCount"] == 1 and mds["activeStandby"] is True
    assert mds["resources"]["limits"] == {"memory": "1536Mi"}
    control_plane = "node-role.kubernetes.io/control-plane"
    assert control_plane in [item["key"] for item in spec["placement"]["all"]["tolerations"]]
    for daemon in ("mon", "mgr"):
        terms = spec["placement"][daemon]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert terms["nodeSelectorTerms"][0]["matchExpressions"][0]["key"] == control_plane


def test_second_render_changes_nothing(output, rendered):
    """A second render of the same inventory writes the same bytes (the role's kubectl diff then finds nothing)."""
    rc, log = render(PRODUCTION, output)
    assert rc == 0, log
    assert "localhost                  : ok=" in log and " changed=0 " in log, log
    assert load(output) == rendered


def test_osd_node_without_device_is_refused(tmp_path):
    """The rendering path itself refuses a node without a device (validate_inventory catches it before)."""
    inventory = tmp_path / "inventory"
    shutil.copytree(PRODUCTION, str(inventory))
    host_vars = inventory / "host_vars"
    host_vars.mkdir()
    (host_vars / "gpu04.yml").write_text("storage_osd_devices: []\n")
    rc, log = render(str(inventory), str(tmp_path / "out"))
    assert rc != 0
    assert "storage_osd_nodes must list each OSD node" in log and "gpu04" in log, log
    assert not (tmp_path / "out" / "storage").exists()


# --- the gpu layer --------------------------------------------------------------------------------------------------


def test_the_runtime_class_names_the_nvidia_handler(documents):
    classes = _of_kind(documents, "RuntimeClass")
    assert [(rc["metadata"]["name"], rc["handler"]) for rc in classes] == [("nvidia", "nvidia")]


def test_every_worker_gets_its_gpu_labels(rendered):
    nodes = _of_kind(rendered["gpu/node-labels.yaml"], "Node")
    assert [node["metadata"]["name"] for node in nodes] == _members("workers")
    for node in nodes:
        assert node["metadata"]["labels"] == {"nvidia.com/gpu.present": "true",
                                              "gpulab.lan/gpu.model": "NVIDIA-T400-4GB", "gpulab.lan/gpu.count": "1"}
        assert set(node) == {"apiVersion", "kind", "metadata"}, "only labels: nothing else of the Node is claimed"


def test_the_device_plugin_values_use_the_runtime_class_without_sharing_by_default(rendered):
    (values,) = rendered["gpu/device-plugin-values.yaml"]
    assert values == {"runtimeClassName": "nvidia"}


def test_time_slicing_shares_each_gpu(tmp_path):
    rc, log = render(PRODUCTION, str(tmp_path), extra=["-e", "gpu_time_slicing_replicas=2"])
    assert rc == 0, log
    with open(str(tmp_path / "gpu" / "device-plugin-values.yaml")) as handle:
        values = yaml.safe_load(handle)
    assert values["config"]["default"] == "time-slicing"
    sharing = yaml.safe_load(values["config"]["map"]["time-slicing"])
    assert sharing == {"version": "v1", "sharing": {"timeSlicing": {"resources": [
        {"name": "nvidia.com/gpu", "replicas": 2}]}}}


def test_the_smoke_pod_asks_for_one_gpu_with_the_runtime_class(documents):
    (pod,) = _of_kind(documents, "Pod")
    assert pod["spec"]["runtimeClassName"] == "nvidia" and pod["spec"]["restartPolicy"] == "Never"
    (container,) = pod["spec"]["containers"]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": 1}
    assert container["command"] == ["nvidia-smi", "-L"]


def test_the_ddp_job_runs_the_collections_script_on_two_gpu_nodes(documents):
    (job,) = _of_kind(documents, "PyTorchJob")
    specs = job["spec"]["pytorchReplicaSpecs"]
    assert sorted(specs) == ["Master", "Worker"] and all(spec["replicas"] == 1 for spec in specs.values())
    for spec in specs.values():
        pod = spec["template"]["spec"]
        (container,) = pod["containers"]
        # the operator finds the replica's port only on the container named pytorch
        assert container["name"] == "pytorch"
        assert container["resources"]["limits"] == {"nvidia.com/gpu": 1}
        anti = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
        assert anti["topologyKey"] == "kubernetes.io/hostname"
        assert anti["labelSelector"]["matchLabels"] == spec["template"]["metadata"]["labels"]
    (config_map,) = [cm for cm in _of_kind(documents, "ConfigMap") if cm["metadata"]["name"] == "gpulab-ddp-smoke"]
    with open(os.path.join(ROOT, "roles", "gpu", "files", "ddp_smoke.py")) as handle:
        assert config_map["data"]["ddp_smoke.py"] == handle.read()


# Tenants (production inventory: three tenants, Kubeflow enabled)

def _tenants(inventory):
    (tenants,) = set(yaml.safe_dump(hvars["gpulab_tenants"]) for hvars in inventory["_meta"]["hostvars"].values())
    return yaml.safe_load(tenants)


def test_every_tenant_namespace_comes_before_its_objects(rendered, inventory):
    docs = rendered["tenants/tenants.yaml"]
    names = [t["name"] for t in _tenants(inventory)]
    namespaces = [doc["metadata"]["name"] for doc in docs if doc["kind"] == "Namespace"]
    assert namespaces == names
    for position, doc in enumerate(docs):
        namespace = doc["metadata"].get("namespace")
        if namespace:
            first = [d["metadata"]["name"] for d in docs[:position] if d["kind"] == "Namespace"]
            assert namespace in first, doc
    for doc in docs:
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["labels"]["gpulab.io/tenant"] == doc["metadata"]["name"]


def test_each_quota_is_the_inventorys(rendered, inventory):
    quotas = dict((doc["metadata"]["namespace"], doc["spec"]["hard"]) for doc in rendered["tenants/tenants.yaml"]
                  if doc["kind"] == "ResourceQuota")
    for tenant in _tenants(inventory):
        quota = tenant["quota"]
        assert quotas[tenant["name"]] == {
            "requests.cpu": str(quota["cpu"]), "requests.memory": quota["memory"], "limits.memory": quota["memory"],
            "requests.nvidia.com/gpu": str(quota["gpu"]), "requests.storage": quota["storage"],
            "pods": str(quota["pods"])}


def test_owners_own_profiles_and_members_get_edit_and_istio_access(rendered, inventory):
    docs = rendered["tenants/tenants.yaml"]
    for tenant in _tenants(inventory):
        mine = [doc for doc in docs if doc["metadata"].get("namespace") == tenant["name"]]
        (profile,) = [doc for doc in docs if doc["kind"] == "Profile" and doc["metadata"]["name"] == tenant["name"]]
        assert profile["spec"]["owner"] == {"kind": "User", "name": tenant["owner"]}
        namespace = [doc for doc in docs if doc["kind"] == "Namespace" and doc["metadata"]["name"] == tenant["name"]]
        # Kubeflow's profile controller takes over the namespace only if this annotation names the Profile's owner
        assert namespace[0]["metadata"]["annotations"]["owner"] == tenant["owner"]
        others = [m for m in tenant["members"] if m != tenant["owner"]]
        bound = dict((doc["subjects"][0]["name"], doc["roleRef"]["name"]) for doc in mine
                     if doc["kind"] == "RoleBinding" and doc["subjects"][0]["kind"] == "User")
        assert bound == dict((m, "kubeflow-edit") for m in others)
        allowed = [doc["spec"]["rules"][0]["when"][0] for doc in mine if doc["kind"] == "AuthorizationPolicy"]
        assert allowed == [{"key": "request.headers[kubeflow-userid]", "values": [m]} for m in others]
        (jobs,) = [doc for doc in mine if doc["kind"] == "RoleBinding" and doc["metadata"]["name"] == "gpulab-jobs"]
        assert jobs["subjects"] == [{"kind": "ServiceAccount", "name": "gpulab-jobs", "namespace": tenant["name"]}]


def test_a_tenant_quota_below_its_limit_range_is_refused(tmp_path):
    bad = [{"name": "tiny", "owner": "a@gpulab.lan", "quota": {"cpu": "2", "memory": "2Gi", "gpu": 0}}]
    rc, log = render(PRODUCTION, str(tmp_path), ["-e", json.dumps({"gpulab_tenants": bad})])
    assert rc != 0
    assert "gpulab_tenants tiny.quota.memory '2Gi' is below the LimitRange's max.memory" in log
    assert not os.path.exists(os.path.join(str(tmp_path), "tenants", "tenants.yaml"))


# After-hours schedule (production: Europe/Berlin, weekdays 07:45-19:00, Saturdays 09:45-16:00)

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _cron_matches(line, local):
    """Whether a five-field cron line of plain numbers, lists and * matches a local wall-clock minute."""
    fields = line.split()
    assert len(fields) == 5, line
    values = (local.minute, local.hour, local.day, local.month, (local.weekday() + 1) % 7)
    return all(field == "*" or value in [int(part) for part in field.split(",")]
               for field, value in zip(fields, values))


def _fires(cron_job, start, days):
    """The UTC minutes at which Kubernetes starts the CronJob: its schedule read in its timeZone's wall clock."""
    zone = ZoneInfo(cron_job["spec"]["timeZone"])
    minute = datetime.timedelta(minutes=1)
    now = start
    while now < start + datetime.timedelta(days=days):
        if _cron_matches(cron_job["spec"]["schedule"], now.astimezone(zone)):
            yield now
        now += minute


def _one(inventory, name):
    (value,) = set(json.dumps(hvars[name]) for hvars in inventory["_meta"]["hostvars"].values())
    return json.loads(value)


@pytest.mark.parametrize("week", ["2026-03-26", "2026-10-22"], ids=["spring-forward", "fall-back"])
def test_cron_jobs_fire_at_the_inventorys_local_hours_across_daylight_saving(rendered, inventory, week):
    """Seven days from a Thursday across a daylight-saving change (Sunday 29 March, Sunday 25 October 2026 in
    Europe/Berlin), so that working days lie on both sides: every start
    is at a window's from (wind-down) or to (wind-up), on the window's days, in local time, and nowhere else."""
    zone = ZoneInfo(_one(inventory, "gpulab_timezone"))
    expected = set()
    for window in _one(inventory, "gpulab_day_use"):
        for day in window["days"]:
            expected.add((day, window["from"], "wind-down"))
            expected.add((day, window["to"], "wind-up"))
    start = datetime.datetime.fromisoformat(week + "T00:00:00").replace(tzinfo=zone).astimezone(datetime.timezone.utc)
    seen = set()
    offsets = set()
    for job in [doc for doc in rendered["schedule/schedule.yaml"] if doc["kind"] == "CronJob"]:
        action = job["metadata"]["labels"]["gpulab.io/action"]
        for fire in _fires(job, start, 7):
            local = fire.astimezone(zone)
            key = (DAYS[local.weekday()], local.strftime("%H:%M"), action)
            assert key not in seen, key
            seen.add(key)
            offsets.add(local.utcoffset())
            assert job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"][2] == action
    assert seen == expected
    # the week really crosses the change: the same local hours are two different UTC hours
    assert offsets == {datetime.timedelta(hours=1), datetime.timedelta(hours=2)}


def test_a_schedule_in_utc_hours_would_fail_that_test(rendered, inventory):
    """The check above can fail: the wind-down written in UTC (06:45) starts at 08:45 local after the change."""
    job = [doc for doc in rendered["schedule/schedule.yaml"] if doc["kind"] == "CronJob"][0]
    copy_job = json.loads(json.dumps(job))
    copy_job["spec"]["schedule"] = "45 6 * * 1,2,3,4,5"
    copy_job["spec"]["timeZone"] = "UTC"
    zone = ZoneInfo(_one(inventory, "gpulab_timezone"))
    start = datetime.datetime(2026, 3, 26, tzinfo=zone).astimezone(datetime.timezone.utc)
    local_times = set(fire.astimezone(zone).strftime("%H:%M") for fire in _fires(copy_job, start, 7))
    assert local_times == {"07:45", "08:45"}


def test_the_program_runs_unchanged_from_its_config_map_with_least_privilege(rendered):
    docs = rendered["schedule/schedule.yaml"]
    (config_map,) = [doc for doc in docs if doc["kind"] == "ConfigMap"]
    with open(os.path.join(ROOT, "roles", "schedule", "files", "gpulab_schedule.py")) as handle:
        assert config_map["data"]["gpulab_schedule.py"] == handle.read()
    roles = dict((doc["metadata"]["name"], doc) for doc in docs if doc["kind"] == "ClusterRole")
    # cluster-wide (its ClusterRoleBinding): the tenant namespaces and the nodes, nothing else
    assert roles["gpulab-schedule"]["rules"] == [{"apiGroups": [""], "resources": ["namespaces", "nodes"],
                                                  "verbs": ["get", "list", "patch"]}]
    (binding,) = [doc for doc in docs if doc["kind"] == "ClusterRoleBinding"]
    assert binding["roleRef"]["name"] == "gpulab-schedule"
    # per tenant namespace (the tenants layer's RoleBindings): never bound cluster-wide
    assert not [doc for doc in docs if doc["kind"] in ("ClusterRoleBinding", "RoleBinding")
                and doc["roleRef"]["name"] == "gpulab-schedule-tenant"]
    tenant_rules = roles["gpulab-schedule-tenant"]["rules"]
    assert [rule["resources"] for rule in tenant_rules if "delete" in rule["verbs"]] == [["pods"]]
    assert [rule["resources"] for rule in tenant_rules if "create" in rule["verbs"]] == [["events"]]
    for role in roles.values():
        assert not [rule for rule in role["rules"] if "secrets" in rule["resources"] or "*" in rule["resources"]
                    or "*" in rule["verbs"]]
    for job in [doc for doc in docs if doc["kind"] == "CronJob"]:
        pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == "gpulab-schedule" and pod["securityContext"]["runAsNonRoot"] is True
        assert job["spec"]["concurrencyPolicy"] == "Forbid"


def test_every_rolled_out_worker_is_labelled_for_day_use(rendered):
    labels = dict((doc["metadata"]["name"], doc["metadata"]["labels"]) for doc in rendered["schedule/day-use-labels.yaml"])
    assert labels == dict((worker, {"gpulab.io/day-use": "true"}) for worker in _members("workers"))


def test_a_roll_out_of_four_labels_the_first_four_workers(tmp_path):
    rc, log = render(PRODUCTION, str(tmp_path), ["-e", "gpulab_rollout_workers=4"])
    assert rc == 0, log
    docs = load(str(tmp_path))["schedule/day-use-labels.yaml"]
    assert [doc["metadata"]["name"] for doc in docs] == _members("workers")[:4]


def test_overlapping_windows_are_refused(tmp_path):
    windows = [{"days": ["mon"], "from": "08:00", "to": "12:00"},
               {"days": ["mon", "tue"], "from": "11:00", "to": "18:00"}]
    rc, log = render(PRODUCTION, str(tmp_path), ["-e", json.dumps({"gpulab_day_use": windows})])
    assert rc != 0
    assert "gpulab_day_use items 1 and 2 overlap or lie less than 20 minutes apart on mon (08:00-12:00 and " \
        "11:00-18:00)" in log


def _request_permission(method, path):
    """(namespaced, (verb, API group, resource)) that a request of the program needs, as RBAC names them."""
    parts = path.strip("/").split("/")
    group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
    namespaced = rest[0] == "namespaces" and len(rest) > 2
    if namespaced:
        rest = rest[2:]
    resource, named = rest[0], len(rest) > 1
    verb = {"GET": "get" if named else "list", "PATCH": "patch", "DELETE": "delete", "POST": "create"}[method]
    return namespaced, (verb, group, resource)


def test_the_cluster_role_allows_every_call_the_program_makes_and_no_other(rendered):
    """Both directions run against the program's stand-in API server; each request must be allowed by the rendered
    ClusterRole, and each permission of the ClusterRole must be used by some request (least privilege)."""
    path = os.path.join(ROOT, "tests", "unit", "roles", "schedule", "test_gpulab_schedule.py")
    spec = importlib.util.spec_from_file_location("gpulab_schedule_tests", path)
    program_tests = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(program_tests)
    server = program_tests.ApiServer()
    server.thread.start()
    try:
        for mode in ("wind-down", "wind-up"):
            assert program_tests.run(server, mode)[0] == 0
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
    roles = dict((doc["metadata"]["name"], doc) for doc in rendered["schedule/schedule.yaml"]
                 if doc["kind"] == "ClusterRole")
    for namespaced, name in ((False, "gpulab-schedule"), (True, "gpulab-schedule-tenant")):
        needed = set(permission for scope, permission in (_request_permission(method, url)
                                                          for method, url, _q, _h, _b in server.requests)
                     if scope == namespaced)
        # a patch answered 409 Conflict reads the object again (tests/unit/roles/schedule: test_conflict_*)
        needed |= set(("get", group, resource) for verb, group, resource in needed if verb == "patch")
        granted = set((verb, group, resource) for rule in roles[name]["rules"] for group in rule["apiGroups"]
                      for resource in rule["resources"] for verb in rule["verbs"])
        assert needed - granted == set(), name
        # tfjobs and mpijobs are listed like pytorchjobs, whose calls the stand-in exercises in full
        unused = set((verb, group, resource) for verb, group, resource in granted - needed
                     if resource not in ("tfjobs", "mpijobs"))
        assert unused == set(), name


# Platform (production: MetalLB pool 192.168.50.240-250, registry at .240, Kubeflow enabled)

DAY_USE = {"key": "gpulab.io/day-use", "operator": "Exists", "effect": "NoSchedule"}


def test_metallb_announces_the_inventorys_pool(rendered, inventory):
    pool, advert = rendered["platform/metallb-pool.yaml"]
    assert pool["kind"] == "IPAddressPool" and pool["spec"]["addresses"] == _one(inventory, "gpulab_metallb_pool")
    assert advert["kind"] == "L2Advertisement" and advert["spec"]["ipAddressPools"] == [pool["metadata"]["name"]]


def test_the_registry_listens_at_its_address_with_tls_on_a_ceph_volume(rendered, inventory):
    docs = rendered["platform/registry.yaml"]
    (service,) = _of_kind(docs, "Service")
    assert service["metadata"]["annotations"] == {"metallb.io/loadBalancerIPs": _one(inventory, "gpulab_registry_address")}
    assert service["spec"]["type"] == "LoadBalancer" and service["spec"]["ports"][0]["port"] == 443
    assert service["spec"]["allocateLoadBalancerNodePorts"] is False
    (deployment,) = _of_kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = dict((item["name"], item["value"]) for item in container["env"])
    assert env["REGISTRY_HTTP_TLS_CERTIFICATE"] == "/certs/tls.crt" and env["REGISTRY_HTTP_TLS_KEY"] == "/certs/tls.key"
    assert {"name": "tls", "secret": {"secretName": "registry-tls"}} in pod["volumes"]
    (claim,) = _of_kind(docs, "PersistentVolumeClaim")
    assert claim["spec"]["storageClassName"] == "ceph-block"
    # the namespace enforces the restricted Pod Security Standard: what it demands of the pod
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert DAY_USE in pod["tolerations"]


def test_the_platform_keeps_running_on_tainted_day_use_workers(rendered):
    monitoring = rendered["platform/monitoring-values.yaml"][0]
    for tolerations in (monitoring["prometheus"]["prometheusSpec"]["tolerations"],
                        monitoring["alertmanager"]["alertmanagerSpec"]["tolerations"],
                        monitoring["grafana"]["tolerations"], monitoring["kube-state-metrics"]["tolerations"],
                        monitoring["prometheusOperator"]["tolerations"],
                        rendered["platform/loki-values.yaml"][0]["singleBinary"]["tolerations"],
                        rendered["platform/metallb-values.yaml"][0]["controller"]["tolerations"]):
        assert DAY_USE in tolerations
    # node agents tolerate every taint
    for values in ("platform/dcgm-values.yaml", "platform/alloy-values.yaml"):
        doc = rendered[values][0]
        assert {"operator": "Exists"} in doc.get("tolerations", doc.get("controller", {}).get("tolerations"))
    (cluster,) = _of_kind(rendered["storage/cephcluster.yaml"], "CephCluster")
    assert DAY_USE in cluster["spec"]["placement"]["all"]["tolerations"]
    # the key the program taints with by default
    with open(os.path.join(ROOT, "roles", "schedule", "files", "gpulab_schedule.py")) as handle:
        assert '"gpulab.io/day-use"' in handle.read()


def test_gpu_metrics_run_on_gpu_nodes_and_the_dashboard_asks_for_what_the_exporter_exports(rendered):
    dcgm = rendered["platform/dcgm-values.yaml"][0]
    assert dcgm["runtimeClassName"] == "nvidia" and dcgm["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert dcgm["serviceMonitor"]["enabled"] is True
    (config_map,) = rendered["platform/gpu-dashboard.yaml"]
    assert config_map["metadata"]["labels"] == {"grafana_dashboard": "1"}
    dashboard = json.loads(config_map["data"]["gpulab-gpus.json"])
    expressions = " ".join(target["expr"] for panel in dashboard["panels"] for target in panel["targets"])
    used = set(re.findall(r"DCGM_FI_[A-Z_]+", expressions))
    # the exporter's default counters (etc/default-counters.csv of dcgm-exporter 4.x)
    assert used and used <= {"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE",
                             "DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_SM_CLOCK"}
    # per tenant: the exporter labels a GPU in use with its pod's namespace
    assert "by (namespace)" in expressions


def test_logs_stay_within_an_8_gb_node(rendered):
    loki = rendered["platform/loki-values.yaml"][0]
    assert loki["deploymentMode"] == "SingleBinary" and loki["singleBinary"]["replicas"] == 1
    assert loki["chunksCache"]["enabled"] is False and loki["resultsCache"]["enabled"] is False
    assert [loki[part]["replicas"] for part in ("read", "write", "backend")] == [0, 0, 0]
    alloy = rendered["platform/alloy-values.yaml"][0]
    assert "loki-gateway.monitoring.svc.cluster.local/loki/api/v1/push" in alloy["alloy"]["configMap"]["content"]


def test_grafana_has_its_own_address_and_no_password_in_its_values(rendered, inventory):
    output = yaml.safe_dump(rendered["platform/monitoring-values.yaml"])
    grafana = rendered["platform/monitoring-values.yaml"][0]["grafana"]
    assert "adminPassword" not in output and grafana["admin"]["existingSecret"] == "grafana-admin"
    assert grafana["deploymentStrategy"] == {"type": "Recreate"}  # one pod on a ReadWriteOnce volume
    # the pool's second address (192.168.50.240-250 at the reference site), asked for by annotation
    assert grafana["service"] == {"type": "LoadBalancer", "annotations": {"metallb.io/loadBalancerIPs": "192.168.50.241"}}
    # with Kubeflow: signed in through its Dex, the browser sent to Dex at Kubeflow's gateway (the third address)
    oauth = grafana["grafana.ini"]["auth.generic_oauth"]
    assert oauth["enabled"] is True and oauth["client_id"] == "grafana" and "client_secret" not in oauth
    assert oauth["auth_url"] == "http://192.168.50.242/dex/auth"
    assert oauth["token_url"] == "http://dex.auth.svc.cluster.local:5556/dex/token"
    assert grafana["grafana.ini"]["server"]["root_url"] == "http://192.168.50.241/"
    assert grafana["envFromSecret"] == "grafana-oauth"
    pool = rendered["platform/metallb-pool.yaml"][0]
    assert pool["spec"]["autoAssign"] is False  # no Service takes a LAN address unasked
    assert rendered["platform/dcgm-values.yaml"][0]["serviceMonitor"]["honorLabels"] is True


def test_with_the_sites_own_oidc_provider_grafana_does_not_sign_in_through_a_dex_that_is_not_there(tmp_path):
    rc, log = render(PRODUCTION, str(tmp_path), extra=["-e", "gpulab_kubeflow_auth=oidc"])
    assert rc == 0, log
    found = load(str(tmp_path))
    grafana = found["platform/monitoring-values.yaml"][0]["grafana"]
    assert "grafana.ini" not in grafana and "envFromSecret" not in grafana


def test_only_grafana_and_alloy_reach_the_logs_and_only_grafana_the_metrics(rendered):
    policies = dict((doc["metadata"]["name"], doc["spec"]) for doc in rendered["platform/network-policies.yaml"])
    loki = policies["loki-from-grafana-and-alloy"]
    assert loki["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "loki"}}
    (source,) = loki["ingress"][0]["from"]
    assert source == {"podSelector": {"matchExpressions": [{"key": "app.kubernetes.io/name", "operator": "In",
                                                            "values": ["grafana", "alloy", "loki"]}]}}
    prometheus = policies["prometheus-from-grafana"]
    assert prometheus["ingress"] == [{"from": [{"podSelector": {"matchExpressions": [
        {"key": "app.kubernetes.io/name", "operator": "In", "values": ["grafana", "prometheus"]}]}}]}]
