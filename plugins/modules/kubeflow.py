#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: kubeflow
short_description: Install a pinned Kubeflow release in order, with bounded retries and readiness waits
version_added: 0.1.0
description:
  - Installs the Kubeflow release O(release) from C(kubeflow/manifests), built with kustomize, replacing Kubeflow's
    own unbounded C(while ! kustomize build | kubectl apply) loop.
  - "Sources: the release fetched from O(repo_url) (a site with internet), a local checkout of it in O(manifests_dir), or
    a directory of pre-built YAML in O(bundle) (sites without internet)."
  - Applies through the Kubernetes API (the C(kubernetes) Python client) with server-side apply and the field manager
    O(field_manager), in this order; CustomResourceDefinitions first, waiting until each is Established
    (O(crd_timeout)); Namespaces next; then the other objects; admission webhook configurations last, each only once
    its Service has ready endpoints (O(webhook_timeout)).
  - Retries only errors known to be transient (a kind not yet served after its CRD was created, a webhook not yet
    reachable), at most O(retries) times per object and within O(apply_timeout) in all; when the bound is hit it fails
    with the object and the last error named. Any other error fails at once.
  - Waits, with O(wait=true), until the Deployments and StatefulSets of each component are Available, with a time limit
    per component (O(wait_timeout), O(component_timeouts)).
  - "Refuses before anything is applied: a release that does not exist, a component not in the release, a cluster
    without a default StorageClass, a Kubernetes version outside the release's supported range."
  - Idempotent; a second run reports changed only when an object's applied fields differ.
