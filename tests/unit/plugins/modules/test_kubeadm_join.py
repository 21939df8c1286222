# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpulab.cluster.kubeadm_join on a fake node: kubeadm, kubectl and etcdctl answer with recorded real outputs
(tests/unit/plugins/fixtures/kubeadm, sources in its README.md) and change the node's files as the real tools do;
the node's /etc and /var live under a temporary folder."""
from __future__ import absolute_import, division, print_function

import datetime
import json
import os
import stat
import tempfile

import pytest
from ansible.module_utils import basic

from ansible_collections.gpulab.cluster.plugins.module_utils import _kubeadm as kubeadm
from ansible_collections.gpulab.cluster.plugins.modules import kubeadm_join

from .utils import run_module

__metaclass__ = type

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "kubeadm")
TOKEN = "abcdef.0123456789abcdef"
CERT_KEY = "f" * 64
CA_HASH = "sha256:4c5a0e3bd1c8a3cbb2f3b4b0a0c7e9b1d7f0a36e3a2e8c1d9b6f5e4d3c2b1a09"
PUBKEYPIN = "sha256:345959acb2c3b2feb87d281961c893f62a314207ef02599f1cc4a5fb255480b3"
ENDPOINT = "lb01.gpulab.lan:6443"
NOW = datetime.datetime(2026, 11, 23, 18, 32, 11, tzinfo=datetime.timezone.utc)

INIT = {
    "state": "init",
    "control_plane_endpoint": ENDPOINT,
    "kubernetes_version": "v1.31.4",
    "cluster_name": "gpulab",
    "pod_subnet": "10.244.0.0/16",
    "cert_sans": ["lb01.gpulab.lan", "192.168.50.10"],
    "advertise_address": "192.168.50.11",
    "cri_socket": "unix:///run/containerd/containerd.sock",
    "node_name": "cp01",
    "token": TOKEN,
    "certificate_key": CERT_KEY,
}
CONTROL_PLANE = {
    "state": "control_plane",
    "control_plane_endpoint": ENDPOINT,
    "token": TOKEN,
    "certificate_key": CERT_KEY,
    "ca_cert_hashes": [CA_HASH],
    "advertise_address": "192.168.50.12",
    "node_name": "cp02",
}
WORKER = {"state": "worker", "control_plane_endpoint": ENDPOINT, "token": TOKEN, "ca_cert_hashes": [CA_HASH],
          "node_name": "gpu07"}
RESET = {"state": "reset", "cri_socket": "unix:///run/containerd/containerd.sock", "node_name": "gpu07"}
MUTATING = (("kubeadm", "init"), ("kubeadm", "join"), ("kubeadm", "reset"), ("kubeadm", "token", "create"),
            ("etcdctl", "member", "remove"))


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def kubeadm_version(version="v1.31.4"):
    # The recorded `kubeadm version -o yaml` of a v1.26.2 node, with the version substituted.
    return fixture("kubeadm_version_yaml_v1.26.2_abcdesktop8.txt").replace("v1.26.2", version)


def kubectl_version(version="v1.31.4"):
    # The recorded `kubectl version -o json` (v1.9.0-alpha), with the server's version substituted.
    return fixture("kubectl_version_json_k8s53259.txt").replace("v1.9.0-alpha.1.487+550c3cab4fe267", version)


def health_of(urls_healthy):
    # Composed from the recorded line format of `etcdctl endpoint health` (etcdctl_endpoint_health_etcd10897.txt).
    lines = []
    for url, healthy in urls_healthy:
        lines.append("%s is %s" % (url, "healthy: successfully committed proposal: took = 3.189286ms" if healthy
                                   else "unhealthy: failed to commit proposal: context deadline exceeded"))
    return "\n".join(lines) + ("\nError: unhealthy cluster\n" if not all(ok for _url, ok in urls_healthy) else "\n")


def command_key(argv):
    """A readable name for a command line the module runs."""
    program = os.path.basename(argv[0])
    words = list(argv[1:])
    if program == "kubectl" and "exec" in words:  # etcdctl inside the etcd pod
        program, words = "etcdctl", words[words.index("etcdctl") + 1:]
    words = [word for word in words if not word.startswith("--") and not word.startswith("-o")]
    if program == "kubeadm":
        if words[:3] == ["init", "phase", "upload-certs"]:
            return "kubeadm upload-certs"
        return "kubeadm " + " ".join(words[:2] if words[0] == "token" else words[:1])
    if program == "etcdctl":
        return "etcdctl " + " ".join(words[:2])
    if "/readyz" in argv:
        return "kubectl readyz"
    if "version" in argv:
        return "kubectl version"
    if any(word.startswith("jsonpath=") for word in argv):
        return "kubectl addresses"
    return "kubectl node"


