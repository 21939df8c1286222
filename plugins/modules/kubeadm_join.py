#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: kubeadm_join
short_description: The kubeadm lifecycle of one node; init, control-plane join, worker join, reset
version_added: 0.1.0
description:
  - Brings one node to the kubeadm state given by O(state), idempotently, and reports the node's state before and after.
  - V(init) on the first control plane runs C(kubeadm init --upload-certs) from a kubeadm configuration the module
    generates (C(ClusterConfiguration) with C(controlPlaneEndpoint), pod and service subnets, cluster name, the
    endpoint's host and O(cert_sans) as API server certificate SANs; C(KubeletConfiguration) with the V(systemd)
    cgroup driver and C(failSwapOn)). An initialised node (static pod manifests, C(admin.conf), an API that answers)
    is detected and never initialised again.
  - V(init) is also the step that makes join material, on every run where it is given, on a node already initialised
    too; O(token) becomes a bootstrap token valid for O(token_ttl), O(certificate_key) encrypts a fresh upload of the
    control-plane certificates (kubeadm deletes uploaded certificates after two hours), and the CA certificate hash
    is returned in RV(ca_cert_hash).
  - V(control_plane) and V(worker) join the node through O(control_plane_endpoint) with that material. A node already
    joined in that role is left alone. A half-joined node (C(kubelet.conf) missing, a failed preflight, its own stale
    etcd member) is recovered; the module resets it, removes its stale etcd member when it can, and joins it again.
  - V(reset) runs C(kubeadm reset) (which removes the node's own etcd member while the cluster answers) and removes
    the CNI configuration C(kubeadm reset) leaves behind.
  - Secrets (O(token), O(certificate_key)) are C(no_log) options, never written to a file readable by others, never
    put on a command line, and never returned. The join command is never built as a string.
options:
  state:
    description:
      - V(init) initialises the cluster on this node, the first control plane, or refreshes join material on it when it
        is already initialised.
      - V(control_plane) joins this node as another control plane. Run these one node at a time (the task keyword C(throttle) set to 1,
        or C(serial) set to 1 on the play); etcd admits one learner member at a time.
      - V(worker) joins this node as a worker. Workers may join in parallel.
      - V(reset) removes this node from kubeadm's care.
    type: str
    choices: [init, control_plane, worker, reset]
    required: true
  control_plane_endpoint:
    description:
      - The cluster's stable API endpoint, C(host:port), that of the load balancer (or its virtual IP), never one
        control plane.
      - Required unless O(state=reset).
    type: str
  kubernetes_version:
    description:
      - The Kubernetes version to initialise, for example V(v1.31.4). It must be the version of the kubeadm installed.
      - Required with O(state=init).
    type: str
  cluster_name:
    description:
      - Cluster name written to the C(ClusterConfiguration) (and so to the kubeconfig files), with O(state=init).
    type: str
    default: kubernetes
  pod_subnet:
    description:
      - Pod network CIDR, the CNI's (Calico's) IP pool, with O(state=init). It must overlap neither the node network
        nor O(service_subnet).
      - Required with O(state=init).
    type: str
  service_subnet:
    description:
      - Service network CIDR, with O(state=init).
    type: str
    default: 10.96.0.0/12
  service_dns_domain:
    description:
      - Cluster DNS domain, with O(state=init).
    type: str
    default: cluster.local
  cert_sans:
    description:
      - Extra subject alternative names for the API server certificate, with O(state=init). The host of
        O(control_plane_endpoint) is always added.
    type: list
    elements: str
  advertise_address:
    description:
      - The address this control plane's API server advertises, with O(state=init) or O(state=control_plane).
      - When omitted, kubeadm's choice (the address of the default route's interface).
    type: str
  bind_port:
    description:
      - Port this control plane's API server listens on, with O(state=init) or O(state=control_plane).
    type: int
    default: 6443
  node_name:
    description:
      - The Kubernetes node name. When omitted, the node's hostname as kubeadm reads it.
    type: str
  cri_socket:
    description:
      - The container runtime's CRI socket, for example V(unix:///run/containerd/containerd.sock) or
        V(unix:///var/run/crio/crio.sock). When omitted, kubeadm detects it.
    type: str
  image_repository:
    description:
      - Registry the control-plane images are pulled from instead of V(registry.k8s.io), with O(state=init) (an
        in-cluster mirror for sites without internet).
    type: str
  fail_swap_on:
    description:
      - C(failSwapOn) of the kubelet configuration, with O(state=init); the kubelet refuses to start while swap is on.
    type: bool
    default: true
  ignore_preflight_errors:
    description:
      - kubeadm preflight checks whose errors are ignored, for example V(NumCPU) on a small lab node. Prefer fixing the
        node.
    type: list
    elements: str
  token:
    description:
      - A bootstrap token, C([a-z0-9]{6}.[a-z0-9]{16}), generated fresh for the run (see the examples).
      - With O(state=init) it is created on the cluster (if it does not exist yet) with a lifetime of O(token_ttl).
        With O(state=control_plane) or O(state=worker) the node joins with it (required).
    type: str
  token_ttl:
    description:
      - Lifetime of the bootstrap token created with O(state=init), as a Go duration.
    type: str
    default: 30m
  certificate_key:
    description:
      - A fresh 32-byte key, as 64 hexadecimal characters, that encrypts the control-plane certificates uploaded to the
        cluster.
      - With O(state=init) the certificates are uploaded again with it. With O(state=control_plane) the node downloads
        them with it (required).
    type: str
  ca_cert_hashes:
    description:
      - Public key pins of the cluster CA, C(sha256:<hex>), as RV(ca_cert_hash) of the V(init) run returns.
      - Required with O(state=control_plane) and O(state=worker).
    type: list
    elements: str
  remove_etcd_members:
    description:
      - With O(state=init), names of control-plane nodes whose etcd member is removed through this healthy control
        plane, to recover a control plane whose join was aborted.
      - A listed member is removed only when it is not healthy; never this node's own member, never a healthy member,
        and never when removing it would leave etcd without quorum.
      - A member that never started has no name in etcd; it is matched by the host of its peer URL among the
        addresses of the Kubernetes node of that name (or the listed value itself, when it is an address).
      - Refused with any other O(state).
    type: list
    elements: str
  timeout:
    description:
      - Seconds to wait for each step to finish (kubeadm, the API answering, the kubelet registering the node).
    type: int
    default: 300
notes:
  - Nodes are NotReady until the CNI is installed; the module waits for the node to register, not for it to be
    Ready. The C(kubernetes) role checks that every expected node is Ready at the end and fails otherwise.
  - A half-joined control plane whose stale etcd member cannot be removed from the node itself makes the module fail
    with the member named and the recovery step, O(state=init) on a healthy control plane with
    O(remove_etcd_members).
  - Check mode reads the node and the cluster, and reports the state and the actions a real run would take, without
    touching either. Diff mode shows the node's kubeadm state before and after.
  - Stacked etcd only (etcd as static pods on the control planes).
  - Requires kubeadm 1.31 or later; the configuration is C(kubeadm.k8s.io/v1beta4) and
    C(kubelet.config.k8s.io/v1beta1), written as JSON documents separated by C(---) lines (kubeadm reads its
    configuration file as YAML, and JSON is YAML), so the node needs no YAML library.
  - The secrets reach kubeadm only in a configuration file (mode 0600 in a private temporary folder, removed
    afterwards); C(kubeadm init --config), C(kubeadm token create --config),
    C(kubeadm init phase upload-certs --upload-certs --config) and C(kubeadm join --config). Nothing kubeadm prints
    is returned; what a failure message quotes has tokens and keys replaced by C(<redacted>).
  - RV(ca_cert_hash) is computed in Python from C(/etc/kubernetes/pki/ca.crt) (SHA-256 of the certificate's DER
    SubjectPublicKeyInfo, found with a minimal DER walk), as kubeadm pins a CA; no openssl is run.
  - The node's state comes from its files; C(kubelet.conf) and all four control-plane static pod manifests make a
    control plane, C(super-admin.conf) (written by C(kubeadm init) only) marks the first one, C(kubelet.conf)
    without manifests a worker; kubeadm files without C(kubelet.conf), or an incomplete set of manifests, a
    half-joined node.
  - A join that stops in kubeadm's preflight only on what an earlier attempt left behind (C(FileAvailable--etc-kubernetes-*),
    the manifests folder, C(/var/lib/etcd), the ports of the kubelet, etcd and the control plane) is recovered with
    C(kubeadm reset) and one more join. Check mode cannot foresee such a preflight failure.
  - etcd is read and changed with C(etcdctl) on the node when it is installed, else with C(etcdctl) inside the
    node's etcd static pod (C(kubectl exec)), using the C(healthcheck-client) certificate of C(/etc/kubernetes/pki/etcd).
  - O(timeout) also becomes kubeadm's own C(timeouts) in the Init and Join configurations.
