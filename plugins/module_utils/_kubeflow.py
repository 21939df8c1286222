# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a Kubeflow release holds, read from the release itself (gpulab.cluster.kubeflow).

The components of a ``kubeflow/manifests`` release are the kustomize paths of its ``example/kustomization.yaml``;
their folders move between releases (``apps/`` became ``applications/``, ``istio-1-22`` became ``istio``), so the
module reads that file from the release and picks each component's paths by the folder names below, instead of
keeping a path table per release. A component whose folder the file does not list (commented out, as Training
Operator v1 is in releases that moved to Trainer v2) is not in the release, and is refused before anything is applied.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import json
import re
import zlib
from urllib.parse import urlparse

from ansible_collections.gpulab.cluster.plugins.module_utils._kubeadm import go_duration
from ansible_collections.gpulab.cluster.plugins.module_utils._tenants import quantity
from ansible_collections.gpulab.cluster.plugins.module_utils._toml import TomlDocument, TomlError

# Folder names (path segments) of each part in example/kustomization.yaml, in the order they are installed.
# The kubeflow namespace comes before Istio: Istio's kubeflow-istio-resources (the kubeflow-gateway) live in it.
PLATFORM = (
    ("cert_manager", ("cert-manager",)),
    ("kubeflow_namespace", ("kubeflow-namespace",)),
    ("istio", ("istio", "istio-1-22", "istio-1-23", "istio-1-24")),
    ("oauth2_proxy", ("oauth2-proxy",)),
    ("dex", ("dex",)),
    ("network_policies", ("networkpolicies",)),
    ("kubeflow_roles", ("kubeflow-roles",)),
)
KNATIVE = ("knative", ("knative",))
APPLICATIONS = (
    ("central_dashboard", ("centraldashboard",)),
    ("profiles", ("profiles",)),
    ("admission_webhook", ("admission-webhook",)),
    ("notebooks", ("jupyter",)),
    ("volumes_web_app", ("volumes-web-app", "pvcviewer-controller")),
    ("tensorboards", ("tensorboard",)),
    ("pipelines", ("pipeline",)),
    ("katib", ("katib",)),
    ("training_operator", ("training-operator",)),
    ("kserve", ("kserve",)),
    ("model_registry", ("model-registry",)),
    ("spark_operator", ("spark",)),
)
# Never installed, as no part names its folder: common/user-namespace, the example user's namespace and profile
# (its password is published).
# An application needs the ones listed (the platform comes anyway).
NEEDS = {
    "notebooks": ("profiles", "admission_webhook"),
    "volumes_web_app": ("profiles",),
    "tensorboards": ("profiles",),
    "central_dashboard": ("profiles",),
    "pipelines": ("profiles",),
    "katib": ("profiles",),
    "kserve": ("profiles",),
    "model_registry": ("profiles",),
}

# The Kubernetes minor each release line was validated on (the release notes on kubeflow/website:
# docs/releases/kubeflow-1.9.md "Kubernetes 1.29", kubeflow-1.10.md "Kubernetes 1.32"; docs/research/kubeflow-facts.md).
VALIDATED_KUBERNETES = {(1, 9): (1, 29), (1, 10): (1, 32)}
# This module's policy: the validated minor and the one on either side of it.
SKEW = 1
RELEASE = re.compile(r"^v(\d+)\.(\d+)\.(\d+)(-rc\.\d+)?$")
EXAMPLE = "example/kustomization.yaml"
DEX_USERS_ANNOTATION = "gpulab.lan/dex-users-digest"


class KubeflowError(Exception):
    """Refused before anything is applied; the message names what and the option that fixes it."""


def release_line(release):
    match = RELEASE.match(release or "")
    if not match:
        raise KubeflowError("release %r is not a kubeflow/manifests release tag like v1.10.0; set release to one of "
                            "the tags at https://github.com/kubeflow/manifests/tags" % (release,))
    line = (int(match.group(1)), int(match.group(2)))
    if line not in VALIDATED_KUBERNETES:
        raise KubeflowError("release %s is of the Kubeflow %d.%d line, which this module does not know (known: %s); "
                            "its supported Kubernetes versions cannot be checked" % (
                                release, line[0], line[1], ", ".join("%d.%d" % k for k in sorted(VALIDATED_KUBERNETES))))
    return line