class FakeNode(object):
    """A node: files under a temporary root, programs answering from a table, and a clock."""

    def __init__(self, tmp_path, monkeypatch):
        self.root = tmp_path / "root"
        self.root.mkdir()
        self.tmp = tmp_path / "tmp"
        self.tmp.mkdir()
        monkeypatch.setattr(kubeadm, "ROOT", str(self.root))
        monkeypatch.setattr(tempfile, "tempdir", str(self.tmp))
        monkeypatch.setattr(kubeadm_join, "_now", lambda: NOW)
        monkeypatch.setattr(kubeadm_join, "_hostname", lambda: "GPU07.gpulab.lan")
        self.clock = 0.0
        monkeypatch.setattr(kubeadm_join, "_monotonic", lambda: self.clock)
        monkeypatch.setattr(kubeadm_join, "_sleep", self.sleep)
        self.binaries = set(["kubeadm", "kubectl"])
        self.answers = {}
        self.calls = []
        self.configs = []  # (command, text, mode) of every --config file, read while the command runs
        self.env = []
        self.warnings = []
        self.answer("kubeadm version", 0, kubeadm_version())
        # Composed, not recorded: the module reads only the exit codes of these two
        self.answer("kubectl readyz", 0, "ok")
        self.answer("kubectl node", 0, "node/gpu07\n")
        self.answer("kubectl version", 0, kubectl_version())
        self.answer("etcdctl member list", 0, fixture("etcdctl_member_list_etcd11537.txt"))

    def sleep(self, seconds):
        self.clock += seconds

    def answer(self, key, rc=0, out="", err="", effect=None, then=None):
        """The answer to a command; ``then`` lists further answers for the next calls, the last one repeating."""
        self.answers[key] = [(rc, out, err, effect)] + list(then or [])

    def bin_path(self, name):
        return "/usr/bin/" + name if name in self.binaries else None

    def run_command(self, argv, **kwargs):
        argv = list(argv)
        self.calls.append(argv)
        if kwargs.get("environ_update"):
            self.env.append(kwargs["environ_update"])
        if "--config" in argv:
            path = argv[argv.index("--config") + 1]
            with open(path) as handle:
                self.configs.append((command_key(argv), handle.read(), stat.S_IMODE(os.stat(path).st_mode)))
        key = command_key(argv)
        queue = self.answers.get(key)
        assert queue, "no answer for %s (%r)" % (key, argv)
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if len(answer) == 3:
            answer = answer + (None,)
        rc, out, err, effect = answer
        if effect:
            effect(self)
        return rc, out, err

    # --- files ------------------------------------------------------------------------------------------------

    def write(self, path, text=""):
        target = self.root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def exists(self, path):
        return (self.root / path.lstrip("/")).exists()

    def worker_files(self):
        self.write(kubeadm.KUBELET_CONF)
        self.write(kubeadm.CA_CRT, fixture("ca_pubkeypin_test_cert.pem"))
        self.write(kubeadm.KUBELET_CONFIG)

    def control_plane_files(self, first=False):
        self.worker_files()
        self.write(kubeadm.ADMIN_CONF)
        if first:
            self.write(kubeadm.SUPER_ADMIN_CONF)
        for name in kubeadm.CONTROL_PLANE_MANIFESTS:
            self.write(os.path.join(kubeadm.MANIFESTS_DIR, name))
        self.write(os.path.join(kubeadm.ETCD_DATA_DIR, "member", "snap", "db"))

    def wipe(self):
        """What `kubeadm reset` removes: /etc/kubernetes, /var/lib/kubelet and the etcd data."""
        import shutil
        for folder in ("etc/kubernetes", "var/lib/kubelet", "var/lib/etcd"):
            shutil.rmtree(str(self.root / folder), ignore_errors=True)

    def cni(self, *names):
        for name in names:
            self.write(os.path.join(kubeadm.CNI_CONF_DIR, name), "{}")

    # --- what the module ran ----------------------------------------------------------------------------------

    def keys(self):
        return [command_key(argv) for argv in self.calls]

    def mutating(self):
        found = []
        for argv in self.calls:
            words = [os.path.basename(argv[0])] + [word for word in argv[1:] if not word.startswith("-")]
            if "exec" in words:
                words = ["etcdctl"] + words[words.index("etcdctl") + 1:]
            for pattern in MUTATING:
                if all(word in words for word in pattern) and words[0] == pattern[0]:
                    found.append(argv)
        return found


@pytest.fixture
def node(tmp_path, monkeypatch, module_harness):
    fake = FakeNode(tmp_path, monkeypatch)
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, *a, **k: fake.bin_path(name))
    monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, args, **kw: fake.run_command(args, **kw))
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, text: fake.warnings.append(text))
    return fake


def init_success(node):
    node.answer("kubeadm init", 0, fixture("init_v1.34.3_aganesan94.txt"),
                effect=lambda fake: fake.control_plane_files(first=True))


def join_success(node, control_plane):
    if control_plane:
        node.answer("kubeadm join", 0, fixture("join_control_plane_v1.32_ingcloud.txt"),
                    effect=lambda fake: fake.control_plane_files())
    else:
        node.answer("kubeadm join", 0, fixture("join_worker_v1.24_kubeadm574.txt"), effect=lambda fake: fake.worker_files())


def reset_answer(node, name="reset_kata3873_excerpt.txt"):
    node.answer("kubeadm reset", 0, fixture(name), effect=lambda fake: fake.wipe())


def assert_no_secret(node, result):
    text = json.dumps(result)
    assert TOKEN not in text and CERT_KEY not in text and TOKEN.split(".")[1] not in text
    for argv in node.calls:
        assert not any(TOKEN in word or CERT_KEY in word or TOKEN.split(".")[1] in word for word in argv), argv


def assert_configs_gone(node):
    assert list(node.tmp.iterdir()) == []
    for _command, _text, mode in node.configs:
        assert mode == 0o600


def documents(text):
    return [json.loads(part) for part in text.split("\n---\n")]


def run_both(node_factory, args):
    """The module in check mode on one fresh node, then for real on another; both results."""
    check_node = node_factory()
    failed, check = run_module(kubeadm_join, args, check_mode=True)
    assert not failed, check
    assert check_node.mutating() == []
    real_node = node_factory()
    failed, real = run_module(kubeadm_join, args)
    assert not failed, real
    assert check["changed"] == real["changed"] and check["actions"] == real["actions"]
    assert check["node_state"] == real["node_state"] and check["node_state_before"] == real["node_state_before"]
    return check_node, check, real_node, real