seealso:
  - name: kubeadm join
    description: What kubeadm does when a node joins, and how discovery with CA pinning works.
    link: https://kubernetes.io/docs/reference/setup-tools/kubeadm/kubeadm-join/
  - name: Creating highly available clusters with kubeadm
    description: The stacked-etcd topology this module builds.
    link: https://kubernetes.io/docs/setup/production-environment/tools/kubeadm/high-availability/
author:
  - gpulab.cluster developers (@gpulab)
requirements:
  - kubeadm 1.31 or later, kubelet and kubectl on the node (the C(kubernetes) role installs them)
extends_documentation_fragment:
  - gpulab.cluster.attributes
  - gpulab.cluster.attributes.FULL
attributes:
  diff_mode:
    support: partial
    details: Shows the node's kubeadm state before and after (for example V(absent) and V(worker)), not the files
      kubeadm writes.
"""

EXAMPLES = r"""
- name: Make fresh join material for this run on the controller (never logged)
  ansible.builtin.set_fact:
    gpulab_join_token: >-
      {{ lookup('ansible.builtin.password', '/dev/null', chars=['ascii_lowercase', 'digits'], length=6) }}.{{
      lookup('ansible.builtin.password', '/dev/null', chars=['ascii_lowercase', 'digits'], length=16) }}
    gpulab_certificate_key: "{{ lookup('ansible.builtin.password', '/dev/null', chars=['digits', 'abcdef'], length=64) }}"
  no_log: true
  run_once: true
  delegate_to: localhost