options:
  release:
    description:
      - The C(kubeflow/manifests) release tag, for example V(v1.10.1). Always required, also with O(manifests_dir) and
        O(bundle), whose content must be that release; the module checks the Kubernetes version range and the
        component names against it.
    type: str
    required: true
  repo_url:
    description:
      - Repository the release is fetched from (its C(archive/refs/tags/<release>.tar.gz)), when neither O(manifests_dir)
        nor O(bundle) is given.
    type: str
    default: https://github.com/kubeflow/manifests
  manifests_dir:
    description:
      - A local checkout of C(kubeflow/manifests) at O(release), built with kustomize on the node running the module.
    type: path
  bundle:
    description:
      - A directory of pre-built manifests, one C(<component>.yaml) file per component installed (the output of
        C(kustomize build) of the component, the platform parts included, for example C(cert_manager.yaml),
        C(istio.yaml), C(dex.yaml)), applied without kustomize.
      - A component without its file is refused with the file named.
    type: path
  kustomize:
    description:
      - The kustomize binary used with O(repo_url) and O(manifests_dir), or a kubectl binary, whose C(kubectl kustomize)
        is used instead. Kubeflow needs kustomize 5.
      - When omitted, C(kustomize) on the PATH, else C(kubectl).
    type: path
  components:
    description:
      - The Kubeflow applications to install.
      - The platform they need is always installed; cert-manager, Istio, the C(kubeflow) namespace and roles, the
        network policies, and the authentication chosen with O(auth).
      - A component that needs another that is not listed is refused with both named (for example V(notebooks) needs
        V(profiles) and V(admission_webhook)).
      - V(training_operator) is the Training Operator v1 line, which serves TFJob, PyTorchJob and MPIJob (Kubeflow
        Trainer v2 has no TensorFlow runtime).
    type: list
    elements: str
    choices:
      - central_dashboard
      - profiles
      - admission_webhook
      - notebooks
      - volumes_web_app
      - tensorboards
      - pipelines
      - katib
      - training_operator
      - kserve
      - model_registry
      - spark_operator
    default:
      - central_dashboard
      - profiles
      - admission_webhook
      - notebooks
      - volumes_web_app
      - pipelines
      - training_operator
  auth:
    description:
      - V(dex) installs Dex and oauth2-proxy, with the static users of O(dex_users).
      - V(oidc) installs oauth2-proxy only, against the external OpenID Connect provider of O(oidc_issuer_url).
    type: str
    choices: [dex, oidc]
    default: dex
  dex_users:
    description:
      - Dex's static users, with O(auth=dex), required then, refused with O(auth=oidc). They replace the release's
        example user (whose password is published), which is never installed.
      - Each user also needs a Kubeflow Profile; the C(tenants) role creates them.
    type: list
    elements: dict
    suboptions:
      email:
        description:
          - Login e-mail address.
        type: str
        required: true
      username:
        description:
          - Display name. When omitted, the part of O(dex_users[].email) before the C(@).
        type: str
      password_hash:
        description:
          - bcrypt hash of the password (for example from C(htpasswd -nbBC 10 "" PASSWORD)). Never returned.
        type: str
        required: true
  oidc_issuer_url:
    description:
      - Issuer URL of the external OpenID Connect provider, with O(auth=oidc), required then, refused with
        O(auth=dex).
    type: str
  oidc_client_id:
    description:
      - Client ID registered for Kubeflow at the provider, with O(auth=oidc), required then, refused with
        O(auth=dex).
    type: str
  oidc_client_secret:
    description:
      - Client secret registered for Kubeflow at the provider, with O(auth=oidc), required then, refused with
        O(auth=dex). Never returned.
    type: str
  patches:
    description:
      - Kustomize patches applied over the release when it is built (resource requests and limits fitted to small
        nodes, replicas, images from a mirror). Not with O(bundle), which is applied as it was built.
    type: list
    elements: dict
    suboptions:
      patch:
        description:
          - The patch, inline; a strategic merge patch or a JSON 6902 patch as YAML.
          - Exactly one of O(patches[].patch) and O(patches[].path).
        type: str
      path:
        description:
          - A file holding the patch.
          - Exactly one of O(patches[].patch) and O(patches[].path).
        type: path
      target:
        description:
          - The objects the patch applies to; required for JSON 6902 patches, optional for strategic merge patches
            (which name their object).
        type: dict
        suboptions:
          group:
            description: API group.
            type: str
          version:
            description: API version.
            type: str
          kind:
            description: Kind.
            type: str
          name:
            description: Object name (a regular expression, as kustomize reads it).
            type: str
          namespace:
            description: Namespace.
            type: str
          label_selector:
            description: Label selector, as in C(kubectl get -l).
            type: str
  kubeconfig:
    description:
      - Path to the kubeconfig file. When omitted, the C(kubernetes) client's default (E(KUBECONFIG), then
        C(~/.kube/config)).
    type: path
  context:
    description:
      - The kubeconfig context to use. When omitted, the current context.
    type: str
  field_manager:
    description:
      - Field manager name of the server-side apply.
    type: str
    default: gpulab-kubeflow
  force_conflicts:
    description:
      - Take over fields that another field manager owns (for example objects an earlier C(kubectl apply) created).
        With V(false), a conflict fails with the object, the fields and their manager named.
    type: bool
    default: false
  crd_timeout:
    description:
      - Seconds to wait for each CustomResourceDefinition to be Established.
    type: int
    default: 120
  webhook_timeout:
    description:
      - Seconds to wait for the Service of each admission webhook to have ready endpoints.
    type: int
    default: 300
  retries:
    description:
      - Most attempts per object for errors known to be transient.
    type: int
    default: 5
  retry_delay:
    description:
      - Seconds before the first retry; each further retry waits twice as long, at most 60 seconds.
    type: int
    default: 5
  apply_timeout:
    description:
      - Seconds the whole apply, retries included, may take before the module fails with the object it was applying.
    type: int
    default: 1800
  wait:
    description:
      - Wait until the Deployments and StatefulSets of each component are Available.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait for each component to be Available, with O(wait=true).
    type: int
    default: 600
  component_timeouts:
    description:
      - Per-component wait limits in seconds (each at least 1), overriding O(wait_timeout), keyed by component name
        (including the platform parts V(cert_manager), V(istio), V(kubeflow_namespace), V(kubeflow_roles),
        V(network_policies), V(dex), V(oauth2_proxy)), for example V(pipelines=1200) on nodes with spinning disks.
      - An unknown name is refused.
    type: dict