@pytest.fixture
def nodes(tmp_path, monkeypatch, module_harness):
    """Factory of fresh fake nodes (the last one made is the one the module runs on)."""
    made = []

    def make(setup=None):
        folder = tmp_path / ("node%d" % len(made))
        folder.mkdir()
        fake = FakeNode(folder, monkeypatch)
        monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, *a, **k: fake.bin_path(name))
        monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, args, **kw: fake.run_command(args, **kw))
        monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, text: fake.warnings.append(text))
        if setup:
            setup(fake)
        made.append(fake)
        return fake

    return make


# --- state=init ----------------------------------------------------------------------------------------------------


def test_init_of_a_fresh_node_and_its_check_mode(nodes):
    check_node, check, node, result = run_both(lambda: nodes(init_success), INIT)
    assert result["actions"] == [
        "kubeadm init (cluster gpulab, endpoint lb01.gpulab.lan:6443, Kubernetes v1.31.4)",
        "bootstrap token created (ttl 30m)",
        "control-plane certificates uploaded (kubeadm deletes them after 2h)",
    ]
    assert result["changed"] and result["node_state_before"] == "absent" and result["node_state"] == "initialised"
    assert result["control_plane_endpoint"] == ENDPOINT and result["recovered"] is False
    assert result["ca_cert_hash"] == PUBKEYPIN and "ca_cert_hash" not in check
    assert result["kubernetes_version"] == "v1.31.4" and check["kubernetes_version"] == "v1.31.4"
    assert result["etcd_members"] == ["etcd-003", "etcd-002", "etcd-001"]
    assert result["token_expires"] == check["token_expires"] == "2026-11-23T19:02:11Z"
    assert result["certificate_key_expires"] == "2026-11-23T20:32:11Z"
    assert result["removed_etcd_members"] == []
    assert check_node.keys() == ["kubeadm version"]
    init = [argv for argv in node.calls if command_key(argv) == "kubeadm init"][0]
    assert init[:3] == ["/usr/bin/kubeadm", "init", "--config"] and init[4:] == ["--upload-certs"]
    (command, text, mode), = node.configs
    assert command == "kubeadm init" and mode == 0o600
    init_doc, cluster, kubelet = documents(text)
    assert init_doc["bootstrapTokens"][0]["token"] == TOKEN and init_doc["certificateKey"] == CERT_KEY
    assert init_doc["nodeRegistration"]["name"] == "cp01"
    assert cluster["controlPlaneEndpoint"] == ENDPOINT and cluster["apiServer"]["certSANs"][0] == "lb01.gpulab.lan"
    assert kubelet["cgroupDriver"] == "systemd" and kubelet["failSwapOn"] is True
    assert_configs_gone(node)
    assert_no_secret(node, result)
    # kubeadm's printed pin (of the recorded cluster) is not the fake node's ca.crt: the module says so
    assert any("kubeadm printed the CA pin" in warning for warning in node.warnings)


def test_init_without_join_material_skips_upload_certs(node):
    init_success(node)
    failed, result = run_module(kubeadm_join, dict(INIT, token=None, certificate_key=None))
    assert not failed
    assert result["actions"] == ["kubeadm init (cluster gpulab, endpoint lb01.gpulab.lan:6443, Kubernetes v1.31.4)"]
    init = [argv for argv in node.calls if command_key(argv) == "kubeadm init"][0]
    assert "--upload-certs" not in init
    assert "token_expires" not in result and "certificate_key_expires" not in result


def test_init_waits_for_the_api(node):
    init_success(node)
    node.answer("kubectl readyz", 1, "", "The connection to the server was refused", then=[(0, "ok", "")])
    failed, result = run_module(kubeadm_join, INIT)
    assert not failed and node.clock == kubeadm_join.POLL_SECONDS


def test_init_whose_api_never_answers_fails(node):
    init_success(node)
    node.answer("kubectl readyz", 1, "", fixture("kubectl_version_json_refused_oalders34.txt").splitlines()[-1])
    failed, result = run_module(kubeadm_join, dict(INIT, timeout=10))
    assert failed and "does not answer" in result["msg"] and result["changed"]
    assert node.clock >= 10


def test_init_stopped_in_preflight_reports_the_checks(node):
    node.answer("kubeadm init", 1, "", fixture("init_preflight_v1.29.1_kubeadm3013.txt"))
    failed, result = run_module(kubeadm_join, INIT)
    assert failed
    assert result["msg"].startswith("kubeadm init stopped in its preflight checks: Port-10259 (Port 10259 is in use)")
    assert "[ERROR Port-10250]" in result["output_tail"]
    assert_configs_gone(node)


def test_init_failure_quotes_kubeadm_without_secrets(node):
    # kubeadm's output of a failed init still holds the token it was given (here: the recorded init output's)
    node.answer("kubeadm init", 1, fixture("init_upload_certs_v1.32_ingcloud_excerpt.txt"), "error execution phase x")
    failed, result = run_module(kubeadm_join, INIT)
    assert failed and result["msg"].startswith("kubeadm init failed (rc=1)")
    for secret in ("xbtcem.rc4intnuv80o7otw", "31da1221d1ed5a68f583fa79657389470489bb11cce86a8721e99c7c3c3e9612"):
        assert secret not in json.dumps(result)
    assert "sha256:181ea3313e3542f5c1791eec3e9b564435946203845b5eac793279df5779eea1" in result["output_tail"]


def test_init_refuses_a_kubeadm_of_another_version(node):
    node.answer("kubeadm version", 0, kubeadm_version("v1.31.5"))
    failed, result = run_module(kubeadm_join, INIT)
    assert failed and result["option"] == "kubernetes_version" and not result["changed"]
    assert "differs from the installed kubeadm v1.31.5" in result["msg"]
    assert node.mutating() == []