- name: Initialise the cluster on cp01, or refresh the join material there
  gpulab.cluster.kubeadm_join:
    state: init
    control_plane_endpoint: lb01.gpulab.lan:6443
    kubernetes_version: v1.31.4
    cluster_name: gpulab
    pod_subnet: 10.244.0.0/16
    service_subnet: 10.96.0.0/12
    cert_sans: [lb01.gpulab.lan, 192.168.50.10]
    advertise_address: 192.168.50.11
    cri_socket: unix:///run/containerd/containerd.sock
    token: "{{ gpulab_join_token }}"
    certificate_key: "{{ gpulab_certificate_key }}"
  register: gpulab_init
  run_once: true
  delegate_to: cp01

- name: Join cp02 and cp03, one at a time
  gpulab.cluster.kubeadm_join:
    state: control_plane
    control_plane_endpoint: lb01.gpulab.lan:6443
    advertise_address: "{{ ansible_host }}"
    token: "{{ gpulab_join_token }}"
    certificate_key: "{{ gpulab_certificate_key }}"
    ca_cert_hashes: ["{{ gpulab_init.ca_cert_hash }}"]
  throttle: 1
  when: inventory_hostname in groups['control_plane'] and inventory_hostname != 'cp01'

- name: Join the fifteen GPU workers, five at a time
  gpulab.cluster.kubeadm_join:
    state: worker
    control_plane_endpoint: lb01.gpulab.lan:6443
    token: "{{ gpulab_join_token }}"
    ca_cert_hashes: ["{{ gpulab_init.ca_cert_hash }}"]
  throttle: 5
  when: inventory_hostname in groups['workers']

- name: Remove the stale etcd member of cp03 (aborted join) through cp01
  gpulab.cluster.kubeadm_join:
    state: init
    control_plane_endpoint: lb01.gpulab.lan:6443
    kubernetes_version: v1.31.4
    cluster_name: gpulab
    pod_subnet: 10.244.0.0/16
    remove_etcd_members: [cp03]
  run_once: true
  delegate_to: cp01

- name: Reset gpu07 before reinstalling it
  gpulab.cluster.kubeadm_join:
    state: reset
    cri_socket: unix:///run/containerd/containerd.sock
  when: inventory_hostname == 'gpu07'
"""

RETURN = r"""
node_name:
  description: The node's Kubernetes name.
  returned: always
  type: str
  sample: gpu07
node_state_before:
  description:
    - The node's kubeadm state found before the run; V(absent) (no kubeadm state), V(initialised) (the first control
      plane), V(control_plane), V(worker) or V(half_joined).
  returned: always
  type: str
  sample: absent
node_state:
  description: The node's kubeadm state after the run (in check mode, the state a real run would leave), with the
    values of RV(node_state_before).
  returned: always
  type: str
  sample: worker
actions:
  description: What the run did (in check mode, would do), in order, as readable sentences without secrets.
  returned: always
  type: list
  elements: str
  sample:
    - reset half-joined node (kubelet.conf missing)
    - kubeadm join lb01.gpulab.lan:6443 as worker
    - node gpu07 registered
recovered:
  description: Whether a half-joined node was reset before joining it again.
  returned: always
  type: bool
  sample: false
control_plane_endpoint:
  description: The cluster endpoint the node uses.
  returned: unless O(state=reset)
  type: str
  sample: lb01.gpulab.lan:6443
ca_cert_hash:
  description: The public key pin of the cluster CA, for O(ca_cert_hashes) of the joins. Not a secret.
  returned: when the node holds the cluster CA certificate
  type: str
  sample: sha256:4c5a0e3bd1c8a3cbb2f3b4b0a0c7e9b1d7f0a36e3a2e8c1d9b6f5e4d3c2b1a09