notes:
  - Runs where the cluster's API is reachable; a control plane or the controller (C(delegate_to)).
  - Needs the C(kubernetes) Python library on the node that runs it, and kustomize (or kubectl) unless O(bundle) is
    used.
  - A default StorageClass must exist before the install (the C(storage) layer makes CephFS the default).
  - This release (0.1.0) ships the interface only; the behaviour comes with issue 7 and the module fails without
    changing anything until then.
requirements:
  - kubernetes >= 24.2.0 (Python library)
seealso:
  - name: kubeflow/manifests
    description: The release manifests this module installs, and their supported Kubernetes versions.
    link: https://github.com/kubeflow/manifests
  - module: kubernetes.core.k8s
author:
  - gpulab.cluster developers (@gpulab)
extends_documentation_fragment:
  - gpulab.cluster.attributes
  - gpulab.cluster.attributes.FULL
attributes:
  check_mode:
    support: partial
    details: Every object is sent as a server-side dry run. Objects whose kind comes from a CRD that is not installed
      yet cannot be dry-run; they are reported as to be created. Nothing is waited for.
  diff_mode:
    support: partial
    details: Lists the objects created and changed by kind, namespace and name, with the changed fields; not whole
      objects.
"""

EXAMPLES = r"""
- name: Install Kubeflow v1.10.1 on the reference cluster, fetched from GitHub
  gpulab.cluster.kubeflow:
    release: v1.10.1
    kubeconfig: /etc/kubernetes/admin.conf
    dex_users:
      - email: admin@gpulab.lan
        username: admin
        password_hash: "{{ gpulab_kubeflow_admin_password_hash }}"
    component_timeouts:
      pipelines: 1200
  register: gpulab_kubeflow
  run_once: true
  delegate_to: cp01

- name: Show where the dashboard answers
  ansible.builtin.debug:
    msg: "Kubeflow dashboard: {{ gpulab_kubeflow.dashboard_url }}"
  run_once: true

- name: Offline site; a local checkout, Katib added, requests fitted to 8 GB nodes
  gpulab.cluster.kubeflow:
    release: v1.10.1
    manifests_dir: /srv/mirror/kubeflow-manifests-v1.10.1
    kustomize: /usr/local/bin/kustomize
    kubeconfig: "{{ playbook_dir }}/../build/admin.conf"
    context: kubernetes-admin@gpulab
    components:
      - central_dashboard
      - profiles
      - admission_webhook
      - notebooks
      - volumes_web_app
      - pipelines
      - katib
      - training_operator
    dex_users: "{{ gpulab_kubeflow_users }}"
    patches:
      - target: {kind: Deployment, name: ml-pipeline, namespace: kubeflow}
        patch: |-
          - op: replace
            path: /spec/template/spec/containers/0/resources/requests/memory
            value: 256Mi
    retries: 8
    apply_timeout: 2400
  delegate_to: localhost
  run_once: true

- name: Pre-built bundle, external OIDC provider, server-side dry run only
  gpulab.cluster.kubeflow:
    release: v1.10.1
    bundle: /srv/mirror/kubeflow-v1.10.1-bundle
    auth: oidc
    oidc_issuer_url: https://sso.gpulab.lan/realms/gpulab
    oidc_client_id: kubeflow
    oidc_client_secret: "{{ gpulab_kubeflow_oidc_secret }}"
    components: [central_dashboard, profiles, admission_webhook, notebooks, training_operator]
  check_mode: true
  diff: true
  run_once: true
  delegate_to: cp01
"""

RETURN = r"""
release:
  description: The Kubeflow release installed.
  returned: always
  type: str
  sample: v1.10.1
source:
  description: Where the manifests came from; V(fetched), V(manifests_dir) or V(bundle).
  returned: always
  type: str
  sample: fetched
kubernetes_version:
  description: The cluster's Kubernetes version, checked against the release's range.
  returned: always
  type: str
  sample: v1.31.4