def test_kubeadm_older_than_1_31_is_refused(node):
    node.answer("kubeadm version", 0, fixture("kubeadm_version_yaml_v1.26.2_abcdesktop8.txt"))
    failed, result = run_module(kubeadm_join, WORKER)
    assert failed and "kubeadm v1.26.2 is older than 1.31" in result["msg"] and node.mutating() == []


def test_unreadable_kubeadm_version(node):
    node.answer("kubeadm version", 1, "", "segmentation fault")
    failed, result = run_module(kubeadm_join, WORKER)
    assert failed and "could not read the kubeadm version" in result["msg"]


def test_missing_kubeadm(node):
    node.binaries.discard("kubeadm")
    failed, result = run_module(kubeadm_join, WORKER)
    assert failed and result["msg"].startswith("kubeadm is not installed") and node.calls == []


def refresh_node(node):
    node.control_plane_files(first=True)
    node.answer("kubeadm token list", 0, fixture("kubeadm_token_list_k8s42233.txt"))
    # Composed, not recorded (the module reads only their exit codes): `kubeadm token create` prints the token
    # (RunCreateToken, cmd/kubeadm/app/cmd/token.go), the upload-certs phase its two [upload-certs] lines.
    node.answer("kubeadm token create", 0, TOKEN + "\n")
    node.answer("kubeadm upload-certs", 0, "[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" in "
                                           "the \"kube-system\" Namespace\n")


def test_init_on_an_initialised_node_only_makes_fresh_join_material(nodes):
    check_node, check, node, result = run_both(lambda: nodes(refresh_node), INIT)
    assert result["actions"] == ["bootstrap token created (ttl 30m)",
                                 "control-plane certificates uploaded again (kubeadm deletes them after 2h)"]
    assert result["node_state_before"] == result["node_state"] == "initialised" and result["changed"]
    assert "kubeadm init" not in node.keys()
    assert [command for command, _text, _mode in node.configs] == ["kubeadm token create", "kubeadm upload-certs"]
    token_init, token_cluster = documents(node.configs[0][1])
    assert token_init["bootstrapTokens"][0] == {
        "token": TOKEN, "description": "gpulab.cluster kubeadm_join: join material for one run", "ttl": "30m",
        "usages": ["signing", "authentication"], "groups": ["system:bootstrappers:kubeadm:default-node-token"]}
    assert "certificateKey" not in token_init and token_cluster["kubernetesVersion"] == "v1.31.4"
    certs_init, _cluster = documents(node.configs[1][1])
    assert certs_init["certificateKey"] == CERT_KEY and "bootstrapTokens" not in certs_init
    upload = [argv for argv in node.calls if command_key(argv) == "kubeadm upload-certs"][0]
    assert upload[1:5] == ["init", "phase", "upload-certs", "--upload-certs"] and upload[5] == "--config"
    assert set(check_node.keys()) == {"kubeadm version", "kubectl readyz", "kubeadm token list", "kubectl version",
                                      "etcdctl member list"}
    assert result["ca_cert_hash"] == PUBKEYPIN and result["kubernetes_version"] == "v1.31.4"
    assert result["token_expires"] == "2026-11-23T19:02:11Z" and result["removed_etcd_members"] == []
    assert_configs_gone(node)
    assert_no_secret(node, result)


def test_init_with_an_existing_token_changes_nothing(node):
    refresh_node(node)
    failed, result = run_module(kubeadm_join, dict(INIT, token="81a8f9.c3fa30dd1ed05d96", certificate_key=None))
    assert not failed and not result["changed"] and result["actions"] == []
    assert result["token_expires"] == "never"
    assert node.mutating() == []


def test_a_token_id_taken_by_another_secret_is_refused(node):
    refresh_node(node)
    failed, result = run_module(kubeadm_join, dict(INIT, token="81a8f9.0000000000000000"))
    assert failed and result["option"] == "token" and "81a8f9 already exists with another secret" in result["msg"]
    assert "0000000000000000" not in result["msg"]


def test_token_never_expiring(node):
    refresh_node(node)
    failed, result = run_module(kubeadm_join, dict(INIT, token_ttl="0", certificate_key=None))
    assert not failed and result["token_expires"] == "never"


@pytest.mark.parametrize("key", ["kubeadm token list", "kubeadm token create", "kubeadm upload-certs"])
def test_refresh_failures(node, key):
    refresh_node(node)
    node.answer(key, 1, "", "error: Unauthorized")
    failed, result = run_module(kubeadm_join, INIT)
    assert failed and "Unauthorized" in result["msg"]
    assert_configs_gone(node)


def test_init_on_an_initialised_node_whose_api_is_down_is_never_initialised_again(node):
    refresh_node(node)
    node.answer("kubectl readyz", 1, "", "The connection to the server localhost:8080 was refused")
    failed, result = run_module(kubeadm_join, dict(INIT, timeout=6), check_mode=True)
    assert failed and "it is never initialised again" in result["msg"] and not result["changed"]
    assert node.mutating() == [] and node.clock >= 6


def test_init_on_a_joined_control_plane_is_a_refresh_too(node):
    refresh_node(node)
    os.unlink(str(node.root / kubeadm.SUPER_ADMIN_CONF.lstrip("/")))
    failed, result = run_module(kubeadm_join, dict(INIT, certificate_key=None))
    assert not failed and result["node_state_before"] == "control_plane" == result["node_state"]


def test_init_on_a_worker_is_refused(node):
    node.worker_files()
    failed, result = run_module(kubeadm_join, INIT)
    assert failed and "this node is a worker" in result["msg"] and node.calls == []