kubernetes_version:
  description: The cluster's Kubernetes version.
  returned: when the node is part of a cluster after the run
  type: str
  sample: v1.31.4
etcd_members:
  description: Names of the etcd members after the run.
  returned: with O(state=init) and O(state=control_plane)
  type: list
  elements: str
  sample: [cp01, cp02, cp03]
removed_etcd_members:
  description: Names of the stale etcd members removed.
  returned: with O(state=init)
  type: list
  elements: str
  sample: [cp03]
token_expires:
  description: When the bootstrap token of O(token) expires (UTC, RFC 3339). The token itself is never returned.
  returned: with O(state=init) when O(token) is given
  type: str
  sample: "2026-11-23T19:02:11Z"
certificate_key_expires:
  description: When the uploaded control-plane certificates are deleted (UTC, RFC 3339). The key is never returned.
  returned: with O(state=init) when O(certificate_key) is given
  type: str
  sample: "2026-11-23T20:32:11Z"
output_tail:
  description: The last lines kubeadm printed, with bootstrap tokens and certificate keys replaced by C(<redacted>).
  returned: when a kubeadm step failed
  type: str
  sample: "[ERROR Port-10250]: Port 10250 is in use"
option:
  description: The option a refused value belongs to.
  returned: when an option value is refused
  type: str
  sample: control_plane_endpoint
"""


import datetime
import os
import shutil
import socket
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpulab.cluster.plugins.module_utils import _kubeadm as kubeadm

POLL_SECONDS = 2
ETCD_ENDPOINT = "https://127.0.0.1:2379"

# Seams for the unit tests (a fake clock, a fixed hostname).
_sleep = time.sleep
_monotonic = time.monotonic


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _hostname():
    return socket.gethostname()


def argument_spec():
    """The module's argument spec (the 0.1.0 interface, unchanged)."""
    return dict(
        state=dict(type="str", required=True, choices=["init", "control_plane", "worker", "reset"]),
        control_plane_endpoint=dict(type="str"),
        kubernetes_version=dict(type="str"),
        cluster_name=dict(type="str", default="kubernetes"),
        pod_subnet=dict(type="str"),
        service_subnet=dict(type="str", default="10.96.0.0/12"),
        service_dns_domain=dict(type="str", default="cluster.local"),
        cert_sans=dict(type="list", elements="str"),
        advertise_address=dict(type="str"),
        bind_port=dict(type="int", default=6443),
        node_name=dict(type="str"),
        cri_socket=dict(type="str"),
        image_repository=dict(type="str"),
        fail_swap_on=dict(type="bool", default=True),
        ignore_preflight_errors=dict(type="list", elements="str"),
        token=dict(type="str", no_log=True),
        token_ttl=dict(type="str", default="30m", no_log=False),
        certificate_key=dict(type="str", no_log=True),
        ca_cert_hashes=dict(type="list", elements="str"),
        remove_etcd_members=dict(type="list", elements="str"),
        timeout=dict(type="int", default=300),
    )


MODULE_RULES = dict(
    required_if=[
        ("state", "init", ("control_plane_endpoint", "kubernetes_version", "pod_subnet")),
        ("state", "control_plane", ("control_plane_endpoint", "token", "certificate_key", "ca_cert_hashes")),
        ("state", "worker", ("control_plane_endpoint", "token", "ca_cert_hashes")),
    ],
)


def build_module():
    """AnsibleModule with the full argument validation of this module."""
    return AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True, **MODULE_RULES)


def check_arguments(module):
    """Rules between option values that required_if and friends cannot state; refused before anything runs."""
    params = module.params
    if params["remove_etcd_members"] and params["state"] != "init":
        module.fail_json(
            msg="remove_etcd_members is only valid with state=init (run on a healthy control plane such as the first "
            "one), not with state=%s" % params["state"],
            changed=False,
        )
    try:
        kubeadm.check_params(params)
    except kubeadm.OptionError as exc:
        module.fail_json(msg="%s; nothing was changed" % exc, option=exc.option, changed=False)


# What check mode predicts for a fresh node whose kubeadm the same run installs.
CHECK_MODE_AFTER = dict(init="initialised", control_plane="control_plane", worker="worker")
CHECK_MODE_ACTION = dict(init="kubeadm init", control_plane="kubeadm join as control plane", worker="kubeadm join as worker")


