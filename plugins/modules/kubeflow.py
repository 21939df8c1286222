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
  - Waits, with O(wait=true), until the Deployments and StatefulSets of each component have rolled out, as
    C(kubectl rollout status) judges (every replica runs the current template and is available, so a new template
    whose pods crash is not taken for done while the old pods serve), with a time limit per component
    (O(wait_timeout), O(component_timeouts)).
  - "Refuses before anything is applied: a release that does not exist, a component not in the release, a cluster
    without a default StorageClass, a Kubernetes version outside the release's supported range."
  - Idempotent; a second run reports changed only when an object's applied fields differ.
options:
  release:
    description:
      - The C(kubeflow/manifests) release tag, for example V(v1.10.0). Always required, also with O(manifests_dir) and
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
      - V(oidc) installs oauth2-proxy only, against the external OpenID Connect provider of O(oidc_issuer_url) (for
        example the site's Keycloak), and no Dex. oauth2-proxy finds the provider's endpoints through its discovery
        document, uses the client O(oidc_client_id) and O(oidc_client_secret), asks for O(oidc_scope), sends users
        back to O(oidc_redirect_url) and refreshes sessions every O(oidc_cookie_refresh); Istio's
        RequestAuthentication that trusted Dex's tokens trusts the provider's instead, only those issued to
        O(oidc_client_id), and still takes the user from the C(email) claim. The provider's issuer must be reachable
        from the cluster's pods (istiod fetches its keys) with a certificate the system CAs trust.
      - Switching an installed Kubeflow from V(dex) to V(oidc) leaves the Dex of the earlier install running, unused.
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
  dex_connectors:
    description:
      - Dex connectors besides the static users, with O(auth=dex) (refused with O(auth=oidc)), so that users sign in to
        Kubeflow against the site's directory, for example with an C(ldap) connector (seed 001). They become Dex's
        C(connectors); the static users of O(dex_users) keep working. Dex restarts when they change.
      - Each connector's C(config) is passed to Dex as given (for C(ldap) C(host), C(bindDN), C(bindPW),
        C(userSearch), C(groupSearch), see Dex's documentation); it may hold secrets and is never logged or returned.
    type: list
    elements: dict
    default: []
    suboptions:
      type:
        description:
          - Dex's connector type (C(ldap), C(oidc), C(github), ...).
        type: str
        required: true
      id:
        description:
          - Unique id of the connector (not C(local), which is Dex's password database).
        type: str
        required: true
      name:
        description:
          - Name shown on Dex's login page.
        type: str
        required: true
      config:
        description:
          - The connector's configuration.
        type: dict
        required: true
  dex_static_clients:
    description:
      - OAuth clients Dex accepts besides Kubeflow's own (oauth2-proxy's), with O(auth=dex) (refused with
        O(auth=oidc)), so that another application signs its users in through the same Dex, for example Grafana
        (the platform layer). A client whose C(id) the release already has replaces it.
    type: list
    elements: dict
    default: []
    suboptions:
      id:
        description:
          - The client id.
        type: str
        required: true
      name:
        description:
          - Name shown on Dex's approval screen.
        type: str
        required: true
      secret:
        description:
          - The client secret (shared with the application). Never logged or returned.
        type: str
        required: true
      redirect_uris:
        description:
          - The URLs Dex may send the user back to (for Grafana C(http://<address>/login/generic_oauth)).
        type: list
        elements: str
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
      - oauth2-proxy's cookie secret is derived from it (the release's own is published), so changing it signs every
        user out.
    type: str
  oidc_redirect_url:
    description:
      - The absolute URL the provider sends users back to after they signed in, C(<dashboard_url>oauth2/callback), for
        example V(http://192.168.50.242/oauth2/callback); it must be registered for O(oidc_client_id) at the provider.
        With O(auth=oidc), required then, refused with O(auth=dex).
    type: str
  oidc_cookie_refresh:
    description:
      - How often oauth2-proxy refreshes a session with the provider's refresh token (a Go duration such as V(4m)),
        with O(auth=oidc). It must be shorter than the lifetime of the provider's ID tokens (Keycloak's default is 5
        minutes), since oauth2-proxy forwards the ID token and Istio refuses it once it has expired. V(0) never refreshes
        (only for providers whose tokens live as long as oauth2-proxy's C(cookie_expire), 24 hours, as Dex's do).
    type: str
    default: 4m
  oidc_scope:
    description:
      - The scopes oauth2-proxy asks the provider for, with O(auth=oidc); must include V(openid), and V(email) gives
        the claim Kubeflow takes the user from. Add V(groups) where the provider has such a scope (Dex has; Keycloak
        needs a client scope of that name).
    type: str
    default: openid profile email
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
  resources:
    description:
      - Requests and limits for the release's Deployments and StatefulSets, set on the built objects before they are
        applied (the role C(kubeflow) fits the release to 8 GB nodes with them). What an entry gives replaces that
        container's requests (or limits) in the release; what it leaves out stays.
      - Refused before anything is applied; an entry that names no Deployment or StatefulSet of the components being
        installed, or no container of it, a value that is no Kubernetes quantity, a request above its limit.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - The Deployment or StatefulSet.
        type: str
        required: true
      namespace:
        description:
          - Its namespace; when omitted, every workload of that name.
        type: str
      container:
        description:
          - The container; when omitted, every container of the workload (not init containers).
        type: str
      requests:
        description:
          - The container's requests by resource name, for example C(cpu) V(50m) and C(memory) V(128Mi).
        type: dict
      limits:
        description:
          - The container's limits by resource name, for example C(memory) V(256Mi).
        type: dict
      sidecar:
        description:
          - Requests and limits of the Istio sidecar injected into the workload's pods (Istio's default in Kubeflow
            1.10 asks 128Mi each), with C(requests) and C(limits) of C(cpu) and C(memory); they become the pod
            template's annotations C(sidecar.istio.io/proxyMemory), C(proxyMemoryLimit), C(proxyCPU) and
            C(proxyCPULimit), and count towards O(memory_budget).
        type: dict
  memory_budget:
    description:
      - The memory the install may ask for in all, a Kubernetes quantity such as V(6Gi) (the memory requests of every
        container of the components' Deployments and StatefulSets times their replicas; a container with only a limit
        counts with its limit; Istio's sidecar where O(resources[].sidecar) gives its memory). An install asking for
        more is refused before anything is applied, with the parts that ask most named. Sidecars without those
        annotations are not counted.
      - The result's RV(memory) reports the totals whether or not a budget is given.
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
      - Wait until the Deployments and StatefulSets of each component have rolled out.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait for each component to roll out, with O(wait=true).
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
  - The components of O(release) are read from the release's own C(example/kustomization.yaml) (with O(repo_url) and
    O(manifests_dir)); a component whose folder that file does not list is not in the release. Each part is applied
    in turn (platform first), its CRDs, Namespaces, other objects and webhooks in that order, and, with O(wait=true),
    waited for before the next, so that Istio's injection and cert-manager's webhook serve the parts after them.
  - The Kubernetes range of a release is its validated minor (from the Kubeflow release notes; 1.9 - 1.29,
    1.10 - 1.32) and one minor on either side.
  - With O(auth=oidc) the module changes the release's oauth2-proxy configuration, its Secret and the
    RequestAuthentication C(dex-jwt) in the build; a release whose oauth2-proxy lacks any of them is refused before
    anything is applied.
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
- name: Install Kubeflow v1.10.0 on the reference cluster, fetched from GitHub
  gpulab.cluster.kubeflow:
    release: v1.10.0
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
    release: v1.10.0
    manifests_dir: /srv/mirror/kubeflow-manifests-v1.10.0
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
    release: v1.10.0
    bundle: /srv/mirror/kubeflow-v1.10.0-bundle
    auth: oidc
    oidc_issuer_url: https://sso.gpulab.lan/realms/gpulab
    oidc_client_id: kubeflow
    oidc_client_secret: "{{ gpulab_kubeflow_oidc_secret }}"
    oidc_redirect_url: http://192.168.50.242/oauth2/callback
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
  sample: v1.10.0
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
        - V(ready) when its workloads have rolled out, V(applied) when applied and not waited for (O(wait=false), check
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
memory:
  description:
    - The memory the components ask for (memory requests of their Deployments' and StatefulSets' containers times
      replicas; a container with only a limit counts with its limit; Istio's sidecar where O(resources[].sidecar)
      gives its memory and the pod is not excluded from injection), in MiB, in all
      and per part, after O(resources); the budget O(memory_budget); the containers that ask for none.
    - Null when the module stopped before the build.
  returned: always
  type: dict
  sample:
    requests_mib: 5310
    limits_mib: 9728
    budget_mib: 6144
    parts:
      pipelines: {requests_mib: 2410, limits_mib: 4096}
    without_request: ["Deployment kubeflow/metadata-envoy-deployment container"]
"""

import os
import shutil
import tarfile
import tempfile
import time
import traceback
from urllib.parse import urlparse

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.urls import fetch_url

from ansible_collections.gpulab.cluster.plugins.module_utils._kubeapply import (
    PHASE_CRDS,
    WORKLOAD_KINDS,
    ApiError,
    Applier,
    ApplyFailed,
    ConnectionLost,
    KindNotServed,
    check_object,
    counts,
    phase,
    rolled_out,
)
from ansible_collections.gpulab.cluster.plugins.module_utils._kubeflow import (
    EXAMPLE,
    KubeflowError,
    check_kubernetes,
    example_paths,
    part_names,
    release_line,
    memory_of,
    select,
    set_dex_users,
    set_oidc,
    set_resources,
)
from ansible_collections.gpulab.cluster.plugins.module_utils._kubeadm import go_duration
from ansible_collections.gpulab.cluster.plugins.module_utils._tenants import quantity

try:
    import yaml
except ImportError:  # pragma: no cover - the kubernetes library needs PyYAML
    yaml = None
    YAML_IMPORT_ERROR = traceback.format_exc()
else:
    YAML_IMPORT_ERROR = None

DEFAULT_CLASS_ANNOTATIONS = ("storageclass.kubernetes.io/is-default-class",
                             "storageclass.beta.kubernetes.io/is-default-class")

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
        dex_connectors=dict(
            type="list",
            elements="dict",
            default=[],
            options=dict(
                type=dict(type="str", required=True),
                id=dict(type="str", required=True),
                name=dict(type="str", required=True),
                config=dict(type="dict", required=True, no_log=True),
            ),
        ),
        dex_static_clients=dict(
            type="list",
            elements="dict",
            default=[],
            options=dict(
                id=dict(type="str", required=True),
                name=dict(type="str", required=True),
                secret=dict(type="str", required=True, no_log=True),
                redirect_uris=dict(type="list", elements="str", required=True),
            ),
        ),
        oidc_issuer_url=dict(type="str"),
        oidc_client_id=dict(type="str"),
        oidc_client_secret=dict(type="str", no_log=True),
        oidc_scope=dict(type="str", default="openid profile email"),
        oidc_redirect_url=dict(type="str"),
        oidc_cookie_refresh=dict(type="str", default="4m"),
        resources=dict(type="list", elements="dict", default=[], options=dict(
            name=dict(type="str", required=True),
            namespace=dict(type="str"),
            container=dict(type="str"),
            requests=dict(type="dict"),
            limits=dict(type="dict"),
            sidecar=dict(type="dict"),
        )),
        memory_budget=dict(type="str"),
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
        ("auth", "oidc", ("oidc_issuer_url", "oidc_client_id", "oidc_client_secret", "oidc_redirect_url")),
    ],
)


def build_module():
    """AnsibleModule with the full argument validation of this module."""
    return AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True, **MODULE_RULES)


PLATFORM_PARTS = ["cert_manager", "istio", "kubeflow_namespace", "kubeflow_roles", "network_policies", "dex", "oauth2_proxy"]


def url_of(text):
    """The parts of an absolute http(s) URL with a host, or None: also for text with spaces or control characters
    around or in it (which urlparse would drop silently) and for text urlparse cannot read."""
    if text != text.strip() or any(ord(c) < 32 or ord(c) == 127 for c in text):
        return None
    try:
        parts = urlparse(text)
        host = parts.hostname
    except ValueError:
        return None
    return parts if parts.scheme in ("https", "http") and host else None


POSITIVE_INTS = ("crd_timeout", "webhook_timeout", "retries", "apply_timeout", "wait_timeout")


def check_arguments(module):
    """Rules between option values that required_if and friends cannot state (they test presence, not values)."""
    params = module.params
    if params["auth"] == "oidc" and params["dex_users"]:
        module.fail_json(msg="dex_users is only used with auth=dex; with auth=oidc the users log in at %s"
                         % params["oidc_issuer_url"], changed=False)
    for name in ("dex_connectors", "dex_static_clients"):
        if params["auth"] == "oidc" and params[name]:
            module.fail_json(msg="%s is only used with auth=dex (Kubeflow's own Dex); with auth=oidc configure it at "
                             "%s" % (name, params["oidc_issuer_url"]), changed=False)
    client_ids = [client["id"] for client in params["dex_static_clients"]]
    twice = sorted(set(i for i in client_ids if client_ids.count(i) > 1))
    if twice:
        module.fail_json(msg="dex_static_clients: the id %s is used twice; give each client its own id"
                         % ", ".join(twice), changed=False)
    ids = [connector["id"] for connector in params["dex_connectors"]]
    repeated = sorted(set(i for i in ids if ids.count(i) > 1 or i == "local"))
    if repeated:
        module.fail_json(msg="dex_connectors: the id %s is used twice or is Dex's own 'local'; give each connector "
                         "its own id" % ", ".join(repeated), changed=False)
    if params["auth"] == "dex":
        given = [name for name in ("oidc_issuer_url", "oidc_client_id", "oidc_client_secret", "oidc_redirect_url")
                 if params[name]]
        if given:
            module.fail_json(msg="%s only apply with auth=oidc, not auth=dex" % ", ".join(given), changed=False)
    else:
        issuer = url_of(params["oidc_issuer_url"])
        if not issuer or issuer.query or issuer.fragment:
            module.fail_json(msg="oidc_issuer_url %r is not an issuer URL like https://sso.example.org/realms/lab (the "
                             "provider's 'issuer', exactly as its tokens carry it)" % params["oidc_issuer_url"],
                             changed=False)
        redirect = url_of(params["oidc_redirect_url"])
        if not redirect or redirect.path != "/oauth2/callback" or redirect.query or redirect.fragment:
            module.fail_json(msg="oidc_redirect_url %r is not an absolute URL like http://192.168.50.242/oauth2/callback "
                             "(the address users open Kubeflow at, then /oauth2/callback, where oauth2-proxy takes the "
                             "provider's answer)" % params["oidc_redirect_url"], changed=False)
        refresh = go_duration(params["oidc_cookie_refresh"])
        if refresh is None or 0 < refresh < 60:
            module.fail_json(msg="oidc_cookie_refresh %r is not a duration of at least a minute like 4m or 1h30m (0 "
                             "never refreshes)" % params["oidc_cookie_refresh"], changed=False)
        if "openid" not in params["oidc_scope"].split():
            module.fail_json(msg="oidc_scope %r lacks openid; OpenID Connect needs it (default: openid profile email)"
                             % params["oidc_scope"], changed=False)
    for name in POSITIVE_INTS:
        if params[name] < 1:
            module.fail_json(msg="%s must be at least 1, got %d" % (name, params[name]), changed=False)
    if params["memory_budget"] is not None and not quantity(params["memory_budget"]):
        module.fail_json(msg="memory_budget %r is not a Kubernetes quantity above 0 (like 6Gi)" % params["memory_budget"],
                         changed=False)
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


class KubeClient(object):
    """The cluster through the ``kubernetes`` library: what ``Applier`` and the waits need, errors as ApiError."""

    def __init__(self, kubeconfig, context):
        import urllib3
        from kubernetes import client, config, dynamic
        from kubernetes.dynamic import exceptions

        self._client = client
        self._exceptions = exceptions
        # no answer at all (an API server restarting, the load balancer failing over): retried as transient
        self._lost = (urllib3.exceptions.HTTPError, OSError)
        self.api = config.new_client_from_config(config_file=kubeconfig, context=context)
        self.dynamic = dynamic.DynamicClient(self.api)

    def _error(self, exc):
        return ApiError.from_body(getattr(exc, "status", None), getattr(exc, "body", None) or str(exc))

    def _resource(self, obj):
        for attempt in (1, 2):
            try:
                return self.dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
            except self._exceptions.ResourceNotFoundError:
                if attempt == 2:
                    raise KindNotServed(obj["apiVersion"], obj["kind"])
                # a CRD this run created: discovery is cached, ask the server again
                self.dynamic.resources.invalidate_cache()
        return None  # pragma: no cover

    def clock(self):
        return time.monotonic()

    def sleep(self, seconds):
        time.sleep(seconds)

    def version(self):
        try:
            return self._client.VersionApi(self.api).get_code().git_version
        except self._client.exceptions.ApiException as exc:
            raise self._error(exc)
        except self._lost as exc:
            raise ConnectionLost(str(exc))

    def default_storage_classes(self):
        try:
            classes = self._client.StorageV1Api(self.api).list_storage_class().items
        except self._client.exceptions.ApiException as exc:
            raise self._error(exc)
        except self._lost as exc:
            raise ConnectionLost(str(exc))
        return [sc.metadata.name for sc in classes
                if any((sc.metadata.annotations or {}).get(key) == "true" for key in DEFAULT_CLASS_ANNOTATIONS)]

    def get(self, obj):
        meta = obj["metadata"]
        try:
            return self._resource(obj).get(name=meta["name"], namespace=meta.get("namespace")).to_dict()
        except self._exceptions.NotFoundError:
            return None
        except self._exceptions.DynamicApiError as exc:
            raise self._error(exc)
        except self._lost as exc:
            raise ConnectionLost(str(exc))

    def apply(self, obj, field_manager, force, dry_run):
        meta = obj["metadata"]
        kwargs = dict(field_manager=field_manager, force_conflicts=force)
        if dry_run:
            kwargs["dry_run"] = "All"
        try:
            return self.dynamic.server_side_apply(self._resource(obj), body=obj, name=meta["name"],
                                                  namespace=meta.get("namespace"), **kwargs).to_dict()
        except self._exceptions.DynamicApiError as exc:
            raise self._error(exc)
        except self._lost as exc:
            raise ConnectionLost(str(exc))

    def crd_established(self, name):
        crd = self.get(dict(apiVersion="apiextensions.k8s.io/v1", kind="CustomResourceDefinition",
                            metadata=dict(name=name)))
        conditions = ((crd or {}).get("status") or {}).get("conditions") or []
        return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)

    def service_ready(self, namespace, name):
        endpoints = self.get(dict(apiVersion="v1", kind="Endpoints", metadata=dict(name=name, namespace=namespace)))
        return any(subset.get("addresses") for subset in (endpoints or {}).get("subsets") or [])

    def workload_ready(self, kind, namespace, name):
        live = self.get(dict(apiVersion="apps/v1", kind=kind, metadata=dict(name=name, namespace=namespace)))
        return bool(live) and rolled_out(live)

    def gateway_address(self):
        service = self.get(dict(apiVersion="v1", kind="Service",
                                metadata=dict(name="istio-ingressgateway", namespace="istio-system"))) or {}
        for ingress in ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
            if ingress.get("ip") or ingress.get("hostname"):
                return ingress.get("ip") or ingress.get("hostname")
        return None


def load_documents(text, where):
    """The Kubernetes objects of a multi-document YAML text; ``List`` kinds are unpacked."""
    objects = []
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise KubeflowError("%s is not valid YAML: %s" % (where, exc))
    for index, doc in enumerate(documents):
        if doc is None:
            continue
        items = doc.get("items") if isinstance(doc, dict) and str(doc.get("kind", "")).endswith("List") else [doc]
        for item in items or ():
            try:
                check_object(item, "%s, document %d" % (where, index + 1))
            except ApplyFailed as exc:
                raise KubeflowError(str(exc))
            objects.append(item)
    return objects


class Source(object):
    """Builds the objects of each part from the bundle, a checkout, or the release archive."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.tmp = None

    def cleanup(self):
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def kind(self):
        if self.params["bundle"]:
            return "bundle"
        if self.params["manifests_dir"]:
            return "manifests_dir"
        return "fetched"

    def parts(self):
        """[(part name, [objects])] in install order."""
        params = self.params
        if params["bundle"]:
            return self._bundle()
        checkout = params["manifests_dir"] or self._fetch()
        example = os.path.join(checkout, EXAMPLE)
        if not os.path.isfile(example):
            raise KubeflowError("%s has no %s; manifests_dir must be a kubeflow/manifests checkout at %s" % (
                checkout, EXAMPLE, params["release"]))
        with open(example) as handle:
            selected = select(example_paths(handle.read()), params["components"], params["auth"])
        base = os.path.dirname(example)
        return [(name, self._build(name, [os.path.normpath(os.path.join(base, p)) for p in paths]))
                for name, paths in selected]

    def _bundle(self):
        params = self.params
        parts = []
        for name in part_names(params["components"], params["auth"]):
            path = os.path.join(params["bundle"], "%s.yaml" % name)
            if not os.path.isfile(path):
                raise KubeflowError("the bundle has no %s for %s; build it with kustomize from the release, or remove "
                                    "%s from components" % (path, name, name))
            with open(path) as handle:
                parts.append((name, load_documents(handle.read(), path)))
        return parts

    def _kustomize(self):
        if self.params["kustomize"]:
            binary = self.params["kustomize"]
        else:
            binary = self.module.get_bin_path("kustomize") or self.module.get_bin_path("kubectl")
        if not binary:
            raise KubeflowError("neither kustomize nor kubectl is on the PATH of this node; set kustomize to a "
                                "kustomize 5 (or kubectl) binary, or use bundle")
        if os.path.basename(binary).startswith("kubectl"):
            return [binary, "kustomize"]
        return [binary, "build"]

    def _build(self, name, paths):
        self.tmp = self.tmp or tempfile.mkdtemp(prefix="gpulab-kubeflow.")
        folder = os.path.join(self.tmp, name)
        os.mkdir(folder)
        # kustomize takes bases outside the kustomization's folder only as relative paths
        kustomization = dict(apiVersion="kustomize.config.k8s.io/v1beta1", kind="Kustomization",
                             resources=[os.path.relpath(path, folder) for path in paths])
        patches = [_patch_entry(p) for p in self.params["patches"] or ()]
        if patches:
            kustomization["patches"] = patches
        with open(os.path.join(folder, "kustomization.yaml"), "w") as handle:
            yaml.safe_dump(kustomization, handle, default_flow_style=False)
        argv = self._kustomize() + [folder]
        rc, out, err = self.module.run_command(argv)
        if rc != 0:
            raise KubeflowError("building %s failed (%s, exit %d): %s" % (name, " ".join(argv), rc, err.strip()))
        return load_documents(out, "the build of %s" % name)

    def _fetch(self):
        params = self.params
        url = "%s/archive/refs/tags/%s.tar.gz" % (params["repo_url"].rstrip("/"), params["release"])
        self.tmp = self.tmp or tempfile.mkdtemp(prefix="gpulab-kubeflow.")
        response, info = fetch_url(self.module, url, timeout=60)
        if info.get("status") != 200:
            raise KubeflowError("release %s does not exist at %s (HTTP %s: %s); set release to an existing tag, or use "
                                "manifests_dir or bundle on a site without internet" % (
                                    params["release"], url, info.get("status"), info.get("msg")))
        archive = os.path.join(self.tmp, "release.tar.gz")
        with open(archive, "wb") as handle:
            shutil.copyfileobj(response, handle)
        target = os.path.join(self.tmp, "release")
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for member in members:
                unsafe = member.name.startswith("/") or ".." in member.name.split("/")
                if unsafe or not (member.isfile() or member.isdir()):
                    raise KubeflowError("the archive at %s holds an unsafe path %s" % (url, member.name))
            tar.extractall(target, members=members)  # nosec - checked above
        tops = os.listdir(target)
        if len(tops) != 1:
            raise KubeflowError("the archive at %s is not a GitHub release archive (one top folder)" % url)
        return os.path.join(target, tops[0])


def _patch_entry(patch):
    """One kustomize ``patches`` entry, inline (a file's content is read in: kustomize loads files only from under
    the kustomization). A strategic merge patch without a target gets one from the object it names, so that the parts
    which do not hold that object build without it instead of failing."""
    text = patch["patch"]
    if patch.get("path"):
        try:
            with open(patch["path"]) as handle:
                text = handle.read()
        except (IOError, OSError) as exc:
            raise KubeflowError("cannot read the patch file %s: %s" % (patch["path"], exc))
    entry = dict(patch=text)
    target = dict((("labelSelector" if key == "label_selector" else key), value)
                  for key, value in (patch.get("target") or {}).items() if value)
    if not target:
        try:
            named = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise KubeflowError("a patch is not valid YAML: %s" % exc)
        meta = named.get("metadata") if isinstance(named, dict) else None
        if not (isinstance(meta, dict) and named.get("kind") and meta.get("name")):
            raise KubeflowError("a patch without a target must be a strategic merge patch naming its object (kind and "
                                "metadata.name); JSON 6902 patches need patches[].target")
        target = dict(kind=named["kind"], name=meta["name"])
        if meta.get("namespace"):
            target["namespace"] = meta["namespace"]
    entry["target"] = target
    return entry


def wait_for_part(client, name, objects, timeout):
    """Wait until the Deployments and StatefulSets of one part have rolled out; returns their names."""
    workloads = [(o["kind"], (o.get("metadata") or {}).get("namespace"), o["metadata"]["name"]) for o in objects
                 if o.get("kind") in WORKLOAD_KINDS and str(o.get("apiVersion", "")).startswith("apps/")]
    deadline = client.clock() + timeout
    pending = list(workloads)
    while pending:
        pending = [w for w in pending if not client.workload_ready(*w)]
        if not pending:
            break
        if client.clock() + 5 > deadline:
            raise ApplyFailed("%s: not rolled out after %ds: %s (set component_timeouts.%s to wait longer)" % (
                name, timeout, ", ".join("%s %s/%s" % w for w in pending), name))
        client.sleep(5)
    return ["%s/%s" % (w[1], w[2]) for w in workloads]


def object_name(result):
    kind = result["kind"]
    group = result["api_version"].split("/")[0] if "/" in result["api_version"] else ""
    if group and group not in ("apps", "batch"):
        kind = "%s.%s" % (kind, group)
    where = "%s/%s" % (result["namespace"], result["name"]) if result["namespace"] else result["name"]
    return "%s/%s" % (kind, where)


def install(module, client, parts, components):
    """Apply and wait, part by part; ``components`` (the result's list) gets each part's status as it goes, so that
    a failure still reports how far the install came."""
    params = module.params
    timeouts = params["component_timeouts"] or {}
    applier_options = dict(force_conflicts=params["force_conflicts"], dry_run=module.check_mode,
                           retries=params["retries"], retry_delay=params["retry_delay"],
                           apply_timeout=params["apply_timeout"], crd_timeout=params["crd_timeout"],
                           webhook_timeout=params["webhook_timeout"])
    applier = Applier(client, params["field_manager"], **applier_options)
    results = []
    for name, objects in parts:
        started = client.clock()
        entry = dict(name=name, status="applied", objects=len(objects), created=0, changed=0, workloads=[],
                     seconds=0.0)
        components.append(entry)
        try:
            part_results = applier.run(objects)[len(results):]
            results.extend(part_results)
            tally = counts(part_results)
            entry.update(created=tally["created"], changed=tally["changed"])
            if params["wait"] and not module.check_mode:
                entry["workloads"] = wait_for_part(client, name, objects, int(timeouts.get(name, params["wait_timeout"])))
                entry["status"] = "ready"
        except ApplyFailed:
            entry["status"] = "failed"
            raise
        finally:
            entry["seconds"] = round(client.clock() - started, 1)
    return results, applier


MIB = 1024 * 1024


def check_memory(parts, budget, result):
    """The memory the parts ask for, into the result's ``memory``; refuses an install above ``budget``."""
    totals = memory_of(parts)
    asked = sum(t["requests"] for t in totals.values())
    report = dict(requests_mib=int(asked // MIB), limits_mib=int(sum(t["limits"] for t in totals.values()) // MIB),
                  budget_mib=int(quantity(budget) // MIB) if budget else None,
                  parts=dict((name, dict(requests_mib=int(t["requests"] // MIB), limits_mib=int(t["limits"] // MIB)))
                             for name, t in totals.items()),
                  without_request=sorted(c for t in totals.values() for c in t["unbounded"]))
    result["memory"] = report
    if budget and asked > quantity(budget):
        largest = sorted(totals.items(), key=lambda item: -item[1]["requests"])[:3]
        raise KubeflowError("the components ask for %d MiB of memory in all (requests x replicas), more than "
                            "memory_budget %s (%d MiB); most: %s. Lower their requests with resources, or remove "
                            "components. Nothing was applied" % (
                                report["requests_mib"], budget, report["budget_mib"],
                                ", ".join("%s %d MiB" % (n, t["requests"] // MIB) for n, t in largest)))


def run(module, source, result):
    """Everything that may be refused or fail, in order; returns what the result is made of."""
    params = module.params
    release_line(params["release"])
    parts = source.parts()
    for name, objects in parts:
        if name == "dex":
            set_dex_users(objects, params["dex_users"], yaml, params["dex_connectors"], params["dex_static_clients"])
        if name == "oauth2_proxy" and params["auth"] == "oidc":
            set_oidc(objects, params["oidc_issuer_url"], params["oidc_client_id"], params["oidc_client_secret"],
                     params["oidc_scope"], params["oidc_redirect_url"], params["oidc_cookie_refresh"])
    set_resources(parts, params["resources"])
    check_memory(parts, params["memory_budget"], result)
    try:
        client = KubeClient(params["kubeconfig"], params["context"])
    except ImportError:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=traceback.format_exc(), **result)
    except Exception as exc:  # kubeconfig errors come as several types
        raise KubeflowError("cannot load the kubeconfig %s: %s" % (params["kubeconfig"] or "(default)", exc))
    result["kubernetes_version"] = check_kubernetes(params["release"], client.version())
    if not client.default_storage_classes():
        text = ("the cluster has no default StorageClass; Kubeflow's PVCs would stay Pending. Run the storage layer "
                "first (it makes CephFS the default)")
        if not module.check_mode:
            raise KubeflowError(text + ". Nothing was applied")
        # a check run of the whole site comes before the storage layer has made its StorageClass
        module.warn(text + "; the real run will refuse unless it exists by then")
    results, applier = install(module, client, parts, result["components"])
    return parts, results, applier, client


def main():
    module = build_module()
    check_arguments(module)
    if yaml is None:  # pragma: no cover
        module.fail_json(msg=missing_required_lib("PyYAML"), exception=YAML_IMPORT_ERROR)
    params = module.params
    result = dict(changed=False, release=params["release"], components=[], objects=dict(total=0, created=0, changed=0,
                  unchanged=0), created=[], changed_objects=[], crds_established=[], retried=[], dashboard_url=None,
                  memory=None)
    source = Source(module)
    result["source"] = source.kind()
    try:
        try:
            parts, results, applier, client = run(module, source, result)
        except (KubeflowError, ApiError, ApplyFailed) as exc:
            module.fail_json(msg="Kubeflow %s: %s" % (params["release"], exc), **result)
        address = None if module.check_mode else client.gateway_address()
    finally:
        source.cleanup()
    result["objects"] = counts(results)
    result["created"] = [object_name(r) for r in results if r["action"] == "created"]
    result["changed_objects"] = [object_name(r) for r in results if r["action"] == "changed"]
    result["crds_established"] = [] if module.check_mode else sorted(
        o["metadata"]["name"] for _n, objects in parts for o in objects if phase(o) == PHASE_CRDS)
    result["retried"] = [dict(object=r["object"], attempts=r["attempts"], error=r["error"]) for r in applier.retried]
    result["dashboard_url"] = "http://%s/" % address if address else None
    result["changed"] = bool(result["created"] or result["changed_objects"])
    if module._diff:
        result["diff"] = dict(before="", after="".join("%s %s\n" % (r["action"], object_name(r)) for r in results
                                                       if r["action"] != "unchanged"))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