components:
  description: Status of each component installed, the platform parts included, in install order.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Component name.
      type: str
      sample: training_operator
    status:
      description:
        - V(ready) when its workloads are Available, V(applied) when applied and not waited for (O(wait=false), check
          mode), V(failed) when its wait or apply failed.
      type: str
      sample: ready
    objects:
      description: Number of objects of the component.
      type: int
      sample: 14
    created:
      description: Objects created.
      type: int
      sample: 0
    changed:
      description: Objects whose applied fields changed.
      type: int
      sample: 0
    workloads:
      description: Its Deployments and StatefulSets, as C(namespace/name).
      type: list
      elements: str
      sample: [kubeflow/training-operator]
    seconds:
      description: Seconds spent on the component, apply and wait.
      type: float
      sample: 41.7
  sample:
    - name: training_operator
      status: ready
      objects: 14
      created: 0
      changed: 0
      workloads: [kubeflow/training-operator]
      seconds: 41.7
objects:
  description: Counts of objects applied.
  returned: always
  type: dict
  contains:
    total:
      description: Objects in the build.
      type: int
      sample: 712
    created:
      description: Objects created.
      type: int
      sample: 0
    changed:
      description: Objects whose applied fields changed.
      type: int
      sample: 1
    unchanged:
      description: Objects left as they were.
      type: int
      sample: 711
  sample:
    total: 712
    created: 0
    changed: 1
    unchanged: 711
created:
  description: Objects created (in check mode, that would be), as C(kind/namespace/name) (C(kind/name) when not
    namespaced).
  returned: always
  type: list
  elements: str
  sample: [Notebook.kubeflow.org/kubeflow-user/demo]
changed_objects:
  description: Objects whose applied fields changed (in check mode, would change), as in RV(created).
  returned: always
  type: list
  elements: str
  sample: [Deployment/kubeflow/ml-pipeline]
crds_established:
  description: Names of the CustomResourceDefinitions of the build, all Established after the run.
  returned: always
  type: list
  elements: str
  sample: [tfjobs.kubeflow.org, pytorchjobs.kubeflow.org, mpijobs.kubeflow.org]
retried:
  description: Transient errors met and retried, per object, with the number of attempts.
  returned: always
  type: list
  elements: dict
  contains:
    object:
      description: The object, as in RV(created).
      type: str
      sample: Profile/kubeflow-user
    attempts:
      description: Attempts made.
      type: int
      sample: 2
    error:
      description: The last transient error.
      type: str
      sample: "no matches for kind \"Profile\" in version \"kubeflow.org/v1\""
  sample:
    - object: Profile/kubeflow-user
      attempts: 2
      error: "no matches for kind \"Profile\" in version \"kubeflow.org/v1\""
dashboard_url:
  description: URL of the central dashboard through the Istio ingress gateway, or null when the gateway has no
    address yet.
  returned: always
  type: str
  sample: http://192.168.50.240/
