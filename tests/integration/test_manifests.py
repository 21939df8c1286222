# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""playbooks/manifests.yml run for real on the production inventory: every built-in kind passes strict schema
validation for the inventory's Kubernetes minor, and the storage layer's manifests say what docs/storage.md says.

One render (about 5 s) per module, into a temporary folder; the playbook contacts no host.
"""

from __future__ import absolute_import, division, print_function

import json
import os
import shutil
import subprocess
import sys

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
CUSTOM_GROUPS = ("ceph.rook.io", "operator.tigera.io", "kubeflow.org", "security.istio.io")
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
    assert spec["placement"]["all"]["tolerations"][0]["key"] == control_plane
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


def test_every_worker_gets_its_gpu_labels(documents):
    nodes = _of_kind(documents, "Node")
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