def test_half_initialised_node_with_etcd_data_is_not_reset(node):
    node.write(kubeadm.ADMIN_CONF)
    node.write(os.path.join(kubeadm.ETCD_DATA_DIR, "member", "wal", "0.wal"))
    failed, result = run_module(kubeadm_join, INIT)
    assert failed and "holds etcd data" in result["msg"] and node.calls == []
    assert result["node_state_before"] == "half_joined"


def test_half_initialised_node_without_etcd_data_is_reset_and_initialised(nodes):
    def setup(fake):
        fake.write(kubeadm.CA_CRT, fixture("ca_pubkeypin_test_cert.pem"))
        fake.cni("10-calico.conflist")
        reset_answer(fake)
        init_success(fake)
    _check_node, check, node, result = run_both(lambda: nodes(setup), dict(INIT, certificate_key=None))
    assert result["actions"][:3] == [
        "reset half-initialised node (kubelet.conf missing while pki/ca.crt exist)",
        "remove the CNI configuration in /etc/cni/net.d (10-calico.conflist)",
        "kubeadm init (cluster gpulab, endpoint lb01.gpulab.lan:6443, Kubernetes v1.31.4)"]
    assert result["recovered"] and check["recovered"] and result["node_state"] == "initialised"
    assert not node.exists(os.path.join(kubeadm.CNI_CONF_DIR, "10-calico.conflist"))
    reset = [argv for argv in node.calls if command_key(argv) == "kubeadm reset"][0]
    assert reset == ["/usr/bin/kubeadm", "reset", "--force", "--cri-socket", "unix:///run/containerd/containerd.sock"]


# --- remove_etcd_members -------------------------------------------------------------------------------------------


def stale_member_node(fake):
    """cp01 (named etcd-1 here) of the recorded 3-member list whose etcd-0 never started."""
    refresh_node(fake)
    fake.answer("etcdctl member list", 0, fixture("etcdctl_member_list_unstarted_etcd15787.txt"))
    fake.answer("etcdctl endpoint health", 1, health_of([("https://etcd-2.etcd.ztissan:2379", True),
                                                        ("https://etcd-1.etcd.ztissan:2379", True)]))
    # Composed: the jsonpath of the node's addresses (InternalIP, Hostname), as kubectl prints a list
    fake.answer("kubectl addresses", 0, "10.0.0.9 etcd-0.etcd-peer.ztissan.svc.cluster.local")
    fake.answer("etcdctl member remove", 0, fixture("etcdctl_member_remove_etcd15787.txt"))


def test_stale_etcd_member_of_an_aborted_join_is_removed(nodes):
    args = dict(INIT, node_name="etcd-1", token=None, certificate_key=None,
                remove_etcd_members=["etcd-0", "etcd-2", "etcd-1", "cp09"])
    check_node, check, node, result = run_both(lambda: nodes(stale_member_node), args)
    assert result["actions"] == ["remove stale etcd member etcd-0 (id 10ff1e8664a58dc8, voting member, unstarted)"]
    assert result["removed_etcd_members"] == check["removed_etcd_members"] == ["etcd-0"]
    removes = [argv for argv in node.calls if command_key(argv) == "etcdctl member remove"]
    assert len(removes) == 1 and removes[0][-3:] == ["member", "remove", "10ff1e8664a58dc8"]
    assert removes[0][:9] == ["/usr/bin/kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", "-n", "kube-system",
                              "exec", "etcd-etcd-1", "--", "etcdctl"]
    assert "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt" in removes[0]
    assert node.warnings == ["remove_etcd_members: etcd-2 not removed, member 614a7d4d78766dc4 is healthy",
                             "remove_etcd_members: etcd-1 not removed, this node's own member"]
    assert check_node.mutating() == []


def test_etcdctl_on_the_node_is_preferred(node):
    stale_member_node(node)
    node.binaries.add("etcdctl")
    failed, result = run_module(kubeadm_join, dict(INIT, node_name="etcd-1", certificate_key=None, token=None,
                                                   remove_etcd_members=["etcd-0"]))
    assert not failed
    remove = [argv for argv in node.calls if command_key(argv) == "etcdctl member remove"][0]
    assert remove[0] == "/usr/bin/etcdctl" and remove[1] == "--endpoints=https://127.0.0.1:2379"
    assert {"ETCDCTL_API": "3"} in node.env


def test_stale_member_removal_refused_without_quorum(node):
    stale_member_node(node)
    node.answer("etcdctl endpoint health", 1, health_of([("https://etcd-2.etcd.ztissan:2379", True),
                                                        ("https://etcd-1.etcd.ztissan:2379", False)]))
    failed, result = run_module(kubeadm_join, dict(INIT, node_name="etcd-1", remove_etcd_members=["etcd-0"]))
    assert failed and "no quorum now (1 of 3" in result["msg"] and node.mutating() == []


def test_stale_member_removal_failures(node):
    stale_member_node(node)
    node.answer("etcdctl member remove", 1, "", "Error: etcdserver: unhealthy cluster")
    failed, result = run_module(kubeadm_join, dict(INIT, node_name="etcd-1", remove_etcd_members=["etcd-0"]))
    assert failed and "member remove 10ff1e8664a58dc8 (etcd-0) failed" in result["msg"]
    node.answer("etcdctl member list", 1, "", "Error: context deadline exceeded")
    failed, result = run_module(kubeadm_join, dict(INIT, node_name="etcd-1", remove_etcd_members=["etcd-0"]))
    assert failed and "could not list the etcd members" in result["msg"]


# --- joins ---------------------------------------------------------------------------------------------------------


