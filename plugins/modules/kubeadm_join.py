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
  - This release (0.1.0) ships the interface only; the behaviour comes with issue 5 and the module fails without
    changing anything until then.
seealso:
  - name: kubeadm join
    description: What kubeadm does when a node joins, and how discovery with CA pinning works.
    link: https://kubernetes.io/docs/reference/setup-tools/kubeadm/kubeadm-join/
  - name: Creating highly available clusters with kubeadm
    description: The stacked-etcd topology this module builds.
    link: https://kubernetes.io/docs/setup/production-environment/tools/kubeadm/high-availability/
author:
  - gpulab.cluster developers (@gpulab)
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
"""

from ansible.module_utils.basic import AnsibleModule

ISSUE = 5
ISSUE_SUMMARY = "kubeadm init, control-plane and worker joins with fresh join material, recovery, reset"


def argument_spec():
    """The module's argument spec; the implementation of issue 5 reuses it as it is."""
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
    """Rules between option values that required_if and friends cannot state."""
    params = module.params
    if params["remove_etcd_members"] and params["state"] != "init":
        module.fail_json(
            msg="remove_etcd_members is only valid with state=init (run on a healthy control plane such as the first "
            "one), not with state=%s" % params["state"],
            changed=False,
        )


def main():
    module = build_module()
    check_arguments(module)
    module.fail_json(
        msg="gpulab.cluster.kubeadm_join is not implemented in this release (0.1.0): its behaviour comes with issue #%d "
        "(%s). Nothing was changed." % (ISSUE, ISSUE_SUMMARY),
        changed=False,
    )


if __name__ == "__main__":
    main()
