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

import hashlib
import json
import re
import zlib

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


def part_names(components):
    """The parts an install of ``components`` applies, in order: the platform, Knative for KServe, the applications."""
    check_needs(components)
    return [name for name, _folders in PLATFORM] + ([KNATIVE[0]] if "kserve" in components else []) + list(components)


def select(paths, components):
    """[(part, [paths])] to build and apply, platform first, then the applications in the order asked.

    Refuses a component whose folder the release does not list, and an application without the ones it needs.
    """
    table = PLATFORM + (KNATIVE,) + APPLICATIONS
    parts = [(name, [p for p in paths if _owner(p, table) == name]) for name in part_names(components)]
    platform = [name for name, _folders in PLATFORM]
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