def test_control_plane_join_and_its_check_mode(nodes):
    check_node, check, node, result = run_both(lambda: nodes(lambda fake: join_success(fake, True)), CONTROL_PLANE)
    assert result["actions"] == ["kubeadm join lb01.gpulab.lan:6443 as control plane", "node cp02 registered"]
    assert result["node_state"] == "control_plane" and result["node_state_before"] == "absent"
    join = [argv for argv in node.calls if command_key(argv) == "kubeadm join"][0]
    assert join[:3] == ["/usr/bin/kubeadm", "join", "--config"] and len(join) == 4
    (config,) = documents(node.configs[0][1])
    assert config["kind"] == "JoinConfiguration"
    assert config["controlPlane"] == {"localAPIEndpoint": {"advertiseAddress": "192.168.50.12", "bindPort": 6443},
                                      "certificateKey": CERT_KEY}
    assert config["discovery"]["bootstrapToken"]["caCertHashes"] == [CA_HASH]
    assert result["etcd_members"] == ["etcd-003", "etcd-002", "etcd-001"]
    assert result["ca_cert_hash"] == PUBKEYPIN and result["kubernetes_version"] == "v1.31.4"
    assert_configs_gone(node)
    assert_no_secret(node, result)
    assert check_node.keys() == ["kubeadm version"]


def test_worker_join_and_its_check_mode(nodes):
    _check_node, _check, node, result = run_both(lambda: nodes(lambda fake: join_success(fake, False)), WORKER)
    assert result["actions"] == ["kubeadm join lb01.gpulab.lan:6443 as worker", "node gpu07 registered"]
    (config,) = documents(node.configs[0][1])
    assert "controlPlane" not in config and config["nodeRegistration"] == {"name": "gpu07"}
    version = [argv for argv in node.calls if command_key(argv) == "kubectl version"][0]
    assert version[1:3] == ["--kubeconfig", "/etc/kubernetes/kubelet.conf"]
    assert "etcd_members" not in result
    registered = [argv for argv in node.calls if command_key(argv) == "kubectl node"][0]
    assert registered[1:] == ["--kubeconfig", "/etc/kubernetes/kubelet.conf", "get", "node", "gpu07", "-o", "name"]
    assert_no_secret(node, result)


def test_node_name_defaults_to_the_lowercased_hostname(node):
    join_success(node, False)
    failed, result = run_module(kubeadm_join, dict(WORKER, node_name=None))
    assert not failed and result["node_name"] == "gpu07.gpulab.lan"
    (config,) = documents(node.configs[0][1])
    assert "nodeRegistration" not in config  # kubeadm picks the hostname itself


def test_registration_timeout(node):
    join_success(node, False)
    node.answer("kubectl node", 1, "", 'Error from server (NotFound): nodes "gpu07" not found')
    failed, result = run_module(kubeadm_join, dict(WORKER, timeout=4))
    assert failed and "did not register within 4s" in result["msg"] and result["node_state"] == "worker"


def test_already_joined_worker_is_left_alone(node):
    node.worker_files()
    failed, result = run_module(kubeadm_join, WORKER)
    assert not failed and not result["changed"] and result["actions"] == []
    assert result["node_state_before"] == result["node_state"] == "worker"
    assert node.keys() == ["kubectl version"] and result["ca_cert_hash"] == PUBKEYPIN


def test_already_joined_control_plane_is_left_alone(node):
    node.control_plane_files()
    node.binaries.discard("kubectl")
    failed, result = run_module(kubeadm_join, CONTROL_PLANE)
    assert not failed and not result["changed"] and node.mutating() == []
    assert "kubernetes_version" not in result and "etcd_members" not in result  # no kubectl: facts it cannot read


def test_first_control_plane_asked_to_join_as_control_plane_is_left_alone(node):
    node.control_plane_files(first=True)
    node.answer("etcdctl member list", 1, "", "Error: context deadline exceeded")
    failed, result = run_module(kubeadm_join, CONTROL_PLANE, diff=True)
    assert not failed and not result["changed"] and "etcd_members" not in result
    assert result["diff"] == {"before": "node_state: initialised\n", "after": "node_state: initialised\n"}


@pytest.mark.parametrize("args, layout, words", [
    (WORKER, "control_plane", "already a control plane; joining it as worker"),
    (WORKER, "first", "already a control plane (the first one); joining it as worker"),
    (CONTROL_PLANE, "worker", "already a worker; joining it as control plane"),
])
def test_role_changes_need_a_reset_first(node, args, layout, words):
    if layout == "worker":
        node.worker_files()
    else:
        node.control_plane_files(first=layout == "first")
    failed, result = run_module(kubeadm_join, args)
    assert failed and words in result["msg"] and "state=reset first" in result["msg"] and node.calls == []


def test_half_joined_worker_is_reset_and_joined_again(nodes):
    def setup(fake):
        fake.write(kubeadm.CA_CRT, fixture("ca_pubkeypin_test_cert.pem"))
        fake.write(kubeadm.KUBELET_CONFIG)
        reset_answer(fake)
        join_success(fake, False)
    _check_node, check, node, result = run_both(lambda: nodes(setup), WORKER)
    assert result["actions"] == [
        "reset half-joined node (kubelet.conf missing while pki/ca.crt, /var/lib/kubelet/config.yaml exist)",
        "kubeadm join lb01.gpulab.lan:6443 as worker", "node gpu07 registered"]
    assert result["recovered"] and check["recovered"] and result["node_state_before"] == "half_joined"
    assert node.keys().index("kubeadm reset") < node.keys().index("kubeadm join")