def check_kubernetes(release, server_version):
    """Refuse a cluster whose minor is outside the release's validated minor +/- SKEW. ``server_version`` is the
    gitVersion the API server reports (v1.33.5)."""
    line = release_line(release)
    match = re.match(r"^v?(\d+)\.(\d+)", server_version or "")
    if not match:
        raise KubeflowError("the API server reports the version %r, which is not a Kubernetes version" % (
            server_version,))
    minor = (int(match.group(1)), int(match.group(2)))
    validated = VALIDATED_KUBERNETES[line]
    low, high = (validated[0], validated[1] - SKEW), (validated[0], validated[1] + SKEW)
    if not low <= minor <= high:
        raise KubeflowError("Kubernetes %s is outside the range of Kubeflow %s: it was validated on %d.%d, and this "
                            "module accepts %d.%d to %d.%d; pick a release of another line" % (
                                server_version, release, validated[0], validated[1], low[0], low[1], high[0], high[1]))
    return "%d.%d" % minor


def example_paths(text):
    """The ``resources`` entries of example/kustomization.yaml, in order (commented lines are not entries)."""
    paths = []
    in_resources = False
    for line in text.splitlines():
        if re.match(r"^resources:\s*$", line):
            in_resources = True
            continue
        if in_resources and re.match(r"^\S", line) and not line.startswith(("-", "#")):
            in_resources = False
        if not in_resources:
            continue
        match = re.match(r"^-\s+(\S+)", line)
        if match:
            paths.append(match.group(1))
    if not paths:
        raise KubeflowError("%s lists no resources; is this a kubeflow/manifests checkout?" % EXAMPLE)
    return paths


TOP_FOLDERS = ("common", "apps", "applications", "contrib", "experimental")


def _key(path):
    """The folder that says what a path is: the one under common/, apps/, applications/ or contrib/."""
    segments = [part for part in path.split("/") if part not in ("", "..", ".")]
    if len(segments) > 1 and segments[0] in TOP_FOLDERS:
        return segments[1]
    return segments[0] if segments else ""


def _owner(path, table):
    key = _key(path)
    for name, folders in table:
        if key in folders:
            return name
    return None


def check_needs(components):
    """Refuse an application listed without the ones it needs."""
    missing = ["%s needs %s" % (name, need) for name in components for need in NEEDS.get(name, ())
               if need not in components]
    if missing:
        raise KubeflowError("; ".join(missing) + ": add them to components")


def platform_names(auth="dex"):
    """The platform parts for the sign-in ``auth``: with an external OpenID Connect provider there is no Dex."""
    return [name for name, _folders in PLATFORM if not (name == "dex" and auth == "oidc")]


def part_names(components, auth="dex"):
    """The parts an install of ``components`` applies, in order: the platform, Knative for KServe, the applications."""
    check_needs(components)
    return platform_names(auth) + ([KNATIVE[0]] if "kserve" in components else []) + list(components)


def select(paths, components, auth="dex"):
    """[(part, [paths])] to build and apply, platform first, then the applications in the order asked.

    Refuses a component whose folder the release does not list, and an application without the ones it needs.
    """
    table = PLATFORM + (KNATIVE,) + APPLICATIONS
    parts = [(name, [p for p in paths if _owner(p, table) == name]) for name in part_names(components, auth)]
    platform = platform_names(auth)
    absent = [name for name, found in parts if not found and name in platform]
    if absent:
        raise KubeflowError("%s of this release lists no %s; it is not a kubeflow/manifests release this module can "
                            "install" % (EXAMPLE, ", ".join(absent)))
    not_in_release = [name for name, found in parts if not found and name in components]
    if not_in_release:
        raise KubeflowError("%s not in this release: its %s lists no folder for %s (it may be commented out there); "
                            "remove %s from components or pick a release that has %s" % (
                                " and ".join(not_in_release), EXAMPLE, ", ".join(not_in_release),
                                "them" if len(not_in_release) > 1 else "it", "them" if len(not_in_release) > 1 else "it"))
    return parts