class KubeadmNode(object):
    """One run of the module on one node."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.state = self.params["state"]
        self.check_mode = module.check_mode
        self.secrets = [self.params.get("token"), self.params.get("certificate_key")]
        self.node_name = self.params["node_name"] or _hostname().strip().lower()
        self.actions = []
        self.changed = False
        self.recovered = False
        self.reset_reports = []
        self.before = None
        self.reason = None
        self.result = {}
        self._bins = {}

    # --- plumbing --------------------------------------------------------------------------------------------

    def act(self, sentence):
        """Record what the run does (or, in check mode, would do); every action is a change."""
        self.actions.append(sentence)
        self.changed = True

    def base_result(self, after):
        result = dict(
            changed=self.changed,
            node_name=self.node_name,
            node_state_before=self.before,
            node_state=after,
            actions=list(self.actions),
            recovered=self.recovered,
        )
        if self.state != "reset":
            result["control_plane_endpoint"] = self.params["control_plane_endpoint"]
        if self.module._diff:
            result["diff"] = dict(before="node_state: %s\n" % self.before, after="node_state: %s\n" % after)
        result.update(self.result)
        return result

    def fail(self, msg, **extra):
        result = self.base_result(extra.pop("node_state", self.before))
        result.update(extra)
        result.pop("changed", None)
        self.module.fail_json(msg=kubeadm.redact(msg, self.secrets), changed=self.changed, **result)

    def binary(self, name):
        if name not in self._bins:
            path = self.module.get_bin_path(name, required=False)
            if not path and self.module.check_mode and self.before == "absent" and self.state in CHECK_MODE_AFTER:
                # A fresh node in check mode: the packages come with the same run (role kubernetes_packages).
                self.act("%s once %s is installed (the same run installs it)" % (CHECK_MODE_ACTION[self.state], name))
                self.module.exit_json(msg="%s is not installed yet; check mode predicts: %s" % (name, self.actions[-1]),
                                      **self.base_result(CHECK_MODE_AFTER[self.state]))
            if not path:
                self.fail("%s is not installed on this node (the kubernetes role installs kubeadm, kubelet and "
                          "kubectl)" % name)
            self._bins[name] = path
        return self._bins[name]

    def run(self, argv, **kwargs):
        rc, out, err = self.module.run_command(argv, **kwargs)
        return rc, out or "", err or ""

    def with_config(self, documents, command):
        """Run ``command(path)`` with the documents written to a private file (mode 0600), removed afterwards."""
        folder = tempfile.mkdtemp(prefix="gpulab-kubeadm-")
        path = os.path.join(folder, "kubeadm-config.json")
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.fchmod(descriptor, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(kubeadm.render(documents))
            return command(path)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def wait_until(self, probe):
        deadline = _monotonic() + self.params["timeout"]
        while True:
            if probe():
                return True
            if _monotonic() >= deadline:
                return False
            _sleep(POLL_SECONDS)

    def kubeadm_failure(self, step, rc, out, err):
        """Fail with what kubeadm said, secrets replaced."""
        text = out + "\n" + err
        if kubeadm.preflight_failed(text):
            checks = ", ".join("%s (%s)" % pair for pair in kubeadm.preflight_errors(text)) or "see the output"
            self.fail("%s stopped in its preflight checks: %s" % (step, checks),
                      output_tail=kubeadm.redact(kubeadm.tail(text), self.secrets))
        self.fail("%s failed (rc=%s): %s" % (step, rc, kubeadm.redact(kubeadm.tail(text, 8), self.secrets)),
                  output_tail=kubeadm.redact(kubeadm.tail(text), self.secrets))

    # --- reading the node and the cluster (read-only, also in check mode) --------------------------------------

    def checked_kubeadm(self, require_version=None):
        """The kubeadm binary, once its version is known to read v1beta4 (and to be ``require_version``)."""
        path = self.binary("kubeadm")
        rc, out, err = self.run([path, "version", "-o", "yaml"])
        version = kubeadm.kubeadm_version(out)
        numbers = kubeadm.version_tuple(version)
        if rc != 0 or numbers is None:
            self.fail("could not read the kubeadm version (kubeadm version -o yaml, rc=%s): %s"
                      % (rc, kubeadm.tail(out + err, 5)))
        if numbers[:2] < kubeadm.MIN_KUBEADM:
            self.fail("kubeadm %s is older than 1.31; this module writes kubeadm.k8s.io/v1beta4 configuration, which "
                      "kubeadm reads from 1.31 on" % version)
        if require_version and version != require_version:
            self.fail("kubernetes_version %s differs from the installed kubeadm %s; install kubeadm %s or set "
                      "kubernetes_version to %s" % (require_version, version, require_version, version),
                      option="kubernetes_version")
        return path

    def api_ready(self, kubeconfig):
        kubectl = self.binary("kubectl")
        return self.run([kubectl, "--kubeconfig", kubeconfig, "get", "--raw", "/readyz"])[0] == 0

    def cluster_version(self, kubeconfig):
        kubectl = self.module.get_bin_path("kubectl", required=False)
        if not kubectl or not os.path.exists(kubeadm.host_path(kubeconfig)):
            return None
        return kubeadm.server_version(self.run([kubectl, "--kubeconfig", kubeconfig, "version", "-o", "json"])[1])

    def node_registered(self):
        kubectl = self.binary("kubectl")
        argv = [kubectl, "--kubeconfig", kubeadm.KUBELET_CONF, "get", "node", self.node_name, "-o", "name"]
        return self.run(argv)[0] == 0

    def node_addresses(self, name):
        kubectl = self.binary("kubectl")
        rc, out, _err = self.run([kubectl, "--kubeconfig", kubeadm.ADMIN_CONF, "get", "node", name, "-o",
                                  "jsonpath={.status.addresses[*].address}"])
        return out.split() if rc == 0 else []

    def etcdctl(self, args):
        """etcdctl against this control plane's etcd: on the node if installed, else inside its etcd pod."""
        flags = ["--endpoints=%s" % ETCD_ENDPOINT,
                 "--cacert=%s/ca.crt" % kubeadm.ETCD_PKI,
                 "--cert=%s/healthcheck-client.crt" % kubeadm.ETCD_PKI,
                 "--key=%s/healthcheck-client.key" % kubeadm.ETCD_PKI]
        local = self.module.get_bin_path("etcdctl", required=False)
        if local:
            return self.run([local] + flags + args, environ_update={"ETCDCTL_API": "3"})
        kubectl = self.binary("kubectl")
        return self.run([kubectl, "--kubeconfig", kubeadm.ADMIN_CONF, "-n", "kube-system", "exec",
                         "etcd-%s" % self.node_name, "--", "etcdctl"] + flags + args)

    def etcd_members(self):
        rc, out, err = self.etcdctl(["member", "list"])
        if rc != 0:
            return None
        return kubeadm.member_list(out)

    def cluster_facts(self, kubeconfig, control_plane):
        """ca_cert_hash, kubernetes_version and etcd_members, as far as the node can tell (never fails)."""
        try:
            with open(kubeadm.host_path(kubeadm.CA_CRT)) as handle:
                self.result["ca_cert_hash"] = kubeadm.ca_cert_hash(handle.read())
        except (IOError, OSError, ValueError):
            pass
        version = self.cluster_version(kubeconfig)
        if version:
            self.result["kubernetes_version"] = version
        reachable = self.module.get_bin_path("etcdctl", required=False) or self.module.get_bin_path("kubectl", required=False)
        if control_plane and reachable and os.path.exists(kubeadm.host_path(kubeadm.ADMIN_CONF)):
            members = self.etcd_members()
            if members is not None:
                self.result["etcd_members"] = [member["name"] or "(unstarted %s)" % member["id"] for member in members]

    def cni_files(self):
        folder = kubeadm.host_path(kubeadm.CNI_CONF_DIR)
        return sorted(os.listdir(folder)) if os.path.isdir(folder) else []

    # --- changing the node ----------------------------------------------------------------------------------------

    def reset(self, sentence):
        """`kubeadm reset`, then the CNI configuration it leaves behind."""
        path = self.binary("kubeadm")
        cni = self.cni_files()
        self.act(sentence)
        if cni:
            self.act("remove the CNI configuration in %s (%s)" % (kubeadm.CNI_CONF_DIR, ", ".join(cni)))
        if self.check_mode:
            return
        argv = [path, "reset", "--force"]
        if self.params.get("cri_socket"):
            argv += ["--cri-socket", self.params["cri_socket"]]
        rc, out, err = self.run(argv)
        if rc != 0:
            self.kubeadm_failure("kubeadm reset", rc, out, err)
        self.reset_reports.append(kubeadm.reset_report(out + "\n" + err))
        for name in cni:
            target = os.path.join(kubeadm.host_path(kubeadm.CNI_CONF_DIR), name)
            if os.path.isdir(target) and not os.path.islink(target):
                shutil.rmtree(target)
            elif os.path.lexists(target):
                os.unlink(target)

    def expiry(self, seconds):
        return kubeadm.utc_text(_now() + datetime.timedelta(seconds=seconds))

    def token_expiry(self):
        seconds = kubeadm.duration_seconds(self.params["token_ttl"])
        return self.expiry(seconds) if seconds else "never"

    def ensure_token(self, path):
        """The caller's bootstrap token exists on the cluster (created from a config file when it does not)."""
        token = self.params["token"]
        rc, out, err = self.run([path, "token", "list"])
        if rc != 0:
            self.kubeadm_failure("kubeadm token list", rc, out, err)
        tokens = kubeadm.token_list(out)
        if token in tokens:
            self.result["token_expires"] = tokens[token] or "never"
            return
        token_id = token.split(".")[0]
        if any(known.split(".")[0] == token_id for known in tokens):
            self.fail("a bootstrap token with the id %s already exists with another secret; generate a fresh token"
                      % token_id, option="token")
        self.act("bootstrap token created (ttl %s)" % self.params["token_ttl"])
        self.result["token_expires"] = self.token_expiry()
        if self.check_mode:
            return
        rc, out, err = self.with_config(kubeadm.token_documents(self.params),
                                        lambda config: self.run([path, "token", "create", "--config", config]))
        if rc != 0:
            self.kubeadm_failure("kubeadm token create", rc, out, err)

    def upload_certs(self, path):
        self.act("control-plane certificates uploaded again (kubeadm deletes them after 2h)")
        self.result["certificate_key_expires"] = self.expiry(kubeadm.UPLOADED_CERTS_TTL.total_seconds())
        if self.check_mode:
            return
        rc, out, err = self.with_config(
            kubeadm.upload_certs_documents(self.params),
            lambda config: self.run([path, "init", "phase", "upload-certs", "--upload-certs", "--config", config]))
        if rc != 0:
            self.kubeadm_failure("kubeadm init phase upload-certs", rc, out, err)

    def remove_stale_members(self):
        """Remove the unhealthy etcd members of remove_etcd_members through this control plane."""
        wanted = self.params["remove_etcd_members"]
        members = self.etcd_members()
        if members is None:
            self.fail("could not list the etcd members through this control plane (etcdctl member list)")
        rc, out, err = self.etcdctl(["endpoint", "health", "--cluster"])  # rc 1 when a member is unhealthy
        health = kubeadm.endpoint_health(out + "\n" + err)
        addresses = dict((name, self.node_addresses(name)) for name in wanted if name != self.node_name)
        remove, skipped, refused = kubeadm.removal_plan(members, health, wanted, self.node_name, addresses)
        if refused:
            self.fail("etcd members not removed: %s" % "; ".join("%s: %s" % pair for pair in refused))
        for name, reason in skipped:
            if reason != "no etcd member":
                self.module.warn("remove_etcd_members: %s not removed, %s" % (name, reason))
        removed = []
        for name, member in remove:
            kind = "learner" if member["is_learner"] else "voting member"
            started = member["status"] if member["status"] else "unknown status"
            self.act("remove stale etcd member %s (id %s, %s, %s)" % (name, member["id"], kind, started))
            if not self.check_mode:
                rc, out, err = self.etcdctl(["member", "remove", member["id"]])
                if rc != 0:
                    self.fail("etcdctl member remove %s (%s) failed: %s" % (member["id"], name, kubeadm.tail(out + err, 5)))
            removed.append(name)
        self.result["removed_etcd_members"] = removed

    def join(self, path, control_plane):
        config = kubeadm.join_configuration(self.params, control_plane)
        return self.with_config([config], lambda name: self.run([path, "join", "--config", name]))

    # --- the states ---------------------------------------------------------------------------------------------

    def do_init(self, decision):
        params = self.params
        path = self.checked_kubeadm(require_version=params["kubernetes_version"])
        if decision == "reset_then_init":
            self.reset("reset half-initialised node (%s)" % self.reason)
            self.recovered = True
        self.act("kubeadm init (cluster %s, endpoint %s, Kubernetes %s)"
                 % (params["cluster_name"], params["control_plane_endpoint"], params["kubernetes_version"]))
        if params.get("token"):
            self.act("bootstrap token created (ttl %s)" % params["token_ttl"])
            self.result["token_expires"] = self.token_expiry()
        if params.get("certificate_key"):
            self.act("control-plane certificates uploaded (kubeadm deletes them after 2h)")
            self.result["certificate_key_expires"] = self.expiry(kubeadm.UPLOADED_CERTS_TTL.total_seconds())
        self.result["removed_etcd_members"] = []
        if self.check_mode:
            self.result["kubernetes_version"] = params["kubernetes_version"]
            return "initialised"
        argv_tail = ["--upload-certs"] if params.get("certificate_key") else []
        rc, out, err = self.with_config(kubeadm.init_documents(params),
                                        lambda config: self.run([path, "init", "--config", config] + argv_tail))
        if rc != 0:
            self.kubeadm_failure("kubeadm init", rc, out, err)
        if not self.wait_until(lambda: self.api_ready(kubeadm.ADMIN_CONF)):
            self.fail("kubeadm init finished but the API does not answer (kubectl get --raw /readyz) within %ss"
                      % params["timeout"], node_state="initialised")
        self.cluster_facts(kubeadm.ADMIN_CONF, control_plane=True)
        printed = kubeadm.ca_hashes_in_output(out)
        if printed and self.result.get("ca_cert_hash") not in printed:
            self.module.warn("kubeadm printed the CA pin %s, but %s hashes to %s"
                             % (printed[0], kubeadm.CA_CRT, self.result.get("ca_cert_hash")))
        self.result.setdefault("kubernetes_version", params["kubernetes_version"])
        return "initialised"

    def do_refresh(self, decision):
        params = self.params
        path = self.checked_kubeadm()
        if not self.wait_until(lambda: self.api_ready(kubeadm.ADMIN_CONF)):
            self.fail("this node is an initialised control plane (%s), but its API does not answer (kubectl get --raw "
                      "/readyz with admin.conf) within %ss; it is never initialised again, and no join material can "
                      "be made until it answers" % (self.reason, params["timeout"]))
        self.result["removed_etcd_members"] = []
        if params.get("remove_etcd_members"):
            self.remove_stale_members()
        if params.get("token"):
            self.ensure_token(path)
        if params.get("certificate_key"):
            self.upload_certs(path)
        self.cluster_facts(kubeadm.ADMIN_CONF, control_plane=True)
        return self.before

    def do_join(self, decision):
        params = self.params
        control_plane = self.state == "control_plane"
        role = "control plane" if control_plane else "worker"
        path = self.checked_kubeadm()
        if decision == "reset_then_join":
            self.reset("reset half-joined node (%s)" % self.reason)
            self.recovered = True
        self.act("kubeadm join %s as %s" % (params["control_plane_endpoint"], role))
        if self.check_mode:
            self.act("node %s registered" % self.node_name)
            return self.state
        rc, out, err = self.join(path, control_plane)
        text = out + "\n" + err
        if rc != 0 and kubeadm.preflight_failed(text) and not self.reset_reports:
            errors = kubeadm.preflight_errors(text)
            checks = [check for check, _message in errors]
            if checks and all(kubeadm.is_leftover_check(check, params["bind_port"]) for check in checks):
                self.reset("reset after a preflight failure on leftovers of an earlier attempt (%s)" % ", ".join(checks))
                self.recovered = True
                self.act("kubeadm join %s as %s, again" % (params["control_plane_endpoint"], role))
                rc, out, err = self.join(path, control_plane)
                text = out + "\n" + err
        if rc != 0:
            sentence = kubeadm.etcd_membership_error(text) if control_plane else None
            if sentence:
                self.fail_etcd_join(sentence, text)
            self.kubeadm_failure("kubeadm join", rc, out, err)
        if not self.wait_until(self.node_registered):
            self.fail("kubeadm join finished, but node %s did not register within %ss (kubectl get node with "
                      "kubelet.conf)" % (self.node_name, params["timeout"]), node_state=self.state)
        self.act("node %s registered" % self.node_name)
        self.cluster_facts(kubeadm.ADMIN_CONF if control_plane else kubeadm.KUBELET_CONF, control_plane)
        return self.state

    def fail_etcd_join(self, sentence, text):
        address = self.params.get("advertise_address")
        peer = "peer https://%s:2380" % address if address else "its peer URL is on this node's address"
        note = ""
        if any(report["etcd_member_removal_failed"] or report["no_cluster_config"] for report in self.reset_reports):
            note = " kubeadm reset could not remove this node's own etcd member earlier in this run."
        self.fail("kubeadm join stopped in its etcd step: %s.%s The node is left half-joined. Recovery: remove the stale "
                  "etcd member of %s (%s) with state=init and remove_etcd_members: [%s] on a healthy "
                  "control plane, then run this task again; it resets the node and joins it. Join control planes one "
                  "at a time (throttle: 1)." % (sentence, note, self.node_name, peer, self.node_name),
                  node_state="half_joined", output_tail=kubeadm.redact(kubeadm.tail(text), self.secrets))

    def do_reset(self, decision):
        self.reset("kubeadm reset")
        return "absent"

    def do_none(self, decision):
        control_plane = self.before in ("initialised", "control_plane")
        self.cluster_facts(kubeadm.ADMIN_CONF if control_plane else kubeadm.KUBELET_CONF, control_plane)
        return self.before

    def apply(self):
        files = kubeadm.read_node_files()
        self.before, self.reason = kubeadm.node_state(files)
        decision, message = kubeadm.decide(self.state, self.before, files["etcd_data"])
        if decision == "fail":
            self.fail("%s (found: %s); nothing was changed" % (message, self.reason))
        handler = {
            "init": self.do_init, "reset_then_init": self.do_init, "refresh": self.do_refresh,
            "join": self.do_join, "reset_then_join": self.do_join, "reset": self.do_reset, "none": self.do_none,
        }[decision]
        after = handler(decision)
        if not self.check_mode and self.changed:
            found, reason = kubeadm.node_state(kubeadm.read_node_files())
            if found != after:
                self.module.warn("after the run the node's files say %s (%s), not %s" % (found, reason, after))
                after = found
        self.module.exit_json(**self.base_result(after))


def main():
    module = build_module()
    check_arguments(module)
    KubeadmNode(module).apply()


if __name__ == "__main__":
    main()