@pytest.mark.parametrize("preflight", ["join_preflight_port10250_kubekey227.txt",
                                       "join_preflight_kubelet_conf_sealos2370.txt",
                                       "join_preflight_four_errors_k8s64171.txt"])
def test_join_failing_preflight_on_leftovers_is_reset_and_retried(node, preflight):
    node.answer("kubeadm join", 1, "", fixture(preflight),
                then=[(0, fixture("join_worker_v1.24_kubeadm574.txt"), "", lambda fake: fake.worker_files())])
    reset_answer(node)
    failed, result = run_module(kubeadm_join, WORKER)
    assert not failed and result["recovered"] and result["node_state"] == "worker"
    assert result["actions"][0] == "kubeadm join lb01.gpulab.lan:6443 as worker"
    assert result["actions"][1].startswith("reset after a preflight failure on leftovers of an earlier attempt (")
    assert result["actions"][2:] == ["kubeadm join lb01.gpulab.lan:6443 as worker, again", "node gpu07 registered"]
    assert node.keys().count("kubeadm join") == 2 and node.keys().count("kubeadm reset") == 1
    assert_configs_gone(node)


def test_join_failing_preflight_on_the_node_itself_is_not_reset(node):
    node.answer("kubeadm join", 1, "", fixture("join_preflight_swap_bridge_khtwod1.txt"))
    failed, result = run_module(kubeadm_join, WORKER)
    assert failed and "kubeadm reset" not in node.keys()
    assert result["msg"] == ("kubeadm join stopped in its preflight checks: FileContent--proc-sys-net-bridge-bridge-nf-"
                             "call-iptables (/proc/sys/net/bridge/bridge-nf-call-iptables does not exist), Swap "
                             "(running with swap on is not supported. Please disable swap)")


def test_join_failing_preflight_again_after_the_reset_fails(node):
    node.answer("kubeadm join", 1, "", fixture("join_preflight_port10250_kubekey227.txt"))
    reset_answer(node)
    failed, result = run_module(kubeadm_join, WORKER)
    assert failed and node.keys().count("kubeadm join") == 2 and "Port-10250" in result["msg"]
    assert result["recovered"] and result["changed"]


def test_failed_join_quotes_kubeadm_without_secrets(node):
    node.answer("kubeadm join", 1, "", fixture("token_create_print_join_command_kubeadm659.txt").replace(
        "5d2dc8.3e93f8449167639b", TOKEN) + "error execution phase kubelet-start: timed out")
    failed, result = run_module(kubeadm_join, WORKER)
    assert failed and "timed out" in result["msg"]
    assert_no_secret(node, result)
    assert "<redacted>" in result["output_tail"]


@pytest.mark.parametrize("output", ["etcd_too_many_learners_k8ssnap2813.txt",
                                    "join_cp_learner_not_in_sync_k8s122826_excerpt.txt"])
def test_half_joined_control_plane_with_a_stale_etcd_member_names_the_recovery(node, output):
    # the node of an aborted control-plane join: manifests of the control plane, no etcd.yaml
    node.write(kubeadm.KUBELET_CONF)
    node.write(kubeadm.ADMIN_CONF)
    for name in ("kube-apiserver.yaml", "kube-controller-manager.yaml", "kube-scheduler.yaml"):
        node.write(os.path.join(kubeadm.MANIFESTS_DIR, name))
    reset_answer(node, "reset_no_cluster_config_hetzner1043_head.txt")
    node.answer("kubeadm join", 1, "", fixture(output) + "error execution phase control-plane-join/etcd: ...")
    failed, result = run_module(kubeadm_join, CONTROL_PLANE)
    assert failed and result["recovered"] and result["node_state"] == "half_joined"
    assert result["node_state_before"] == "half_joined"
    assert "kubeadm join stopped in its etcd step" in result["msg"]
    assert "remove_etcd_members: [cp02]" in result["msg"] and "https://192.168.50.12:2380" in result["msg"]
    assert "kubeadm reset could not remove this node's own etcd member" in result["msg"]
    assert "throttle: 1" in result["msg"]


def test_control_plane_join_failing_in_etcd_on_a_fresh_node(node):
    node.answer("kubeadm join", 1, "", fixture("etcd_too_many_learners_talos5350.txt"))
    failed, result = run_module(kubeadm_join, dict(CONTROL_PLANE, advertise_address=None))
    assert failed and not result["recovered"] and "kubeadm reset could not" not in result["msg"]
    assert "its peer URL is on this node's address" in result["msg"] and "remove_etcd_members: [cp02]" in result["msg"]


def test_seams_of_the_module():
    assert kubeadm_join._now().tzinfo is not None
    assert kubeadm_join._hostname() == __import__("socket").gethostname()


def test_worker_join_failing_for_another_reason(node):
    node.answer("kubeadm join", 1, "", fixture("etcd_too_many_learners_talos5350.txt"))
    failed, result = run_module(kubeadm_join, WORKER)
    assert failed and result["msg"].startswith("kubeadm join failed (rc=1)")


def test_after_state_is_read_back_from_the_files(node):
    node.answer("kubeadm join", 0, fixture("join_worker_v1.24_kubeadm574.txt"),
                effect=lambda fake: fake.write(kubeadm.CA_CRT, fixture("ca_pubkeypin_test_cert.pem")))
    failed, result = run_module(kubeadm_join, WORKER)
    assert not failed and result["node_state"] == "half_joined"
    assert node.warnings[-1].startswith("after the run the node's files say half_joined")


# --- state=reset ---------------------------------------------------------------------------------------------------