"""

from ansible.module_utils.basic import AnsibleModule

ISSUE = 7
ISSUE_SUMMARY = "ordered server-side apply of a pinned Kubeflow release, CRD and webhook waits, bounded retries"

COMPONENTS = [
    "central_dashboard",
    "profiles",
    "admission_webhook",
    "notebooks",
    "volumes_web_app",
    "tensorboards",
    "pipelines",
    "katib",
    "training_operator",
    "kserve",
    "model_registry",
    "spark_operator",
]

DEFAULT_COMPONENTS = [
    "central_dashboard",
    "profiles",
    "admission_webhook",
    "notebooks",
    "volumes_web_app",
    "pipelines",
    "training_operator",
]


def argument_spec():
    """The module's argument spec; the implementation of issue 7 reuses it as it is."""
    return dict(
        release=dict(type="str", required=True),
        repo_url=dict(type="str", default="https://github.com/kubeflow/manifests"),
        manifests_dir=dict(type="path"),
        bundle=dict(type="path"),
        kustomize=dict(type="path"),
        components=dict(type="list", elements="str", choices=COMPONENTS, default=list(DEFAULT_COMPONENTS)),
        auth=dict(type="str", default="dex", choices=["dex", "oidc"]),
        dex_users=dict(
            type="list",
            elements="dict",
            options=dict(
                email=dict(type="str", required=True),
                username=dict(type="str"),
                password_hash=dict(type="str", required=True, no_log=True),
            ),
        ),
        oidc_issuer_url=dict(type="str"),
        oidc_client_id=dict(type="str"),
        oidc_client_secret=dict(type="str", no_log=True),
        patches=dict(
            type="list",
            elements="dict",
            options=dict(
                patch=dict(type="str"),
                path=dict(type="path"),
                target=dict(
                    type="dict",
                    options=dict(
                        group=dict(type="str"),
                        version=dict(type="str"),
                        kind=dict(type="str"),
                        name=dict(type="str"),
                        namespace=dict(type="str"),
                        label_selector=dict(type="str"),
                    ),
                ),
            ),
            mutually_exclusive=[("patch", "path")],
            required_one_of=[("patch", "path")],
        ),
        kubeconfig=dict(type="path"),
        context=dict(type="str"),
        field_manager=dict(type="str", default="gpulab-kubeflow"),
        force_conflicts=dict(type="bool", default=False),
        crd_timeout=dict(type="int", default=120),
        webhook_timeout=dict(type="int", default=300),
        retries=dict(type="int", default=5),
        retry_delay=dict(type="int", default=5),
        apply_timeout=dict(type="int", default=1800),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=600),
        component_timeouts=dict(type="dict"),
    )


MODULE_RULES = dict(
    mutually_exclusive=[
        ("manifests_dir", "bundle", "repo_url"),
        ("bundle", "patches"),
        ("bundle", "kustomize"),
    ],
    required_if=[
        ("auth", "dex", ("dex_users",)),
        ("auth", "oidc", ("oidc_issuer_url", "oidc_client_id", "oidc_client_secret")),
    ],
)


def build_module():
    """AnsibleModule with the full argument validation of this module."""
    return AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True, **MODULE_RULES)


PLATFORM_PARTS = ["cert_manager", "istio", "kubeflow_namespace", "kubeflow_roles", "network_policies", "dex", "oauth2_proxy"]

POSITIVE_INTS = ("crd_timeout", "webhook_timeout", "retries", "apply_timeout", "wait_timeout")


def check_arguments(module):
    """Rules between option values that required_if and friends cannot state (they test presence, not values)."""
    params = module.params
    if params["auth"] == "oidc" and params["dex_users"]:
        module.fail_json(msg="dex_users is only used with auth=dex; with auth=oidc the users log in at %s"
                         % params["oidc_issuer_url"], changed=False)
    if params["auth"] == "dex":
        given = [name for name in ("oidc_issuer_url", "oidc_client_id", "oidc_client_secret") if params[name]]
        if given:
            module.fail_json(msg="%s only apply with auth=oidc, not auth=dex" % ", ".join(given), changed=False)
    for name in POSITIVE_INTS:
        if params[name] < 1:
            module.fail_json(msg="%s must be at least 1, got %d" % (name, params[name]), changed=False)
    if params["retry_delay"] < 0:
        module.fail_json(msg="retry_delay must not be negative, got %d" % params["retry_delay"], changed=False)
    known = COMPONENTS + PLATFORM_PARTS
    for component, seconds in sorted((params["component_timeouts"] or {}).items()):
        if component not in known:
            module.fail_json(msg="component_timeouts names %r, which is not a component; known: %s"
                             % (component, ", ".join(known)), changed=False)
        try:
            seconds = int(seconds)
        except (TypeError, ValueError):
            seconds = 0
        if seconds < 1:
            module.fail_json(msg="component_timeouts.%s must be a number of seconds of at least 1" % component,
                             changed=False)


def main():
    module = build_module()
    check_arguments(module)
    module.fail_json(
        msg="gpulab.cluster.kubeflow is not implemented in this release (0.1.0): its behaviour comes with issue #%d "
        "(%s). Nothing was changed." % (ISSUE, ISSUE_SUMMARY),
        changed=False,
    )


if __name__ == "__main__":
    main()