def dex_static_passwords(users):
    """Dex's staticPasswords entries for ``dex_users`` (each with a stable userID derived from the e-mail)."""
    entries = []
    for user in users:
        email = user["email"]
        entries.append(dict(
            email=email,
            hash=user["password_hash"],
            username=user.get("username") or email.split("@", 1)[0],
            userID="%010d" % zlib.crc32(email.encode("utf-8")),
        ))
    return entries


def set_dex_users(objects, users, yaml_module, connectors=None, clients=None):
    """Replace the example user in Dex's ConfigMap (``dex``, its ``config.yaml``) with ``users``, its connectors
    with ``connectors`` (e.g. LDAP), and add ``clients`` to its staticClients (e.g. Grafana, which then signs in through
    the same Dex; the release's own client, oauth2-proxy's, stays); returns the number of ConfigMaps changed. Refuses a
    build whose Dex configuration has no staticPasswords to replace."""
    changed = 0
    for obj in objects:
        if obj.get("kind") != "ConfigMap" or (obj.get("metadata") or {}).get("name") != "dex":
            continue
        data = obj.get("data") or {}
        if "config.yaml" not in data:
            continue
        config = yaml_module.safe_load(data["config.yaml"]) or {}
        if "staticPasswords" not in config:
            raise KubeflowError("Dex's ConfigMap in this release has no staticPasswords to replace; dex_users cannot "
                                "be set")
        config["staticPasswords"] = dex_static_passwords(users)
        config["enablePasswordDB"] = True
        if connectors:
            config["connectors"] = [dict(type=c["type"], id=c["id"], name=c["name"], config=c["config"])
                                    for c in connectors]
        else:
            config.pop("connectors", None)
        ids = [c["id"] for c in clients or []]
        config["staticClients"] = [c for c in config.get("staticClients") or [] if c.get("id") not in ids] + [
            dict(id=c["id"], name=c["name"], secret=c["secret"], redirectURIs=list(c["redirect_uris"]))
            for c in clients or []]
        data["config.yaml"] = yaml_module.safe_dump(config, default_flow_style=False, sort_keys=False)
        changed += 1
    if not changed:
        raise KubeflowError("the build has no Dex ConfigMap 'dex' with a config.yaml; dex_users cannot be set")
    # Dex reads its configuration only when it starts: a digest of the users in its pod template restarts it when
    # they change (a digest of the entries, not the hashes themselves).
    digest = hashlib.sha256(json.dumps([dex_static_passwords(users), connectors or [], clients or []], sort_keys=True)
                            .encode("utf-8")).hexdigest()
    for obj in objects:
        if obj.get("kind") == "Deployment" and (obj.get("metadata") or {}).get("name") == "dex":
            template = obj.setdefault("spec", {}).setdefault("template", {})
            template.setdefault("metadata", {}).setdefault("annotations", {})[DEX_USERS_ANNOTATION] = digest
    return changed


# oauth2-proxy's configuration in the release (common/oauth2-proxy/base): its oauth2_proxy.cfg (TOML) in a ConfigMap,
# its client and cookie secrets in a Secret. The settings below point at Kubeflow's own Dex (an in-cluster token
# endpoint, a relative login URL, no discovery, Dex's prompt), and go when an external provider signs users in.
OAUTH2_PROXY_CONFIG = "oauth2_proxy.cfg"
OAUTH2_PROXY_SECRET_KEYS = ("client-id", "client-secret", "cookie-secret")
DEX_ONLY_SETTINGS = ("skip_oidc_discovery", "login_url", "redeem_url", "oidc_jwks_url", "prompt")
SIDECAR_INJECT = "sidecar.istio.io/inject"
DEX_ROUTE = "^/dex/"
OIDC_ANNOTATION = "gpulab.lan/oidc-digest"


def cookie_secret(client_secret):
    """oauth2-proxy's cookie secret, derived from the client secret (32 characters), so that no published secret of the
    release signs the cookies and a second run gives the same one."""
    return hashlib.sha256(("gpulab-oauth2-proxy-cookie:" + client_secret).encode("utf-8")).hexdigest()[:32]