def test_reset_of_a_worker_and_its_check_mode(nodes):
    def setup(fake):
        fake.worker_files()
        fake.cni("10-calico.conflist", "calico-kubeconfig")
        fake.write(os.path.join(kubeadm.CNI_CONF_DIR, "sub", "x.conf"))
        reset_answer(fake)
    check_node, check, node, result = run_both(lambda: nodes(setup), RESET)
    assert result["actions"] == ["kubeadm reset", "remove the CNI configuration in /etc/cni/net.d (10-calico.conflist, "
                                                  "calico-kubeconfig, sub)"]
    assert result["node_state"] == "absent" and "control_plane_endpoint" not in result
    assert list((node.root / "etc/cni/net.d").iterdir()) == []
    assert check_node.exists(kubeadm.KUBELET_CONF) and check_node.keys() == []


def test_reset_of_an_absent_node_does_nothing(node):
    failed, result = run_module(kubeadm_join, RESET)
    assert not failed and not result["changed"] and node.calls == []


def test_failed_reset(node):
    node.worker_files()
    node.answer("kubeadm reset", 1, "", "error: could not stop the kubelet")
    failed, result = run_module(kubeadm_join, RESET)
    assert failed and "kubeadm reset failed" in result["msg"]


# --- bad input -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, option, words", [
    (dict(INIT, control_plane_endpoint="lb01.gpulab.lan"), "control_plane_endpoint", "with a port"),
    (dict(WORKER, control_plane_endpoint="https://lb01.gpulab.lan:6443"), "control_plane_endpoint", "scheme"),
    (dict(INIT, kubernetes_version="1.31.4"), "kubernetes_version", "vMAJOR.MINOR.PATCH"),
    (dict(INIT, kubernetes_version="v1.31"), "kubernetes_version", "vMAJOR.MINOR.PATCH"),
    (dict(INIT, pod_subnet="10.96.0.0/16"), "pod_subnet", "overlaps service_subnet 10.96.0.0/12"),
    (dict(INIT, service_subnet="10.244.128.0/20"), "pod_subnet", "overlaps service_subnet 10.244.128.0/20"),
    (dict(WORKER, token="not-a-token"), "token", "bootstrap token"),
    (dict(CONTROL_PLANE, certificate_key="abc"), "certificate_key", "64 hexadecimal"),
    (dict(WORKER, ca_cert_hashes=["4c5a0e3b"]), "ca_cert_hashes", "sha256:"),
    (dict(WORKER, timeout=0), "timeout", "positive"),
    (dict(INIT, token_ttl="30 minutes"), "token_ttl", "Go duration"),
])
def test_bad_input_is_refused_before_any_change(node, args, option, words):
    for check_mode in (False, True):
        failed, result = run_module(kubeadm_join, args, check_mode=check_mode)
        assert failed and result["option"] == option and words in result["msg"] and not result["changed"]
        assert option in result["msg"] and "nothing was changed" in result["msg"]
    assert node.calls == []
    assert "not-a-token" not in json.dumps(result)


def test_state_is_required(module_harness):
    failed, result = run_module(kubeadm_join, {"control_plane_endpoint": ENDPOINT})
    assert failed and "missing required arguments: state" in result["msg"]


@pytest.mark.parametrize("base, missing", [
    (INIT, ["control_plane_endpoint"]),
    (INIT, ["kubernetes_version", "pod_subnet"]),
    (CONTROL_PLANE, ["certificate_key"]),
    (CONTROL_PLANE, ["token", "ca_cert_hashes"]),
    (WORKER, ["token"]),
    (WORKER, ["ca_cert_hashes"]),
])
def test_state_requires_its_material(module_harness, base, missing):
    args = {key: value for key, value in base.items() if key not in missing}
    failed, result = run_module(kubeadm_join, args)
    assert failed
    assert "state is %s but all of the following are missing: %s" % (base["state"], ", ".join(missing)) in result["msg"]


@pytest.mark.parametrize("base", [CONTROL_PLANE, WORKER, RESET])
def test_remove_etcd_members_outside_init_is_refused(module_harness, base):
    failed, result = run_module(kubeadm_join, dict(base, remove_etcd_members=["cp03"]), check_mode=True)
    assert failed and not result["changed"]
    assert "remove_etcd_members is only valid with state=init" in result["msg"]


def test_secrets_are_no_log_and_nothing_else_is():
    spec = kubeadm_join.argument_spec()
    assert {name for name, option in spec.items() if option.get("no_log")} == {"token", "certificate_key"}
    assert spec["token_ttl"]["no_log"] is False


def test_no_log_hides_secrets_in_real_module_output(capsys, tmp_path, monkeypatch):
    """Without the harness, the real fail_json (no kubeadm on this machine) must not print the secrets."""
    from .utils import set_module_args

    monkeypatch.setattr(kubeadm, "ROOT", str(tmp_path))
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, *a, **k: None)
    ctx = set_module_args(CONTROL_PLANE)
    with pytest.raises(SystemExit):
        if ctx is not None:
            with ctx:
                kubeadm_join.main()
        else:  # pragma: no cover
            kubeadm_join.main()
    out = capsys.readouterr().out
    assert "kubeadm is not installed" in out
    assert TOKEN not in out and CERT_KEY not in out


@pytest.mark.parametrize("args, after", [(INIT, "initialised"), (CONTROL_PLANE, "control_plane"), (WORKER, "worker")])
def test_check_mode_on_a_fresh_node_before_kubeadm_is_installed_predicts_the_change(node, args, after):
    node.binaries.discard("kubeadm")
    failed, result = run_module(kubeadm_join, args, check_mode=True)
    assert not failed and result["changed"] is True and node.calls == []
    assert result["node_state_before"] == "absent" and result["node_state"] == after
    assert "kubeadm is not installed yet" in result["msg"]
    assert_no_secret(node, result)