def _of_kind(objects, kind):
    return [o for o in objects if o.get("kind") == kind]


def _without_dex_settings(text):
    """The configuration text without the Dex-only settings and the comment block right above each (which explains
    them); checked to change nothing else."""
    before = TomlDocument(text).data
    for key in DEX_ONLY_SETTINGS:
        text = re.sub(r"(?m)^(?:#[^\n]*\n)*%s[ \t]*=[^\n]*(?:\n|$)" % re.escape(key), "", text, count=1)
    after = TomlDocument(text).data
    if after != dict((key, value) for key, value in before.items() if key not in DEX_ONLY_SETTINGS):
        raise TomlError("removing %s changed other settings" % ", ".join(DEX_ONLY_SETTINGS))
    return text


def set_oidc(objects, issuer, client_id, client_secret, scope, redirect_url, cookie_refresh):
    """Point the release's oauth2-proxy (the objects of the oauth2_proxy part) at an external OpenID Connect provider
    instead of Kubeflow's Dex: its configuration (issuer, scope, discovery instead of Dex's endpoints, no unauthenticated
    /dex/ route, the absolute ``redirect_url`` the provider has registered, sessions refreshed every
    ``cookie_refresh`` so that the forwarded ID token never expires under Istio's check), its client and cookie
    secrets, and Istio's RequestAuthentication that trusted Dex's tokens (now the provider's, for this client only).
    Refuses a build that lacks any of them, naming what is missing. Returns Dex's issuer URL as the release had it."""
    configs = [o for o in _of_kind(objects, "ConfigMap") if OAUTH2_PROXY_CONFIG in (o.get("data") or {})]
    if len(configs) != 1:
        raise KubeflowError("the build of oauth2_proxy has %d ConfigMaps with %s (one expected); auth=oidc cannot be "
                            "set; use auth=dex, or a release whose oauth2-proxy has one" % (
                                len(configs), OAUTH2_PROXY_CONFIG))
    try:
        config = TomlDocument(_without_dex_settings(configs[0]["data"][OAUTH2_PROXY_CONFIG]))
        dex_issuer = config.get(["oidc_issuer_url"])
        config.set(["oidc_issuer_url"], issuer)
        config.set(["scope"], scope)
        # the provider gets an absolute redirect URI (Dex accepts the release's relative one, others do not)
        config.set(["redirect_url"], redirect_url)
        config.set(["relative_redirect_url"], False)
        expire = go_duration(config.get(["cookie_expire"]))
        if expire and go_duration(cookie_refresh) >= expire:
            raise KubeflowError("oidc_cookie_refresh %s is not shorter than the release's cookie_expire %s; oauth2-proxy "
                                "would not start" % (cookie_refresh, config.get(["cookie_expire"])))
        config.set(["cookie_refresh"], cookie_refresh)
        routes = config.get(["skip_auth_routes"])
        if isinstance(routes, list) and DEX_ROUTE in routes:
            config.set(["skip_auth_routes"], [route for route in routes if route != DEX_ROUTE])
        if config.get(["provider_display_name"]) is not None:
            config.set(["provider_display_name"], urlparse(issuer).hostname or issuer)
    except TomlError as exc:
        raise KubeflowError("oauth2-proxy's %s in this release cannot be edited: %s" % (OAUTH2_PROXY_CONFIG, exc))
    if not dex_issuer:
        raise KubeflowError("oauth2-proxy's %s in this release has no oidc_issuer_url; auth=oidc cannot be set"
                            % OAUTH2_PROXY_CONFIG)
    configs[0]["data"][OAUTH2_PROXY_CONFIG] = config.text
    secrets = [o for o in _of_kind(objects, "Secret")
               if all(key in (o.get("data") or {}) or key in (o.get("stringData") or {})
                      for key in OAUTH2_PROXY_SECRET_KEYS)]
    if len(secrets) != 1:
        raise KubeflowError("the build of oauth2_proxy has %d Secrets with %s (one expected); auth=oidc cannot be set"
                            % (len(secrets), ", ".join(OAUTH2_PROXY_SECRET_KEYS)))
    values = dict(zip(OAUTH2_PROXY_SECRET_KEYS, (client_id, client_secret, cookie_secret(client_secret))))
    secret = secrets[0]
    secret.pop("stringData", None)
    secret.setdefault("data", {}).update(
        (key, base64.b64encode(value.encode("utf-8")).decode("ascii")) for key, value in values.items())
    trusted = 0
    for policy in _of_kind(objects, "RequestAuthentication"):
        for rule in (policy.get("spec") or {}).get("jwtRules") or []:
            if rule.get("issuer") == dex_issuer:
                rule["issuer"] = issuer
                rule.pop("jwksUri", None)  # Istio finds the keys through the issuer's discovery document
                # a site-wide provider signs tokens for other applications too: only Kubeflow's client's count
                rule["audiences"] = [client_id]
                trusted += 1
    if not trusted:
        raise KubeflowError("no RequestAuthentication of oauth2_proxy trusts Dex's issuer %s; auth=oidc cannot be set"
                            % dex_issuer)
    # oauth2-proxy reads its configuration only when it starts; a digest of it in the pod template restarts it.
    digest = hashlib.sha256(json.dumps([issuer, client_id, scope, redirect_url, cookie_refresh,
                                        cookie_secret(client_secret)]).encode("utf-8"))
    for deployment in _of_kind(objects, "Deployment"):
        if deployment.get("metadata", {}).get("name") == "oauth2-proxy":
            template = deployment.setdefault("spec", {}).setdefault("template", {})
            template.setdefault("metadata", {}).setdefault("annotations", {})[OIDC_ANNOTATION] = digest.hexdigest()
    return dex_issuer


def _workloads(parts):
    """(part, object) for each Deployment and StatefulSet of the parts."""
    for name, objects in parts:
        for obj in objects:
            if obj.get("kind") in ("Deployment", "StatefulSet") and str(obj.get("apiVersion", "")).startswith("apps/"):
                yield name, obj


def _where(obj):
    meta = obj.get("metadata") or {}
    return "%s %s/%s" % (obj["kind"], meta.get("namespace") or "-", meta.get("name"))


def _containers(obj):
    return ((obj.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []


def _check_quantities(values, where):
    for key, value in sorted((values or {}).items()):
        if quantity(value) is None:
            raise KubeflowError("%s.%s %r is not a Kubernetes quantity (like 250m, 512Mi, 2Gi)" % (where, key, value))


# Istio's per-pod annotations for the resources of the sidecar it injects (istio.io, "Resource Annotations").
SIDECAR_ANNOTATIONS = {("requests", "cpu"): "sidecar.istio.io/proxyCPU",
                       ("requests", "memory"): "sidecar.istio.io/proxyMemory",
                       ("limits", "cpu"): "sidecar.istio.io/proxyCPULimit",
                       ("limits", "memory"): "sidecar.istio.io/proxyMemoryLimit"}


def _set_sidecar(obj, sidecar, where):
    """Istio's sidecar resources as annotations of the pod template; refuses keys other than cpu and memory."""
    annotations = obj.setdefault("spec", {}).setdefault("template", {}).setdefault("metadata", {}).setdefault(
        "annotations", {})
    for field in ("requests", "limits"):
        for key, value in sorted((sidecar.get(field) or {}).items()):
            if (field, key) not in SIDECAR_ANNOTATIONS:
                raise KubeflowError("%s.sidecar.%s.%s: Istio sets only cpu and memory of its sidecar" % (
                    where, field, key))
            annotations[SIDECAR_ANNOTATIONS[(field, key)]] = str(value)
    request = quantity(annotations.get(SIDECAR_ANNOTATIONS[("requests", "memory")]))
    limit = quantity(annotations.get(SIDECAR_ANNOTATIONS[("limits", "memory")]))
    if request is not None and limit is not None and request > limit:
        raise KubeflowError("%s: the sidecar's memory request of %s is above its limit" % (where, _where(obj)))


def set_resources(parts, entries):
    """Set the requests and limits of ``entries`` ({name, namespace, container, requests, limits, sidecar}) on the
    release's Deployments and StatefulSets; what is given replaces the release's requests (or limits) of that
    container; ``sidecar`` ({requests, limits}) becomes Istio's annotations for the sidecar it injects. Refuses an
    entry that names no workload or container of the parts, a value that is no quantity, and a request above its
    limit. Returns the containers set, as "Kind namespace/name container"."""
    done = []
    for index, entry in enumerate(entries):
        where = "resources[%d]" % index
        for field in ("requests", "limits"):
            _check_quantities(entry.get(field), "%s.%s" % (where, field))
            _check_quantities((entry.get("sidecar") or {}).get(field), "%s.sidecar.%s" % (where, field))
        found = [obj for _part, obj in _workloads(parts) if obj["metadata"].get("name") == entry["name"] and
                 entry.get("namespace") in (None, obj["metadata"].get("namespace"))]
        if not found:
            raise KubeflowError("%s names %s%s, which no component being installed has as a Deployment or "
                                "StatefulSet; fix the name (kustomize build of the release shows them) or remove the "
                                "entry" % (where, entry["name"], " in %s" % entry["namespace"]
                                           if entry.get("namespace") else ""))
        for obj in found:
            containers = [c for c in _containers(obj) if entry.get("container") in (None, c.get("name"))]
            if not containers:
                raise KubeflowError("%s: %s has no container %s (it has %s)" % (
                    where, _where(obj), entry["container"], ", ".join(c.get("name") for c in _containers(obj))))
            for container in containers:
                resources = container.setdefault("resources", {})
                for field in ("requests", "limits"):
                    if entry.get(field) is not None:
                        resources[field] = dict(entry[field])
                requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
                for key in sorted(set(requests) & set(limits)):
                    if quantity(requests[key]) > quantity(limits[key]):
                        raise KubeflowError("%s: the %s request of %s, container %s, %s, is above its limit %s" % (
                            where, key, _where(obj), container.get("name"), requests[key], limits[key]))
                done.append("%s %s" % (_where(obj), container.get("name")))
            if entry.get("sidecar"):
                _set_sidecar(obj, entry["sidecar"], where)
    return done


def memory_of(parts):
    """{part: {requests, limits (bytes, containers x replicas), unbounded: [containers without a memory request]}}
    of the parts' Deployments and StatefulSets: their containers, and Istio's sidecar where the pod template's
    annotations give its memory (init containers, and sidecars without those annotations, are not counted)."""
    totals = dict((name, dict(requests=0, limits=0, unbounded=[])) for name, _objects in parts)
    for name, obj in _workloads(parts):
        replicas = (obj.get("spec") or {}).get("replicas", 1)
        replicas = 1 if replicas is None else int(replicas)
        annotations = ((obj.get("spec") or {}).get("template") or {}).get("metadata", {}).get("annotations") or {}
        sidecar = dict(name="istio-proxy (sidecar)", resources=dict(
            requests=dict(memory=annotations.get(SIDECAR_ANNOTATIONS[("requests", "memory")])),
            limits=dict(memory=annotations.get(SIDECAR_ANNOTATIONS[("limits", "memory")]))))
        labels = ((obj.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}
        # Istio reads the label first, then the annotation
        injected = str(labels.get(SIDECAR_INJECT, annotations.get(SIDECAR_INJECT))).lower() != "false"
        counted = injected and (sidecar["resources"]["requests"]["memory"] or sidecar["resources"]["limits"]["memory"])
        for container in _containers(obj) + ([sidecar] if counted else []):
            resources = container.get("resources") or {}
            request = quantity((resources.get("requests") or {}).get("memory"))
            limit = quantity((resources.get("limits") or {}).get("memory"))
            if request is None:
                # the API server takes a container's limit as its request when only the limit is set
                request = limit
            if request is None:
                totals[name]["unbounded"].append("%s %s" % (_where(obj), container.get("name")))
            totals[name]["requests"] += int(request or 0) * replicas
            totals[name]["limits"] += int(limit or 0) * replicas
    return totals
