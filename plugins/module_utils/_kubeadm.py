# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubeadm as data: option checks, the configuration documents, parsers for kubeadm, kubectl and etcdctl
outputs, the CA public key pin, and the decisions the kubeadm_join module takes from a node's files.

Pure functions only (no command runs here). Every host path goes through ``host_path``, which puts ``ROOT`` in
front; ``ROOT`` is ``/`` on a real host (unit tests point it at a temporary folder).

The configuration is written as JSON documents separated by ``---`` lines: kubeadm splits a configuration file
into documents with ``k8s.io/apimachinery/pkg/util/yaml.NewYAMLReader`` and decodes each with ``sigs.k8s.io/yaml``,
which reads YAML and therefore JSON (cmd/kubeadm/app/util/marshal.go, SplitYAMLDocuments). No YAML library is
needed on the node.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import datetime
import hashlib
import ipaddress
import json
import os
import re

ROOT = "/"

KUBEADM_API = "kubeadm.k8s.io/v1beta4"  # kubeadm >= 1.31
KUBELET_API = "kubelet.config.k8s.io/v1beta1"
MIN_KUBEADM = (1, 31)

KUBERNETES_DIR = "/etc/kubernetes"
ADMIN_CONF = "/etc/kubernetes/admin.conf"
SUPER_ADMIN_CONF = "/etc/kubernetes/super-admin.conf"  # written by `kubeadm init` only (>= 1.29), never by a join
KUBELET_CONF = "/etc/kubernetes/kubelet.conf"
BOOTSTRAP_KUBELET_CONF = "/etc/kubernetes/bootstrap-kubelet.conf"
MANIFESTS_DIR = "/etc/kubernetes/manifests"
CA_CRT = "/etc/kubernetes/pki/ca.crt"
ETCD_PKI = "/etc/kubernetes/pki/etcd"
KUBELET_CONFIG = "/var/lib/kubelet/config.yaml"
ETCD_DATA_DIR = "/var/lib/etcd"
CNI_CONF_DIR = "/etc/cni/net.d"
CONTROL_PLANE_MANIFESTS = ("etcd.yaml", "kube-apiserver.yaml", "kube-controller-manager.yaml", "kube-scheduler.yaml")

# kubeadm deletes the uploaded control-plane certificates (Secret kubeadm-certs) after two hours.
UPLOADED_CERTS_TTL = datetime.timedelta(hours=2)
DEFAULT_TOKEN_GROUP = "system:bootstrappers:kubeadm:default-node-token"

NODE_STATES = ("absent", "initialised", "control_plane", "worker", "half_joined")

TOKEN_RE = re.compile(r"^[a-z0-9]{6}\.[a-z0-9]{16}$")
TOKEN_ANYWHERE_RE = re.compile(r"\b[a-z0-9]{6}\.[a-z0-9]{16}\b")
CERT_KEY_RE = re.compile(r"^[0-9a-fA-F]{64}$")
CERT_KEY_ANYWHERE_RE = re.compile(r"\b[0-9a-fA-F]{64}\b")
CA_HASH_RE = re.compile(r"^sha256:[0-9a-fA-F]{64}$")
CA_HASH_ANYWHERE_RE = re.compile(r"sha256:[0-9a-f]{64}")
VERSION_RE = re.compile(r"^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")
DURATION_RE = re.compile(r"^(?:(?:[0-9]+(?:\.[0-9]+)?)(?:ns|us|\u00b5s|ms|s|m|h))+\Z")
DURATION_PART_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|\u00b5s|ms|s|m|h)")
DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS_SUBDOMAIN_RE = re.compile(r"^%s(\.%s)*$" % (DNS_LABEL, DNS_LABEL))
HOST_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*$")


def host_path(path):
    """The host path ``path`` under ROOT."""
    return os.path.join(ROOT, path.lstrip("/"))


# --- option checks -----------------------------------------------------------------------------------------------


class OptionError(ValueError):
    """A bad option value; ``option`` names it."""

    def __init__(self, option, message):
        super(OptionError, self).__init__("%s: %s" % (option, message))
        self.option = option


def parse_endpoint(endpoint, option="control_plane_endpoint"):
    """(host, port) of ``host:port`` or ``[ipv6]:port``; OptionError when there is no port or it is not one."""
    text = (endpoint or "").strip()
    if "://" in text or "/" in text:
        raise OptionError(option, "%r must be host:port, without a scheme or a path" % endpoint)
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or not text[close + 1:].startswith(":"):
            raise OptionError(option, "%r must be [IPv6]:port, with a port (for example [fd00::10]:6443)" % endpoint)
        host, port = text[1:close], text[close + 2:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise OptionError(option, "%r: %r is not an IPv6 address" % (endpoint, host))
    else:
        if text.count(":") != 1:
            raise OptionError(option, "%r must be host:port with a port, for example lb01.gpulab.lan:6443 (an IPv6 "
                                      "host goes in brackets)" % endpoint)
        host, port = text.split(":")
        if not host or not HOST_RE.match(host):
            raise OptionError(option, "%r: %r is not a host name or IPv4 address" % (endpoint, host))
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise OptionError(option, "%r: the port %r is not a TCP port (1-65535)" % (endpoint, port))
    return host, int(port)


def parse_version(version, option="kubernetes_version"):
    """(major, minor, patch) of ``vMAJOR.MINOR.PATCH``; OptionError otherwise."""
    match = VERSION_RE.match(version or "")
    if not match:
        raise OptionError(option, "%r is not a Kubernetes version vMAJOR.MINOR.PATCH, for example v1.31.4" % version)
    return tuple(int(part) for part in match.groups())


def parse_networks(value, option):
    """The networks of a CIDR or a comma-separated dual-stack pair; OptionError when one is not a network."""
    networks = []
    for part in (value or "").split(","):
        part = part.strip()
        try:
            network = ipaddress.ip_network(part, strict=True)
        except ValueError as exc:
            raise OptionError(option, "%r is not a network in CIDR notation (%s)" % (value, exc))
        networks.append(network)
    return networks


def check_subnets(pod_subnet, service_subnet):
    """OptionError when a pod network overlaps a service network (same address family)."""
    pods = parse_networks(pod_subnet, "pod_subnet")
    services = parse_networks(service_subnet, "service_subnet")
    for pod in pods:
        for service in services:
            if pod.version == service.version and pod.overlaps(service):
                raise OptionError("pod_subnet", "%s overlaps service_subnet %s; pods and services need separate address "
                                                "ranges" % (pod, service))
    return pods, services


def go_duration(text):
    """Seconds of a Go duration such as ``30m`` or ``1h30m``, exactly as written (no spaces around); ``0`` is 0;
    None when it is not one."""
    if not isinstance(text, str):
        return None
    if text == "0":
        return 0.0
    if not DURATION_RE.match(text):
        return None
    return sum(float(number) * DURATION_UNITS[unit] for number, unit in DURATION_PART_RE.findall(text))


def duration_seconds(text, option="token_ttl"):
    """Seconds of a Go duration such as ``30m`` or ``1h30m`` (spaces around ignored); OptionError otherwise."""
    seconds = go_duration((text or "").strip())
    if seconds is None:
        raise OptionError(option, "%r is not a Go duration such as 30m, 2h or 1h30m" % (text or "").strip())
    return seconds


def check_params(params):
    """Every rule between option values, before anything runs; raises OptionError naming the option."""
    state = params["state"]
    if state != "reset":
        parse_endpoint(params["control_plane_endpoint"])
    if params.get("timeout") is not None and params["timeout"] <= 0:
        raise OptionError("timeout", "must be a positive number of seconds, not %s" % params["timeout"])
    if not 0 < params.get("bind_port", 6443) < 65536:
        raise OptionError("bind_port", "%s is not a TCP port (1-65535)" % params["bind_port"])
    if params.get("node_name") and (len(params["node_name"]) > 253 or not DNS_SUBDOMAIN_RE.match(params["node_name"])):
        raise OptionError("node_name", "%r is not a lowercase RFC 1123 name, which Kubernetes requires of node "
                                       "names" % params["node_name"])
    if params.get("advertise_address"):
        try:
            ipaddress.ip_address(params["advertise_address"])
        except ValueError:
            raise OptionError("advertise_address", "%r is not an IP address" % params["advertise_address"])
    if params.get("token") is not None and not TOKEN_RE.match(params["token"]):
        # never echo the value: it is a secret
        raise OptionError("token", "is not a bootstrap token of the form [a-z0-9]{6}.[a-z0-9]{16}")
    if params.get("certificate_key") is not None and not CERT_KEY_RE.match(params["certificate_key"]):
        raise OptionError("certificate_key", "is not 64 hexadecimal characters (a 32-byte AES key)")
    for pin in params.get("ca_cert_hashes") or []:
        if not CA_HASH_RE.match(pin):
            raise OptionError("ca_cert_hashes", "%r is not sha256:<64 hexadecimal characters>" % pin)
    if state == "init":
        parse_version(params["kubernetes_version"])
        check_subnets(params["pod_subnet"], params["service_subnet"])
        duration_seconds(params.get("token_ttl") or "30m")
        if not DNS_SUBDOMAIN_RE.match(params.get("cluster_name") or ""):
            raise OptionError("cluster_name", "%r is not a lowercase RFC 1123 name" % params.get("cluster_name"))
        for san in params.get("cert_sans") or []:
            if not san or not san.strip() or " " in san:
                raise OptionError("cert_sans", "%r is not a host name or IP address" % san)
        for name in params.get("remove_etcd_members") or []:
            if not name or not name.strip():
                raise OptionError("remove_etcd_members", "an empty name")


# --- configuration documents -------------------------------------------------------------------------------------


def _seconds(value):
    return "%ds" % int(value)


def _node_registration(params):
    registration = {}
    if params.get("node_name"):
        registration["name"] = params["node_name"]
    if params.get("cri_socket"):
        registration["criSocket"] = params["cri_socket"]
    if params.get("ignore_preflight_errors"):
        registration["ignorePreflightErrors"] = list(params["ignore_preflight_errors"])
    return registration


def _api_endpoint(params):
    endpoint = {"bindPort": int(params.get("bind_port") or 6443)}
    if params.get("advertise_address"):
        endpoint["advertiseAddress"] = params["advertise_address"]
    return endpoint


def cert_sans(params):
    """The API server certificate SANs: the endpoint's host first, then ``cert_sans``, without repeats."""
    host = parse_endpoint(params["control_plane_endpoint"])[0]
    names = []
    for name in [host] + list(params.get("cert_sans") or []):
        if name not in names:
            names.append(name)
    return names


def bootstrap_token(token, ttl):
    """One entry of InitConfiguration.bootstrapTokens (cmd/kubeadm/app/apis/bootstraptoken/v1/types.go)."""
    return {
        "token": token,
        "description": "gpulab.cluster kubeadm_join: join material for one run",
        "ttl": ttl,
        "usages": ["signing", "authentication"],
        "groups": [DEFAULT_TOKEN_GROUP],
    }


def cluster_configuration(params):
    """ClusterConfiguration (kubeadm.k8s.io/v1beta4) from the module's options."""
    config = {
        "apiVersion": KUBEADM_API,
        "kind": "ClusterConfiguration",
        "clusterName": params.get("cluster_name") or "kubernetes",
        "kubernetesVersion": params["kubernetes_version"],
        "controlPlaneEndpoint": params["control_plane_endpoint"],
        "networking": {
            "podSubnet": params["pod_subnet"],
            "serviceSubnet": params.get("service_subnet") or "10.96.0.0/12",
            "dnsDomain": params.get("service_dns_domain") or "cluster.local",
        },
        "apiServer": {"certSANs": cert_sans(params)},
    }
    if params.get("image_repository"):
        config["imageRepository"] = params["image_repository"]
    return config


def init_configuration(params, token=None, certificate_key=None, timeouts=True):
    """InitConfiguration (kubeadm.k8s.io/v1beta4): the node's registration and endpoint, with the secrets given."""
    config = {
        "apiVersion": KUBEADM_API,
        "kind": "InitConfiguration",
        "localAPIEndpoint": _api_endpoint(params),
    }
    registration = _node_registration(params)
    if registration:
        config["nodeRegistration"] = registration
    if token:
        config["bootstrapTokens"] = [bootstrap_token(token, params.get("token_ttl") or "30m")]
    if certificate_key:
        config["certificateKey"] = certificate_key
    if timeouts and params.get("timeout"):
        config["timeouts"] = {
            "controlPlaneComponentHealthCheck": _seconds(params["timeout"]),
            "kubeletHealthCheck": _seconds(params["timeout"]),
        }
    return config


def kubelet_configuration(params):
    """KubeletConfiguration (kubelet.config.k8s.io/v1beta1): systemd cgroups and failSwapOn."""
    return {
        "apiVersion": KUBELET_API,
        "kind": "KubeletConfiguration",
        "cgroupDriver": "systemd",
        "failSwapOn": bool(params.get("fail_swap_on", True)),
    }


def init_documents(params):
    """The documents of `kubeadm init --config`: Init (with the token and the certificate key), Cluster, Kubelet."""
    return [
        init_configuration(params, params.get("token"), params.get("certificate_key")),
        cluster_configuration(params),
        kubelet_configuration(params),
    ]


def token_documents(params):
    """The documents of `kubeadm token create --config`: the token (and its TTL) and the cluster's version."""
    return [init_configuration(params, token=params["token"], timeouts=False), cluster_configuration(params)]


def upload_certs_documents(params):
    """The documents of `kubeadm init phase upload-certs --upload-certs --config`: the certificate key."""
    return [init_configuration(params, certificate_key=params["certificate_key"], timeouts=False),
            cluster_configuration(params)]


def join_configuration(params, control_plane):
    """JoinConfiguration (kubeadm.k8s.io/v1beta4) with bootstrap-token discovery pinned to ``ca_cert_hashes``."""
    config = {
        "apiVersion": KUBEADM_API,
        "kind": "JoinConfiguration",
        "discovery": {
            "bootstrapToken": {
                "token": params["token"],
                "apiServerEndpoint": params["control_plane_endpoint"],
                "caCertHashes": list(params["ca_cert_hashes"]),
            },
        },
    }
    registration = _node_registration(params)
    if registration:
        config["nodeRegistration"] = registration
    if control_plane:
        config["controlPlane"] = {"localAPIEndpoint": _api_endpoint(params), "certificateKey": params["certificate_key"]}
    if params.get("timeout"):
        value = _seconds(params["timeout"])
        config["timeouts"] = {"discovery": value, "tlsBootstrap": value, "kubeletHealthCheck": value,
                              "controlPlaneComponentHealthCheck": value}
    return config


def render(documents):
    """The configuration file: one JSON document per kubeadm kind, separated by ``---`` lines."""
    return "\n---\n".join(json.dumps(document, indent=2, sort_keys=False) for document in documents) + "\n"


# --- the CA public key pin ---------------------------------------------------------------------------------------


def pem_certificates(text):
    """The DER bytes of every PEM certificate in ``text``."""
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", text or "", re.S)
    certificates = []
    for block in blocks:
        try:
            certificates.append(base64.b64decode("".join(block.split()).encode("ascii")))
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise ValueError("a PEM certificate block is not valid base64")
    return certificates


def der_element(data, offset):
    """(tag, content_start, end) of the DER element at ``offset`` of ``data`` (a bytearray): one tag byte, a
    definite length."""
    if offset + 2 > len(data):
        raise ValueError("truncated DER at offset %d" % offset)
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise ValueError("multi-byte DER tags are not used in certificates")
    first = data[offset + 1]
    start = offset + 2
    if first < 0x80:
        length = first
    elif first == 0x80:
        raise ValueError("indefinite DER length")
    else:
        count = first & 0x7F
        if count > 4 or start + count > len(data):
            raise ValueError("bad DER length at offset %d" % offset)
        length = 0
        for byte in data[start:start + count]:
            length = (length << 8) | byte
        start += count
    end = start + length
    if end > len(data):
        raise ValueError("DER element at offset %d runs past the data" % offset)
    return tag, start, end


def subject_public_key_info(der):
    """The DER SubjectPublicKeyInfo of an X.509 certificate (RFC 5280 4.1: the 7th field of tbsCertificate, or
    the 6th when the explicit [0] version is absent)."""
    der = bytearray(der)
    tag, start, _end = der_element(der, 0)
    if tag != 0x30:
        raise ValueError("a certificate is a DER SEQUENCE")
    tag, tbs_start, tbs_end = der_element(der, start)
    if tag != 0x30:
        raise ValueError("tbsCertificate is a DER SEQUENCE")
    offset = tbs_start
    tag, _start, next_offset = der_element(der, offset)
    if tag == 0xA0:  # [0] EXPLICIT version
        offset = next_offset
    # serialNumber, signature, issuer, validity, subject
    for expected in (0x02, 0x30, 0x30, 0x30, 0x30):
        tag, _start, next_offset = der_element(der, offset)
        if tag != expected:
            raise ValueError("unexpected DER tag 0x%02x in tbsCertificate" % tag)
        offset = next_offset
    tag, _start, spki_end = der_element(der, offset)
    if tag != 0x30 or spki_end > tbs_end:
        raise ValueError("subjectPublicKeyInfo is not where RFC 5280 puts it")
    return bytes(der[offset:spki_end])


def ca_cert_hash(pem_text):
    """``sha256:<hex>`` of the DER SubjectPublicKeyInfo of the first certificate in ``pem_text``, as kubeadm pins a
    CA (cmd/kubeadm/app/util/pubkeypin/pubkeypin.go, Hash)."""
    certificates = pem_certificates(pem_text)
    if not certificates:
        raise ValueError("no PEM certificate")
    return "sha256:" + hashlib.sha256(subject_public_key_info(certificates[0])).hexdigest()


# --- outputs -----------------------------------------------------------------------------------------------------


PREFLIGHT_ERROR_RE = re.compile(r"\[ERROR ([^\]]+)\]:\s*(.*)")
# Checks that fail because a previous init or join left files, ports or data behind; `kubeadm reset` clears them.
LEFTOVER_CHECK_RES = (
    re.compile(r"^FileAvailable--etc-kubernetes-"),
    re.compile(r"^DirAvailable--etc-kubernetes-manifests$"),
    re.compile(r"^DirAvailable--var-lib-etcd$"),
    re.compile(r"^Port-(10250|10257|10259|2379|2380)$"),
)
ETCD_MEMBERSHIP_ERRORS = (
    ("too many learner members in cluster", "etcd already has a learner member (a stale one, or another control "
                                            "plane joining at the same time)"),
    ("can only promote a learner member", "the new etcd learner never caught up with the leader"),
    ("peer urls already exists", "an etcd member with this node's peer URL already exists"),
    ("error execution phase control-plane-join/etcd", "the etcd step of the control-plane join failed"),
)


def preflight_failed(output):
    """Whether kubeadm stopped in its preflight checks."""
    text = output or ""
    return "error execution phase preflight" in text or "[preflight] Some fatal errors occurred" in text


def preflight_errors(output):
    """[(check, message)] of the ``[ERROR check]: message`` lines of a kubeadm preflight."""
    return [(match.group(1), match.group(2).strip()) for match in PREFLIGHT_ERROR_RE.finditer(output or "")]


def is_leftover_check(check, bind_port=6443):
    """Whether a failed preflight check is state a previous kubeadm run left (which `kubeadm reset` clears)."""
    if check == "Port-%d" % bind_port:
        return True
    return any(regex.match(check) for regex in LEFTOVER_CHECK_RES)


def etcd_membership_error(output):
    """A sentence for the etcd membership failure in a failed control-plane join's output, or None."""
    text = (output or "").lower()
    for needle, sentence in ETCD_MEMBERSHIP_ERRORS:
        if needle in text:
            return sentence
    return None


def reset_report(output):
    """What `kubeadm reset` says about the node's etcd member (cmd/kubeadm/app/cmd/phases/reset/removeetcdmember.go)."""
    text = output or ""
    return {
        "etcd_member_removal_failed": "Failed to remove etcd member" in text,
        "no_cluster_config": "No kubeadm config, using etcd pod spec" in text,
    }


def kubeadm_version(output):
    """``vX.Y.Z`` from `kubeadm version -o yaml` (or json, or short), or None."""
    match = re.search(r"gitVersion\"?:\s*\"?(v[0-9]+\.[0-9]+\.[0-9]+[^\"\s]*)", output or "")
    if match:
        return match.group(1)
    match = re.match(r"^\s*(v[0-9]+\.[0-9]+\.[0-9]+\S*)\s*$", output or "")
    return match.group(1) if match else None


def version_tuple(version):
    """(major, minor, patch) of ``v1.31.4`` or ``v1.31.4-rc.0+abc``; None when unreadable."""
    match = re.match(r"^v([0-9]+)\.([0-9]+)\.([0-9]+)", version or "")
    return tuple(int(part) for part in match.groups()) if match else None


def server_version(output):
    """serverVersion.gitVersion of `kubectl version -o json`, or None (no server answer, or no JSON)."""
    text = output or ""
    start = text.find("{")
    if start < 0:
        return None
    try:
        data = json.JSONDecoder().raw_decode(text[start:])[0]
    except ValueError:
        return None
    server = data.get("serverVersion") if isinstance(data, dict) else None
    return server.get("gitVersion") if isinstance(server, dict) else None


def token_list(output):
    """{token: expires} of `kubeadm token list`; ``expires`` is the RFC 3339 time or None (``<never>``)."""
    tokens = {}
    for line in (output or "").splitlines():
        parts = line.split()
        if len(parts) >= 3 and TOKEN_RE.match(parts[0]):
            tokens[parts[0]] = None if parts[2] == "<never>" else parts[2]
    return tokens


def member_list(output):
    """The members of `etcdctl member list` (simple format: ``ID, status, name, peer URLs, client URLs, learner``)."""
    members = []
    for line in (output or "").splitlines():
        fields = [field.strip() for field in line.split(", ")]
        if len(fields) != 6 or not re.match(r"^[0-9a-f]{1,16}$", fields[0]) or fields[5] not in ("true", "false"):
            continue
        members.append({
            "id": fields[0],
            "status": fields[1],
            "name": fields[2],
            "peer_urls": [url for url in fields[3].split(",") if url],
            "client_urls": [url for url in fields[4].split(",") if url],
            "is_learner": fields[5] == "true",
        })
    return members


def _endpoint_key(url):
    """``host:port`` of an etcd URL or endpoint, with or without a scheme."""
    text = url.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    return text.rstrip("/").lower()


def url_host(url):
    """The host of an etcd URL (``https://10.0.0.1:2380`` -> ``10.0.0.1``; IPv6 brackets removed)."""
    key = _endpoint_key(url)
    if key.startswith("["):
        return key[1:key.find("]")]
    return key.rsplit(":", 1)[0] if ":" in key else key


def endpoint_health(output):
    """{host:port: healthy} of `etcdctl endpoint health` (lines ``<endpoint> is healthy: ...``/``is unhealthy``)."""
    health = {}
    for match in re.finditer(r"^(\S+) is (healthy|unhealthy):", output or "", re.M):
        health[_endpoint_key(match.group(1))] = match.group(2) == "healthy"
    return health


def member_healthy(member, health):
    """Whether one of the member's client URLs answered healthy (an unstarted member has none)."""
    return any(health.get(_endpoint_key(url)) for url in member["client_urls"])


def ca_hashes_in_output(output):
    """The ``sha256:`` pins kubeadm printed (in `kubeadm init` output, the join commands)."""
    hashes = []
    for pin in CA_HASH_ANYWHERE_RE.findall(output or ""):
        if pin not in hashes:
            hashes.append(pin)
    return hashes


def redact(text, secrets=()):
    """``text`` without the given secrets, bootstrap tokens or certificate keys (64 hex characters)."""
    result = text or ""
    for secret in secrets:
        if secret:
            result = result.replace(secret, "<redacted>")
    result = TOKEN_ANYWHERE_RE.sub("<redacted-token>", result)
    return CERT_KEY_ANYWHERE_RE.sub(lambda match: _keep_pins(match, result), result)


def _keep_pins(match, text):
    """CA pins (sha256:<64 hex>) are public; any other 64-hex run may be a certificate key."""
    if text[max(0, match.start() - 7):match.start()] == "sha256:":
        return match.group(0)
    return "<redacted-key>"


def tail(text, lines=25):
    """The last ``lines`` lines of ``text``."""
    return "\n".join((text or "").strip().splitlines()[-lines:])


# --- the node's state and the decisions --------------------------------------------------------------------------


def read_node_files():
    """What kubeadm left on this node: which of its files exist, and whether etcd has data."""
    manifests = []
    if os.path.isdir(host_path(MANIFESTS_DIR)):
        manifests = sorted(name for name in os.listdir(host_path(MANIFESTS_DIR)) if name in CONTROL_PLANE_MANIFESTS)
    etcd_data = os.path.isdir(host_path(os.path.join(ETCD_DATA_DIR, "member")))
    return {
        "kubelet_conf": os.path.exists(host_path(KUBELET_CONF)),
        "admin_conf": os.path.exists(host_path(ADMIN_CONF)),
        "super_admin_conf": os.path.exists(host_path(SUPER_ADMIN_CONF)),
        "bootstrap_kubelet_conf": os.path.exists(host_path(BOOTSTRAP_KUBELET_CONF)),
        "ca_crt": os.path.exists(host_path(CA_CRT)),
        "kubelet_config": os.path.exists(host_path(KUBELET_CONFIG)),
        "manifests": manifests,
        "etcd_data": etcd_data,
    }


def node_state(files):
    """(state, reason) of a node from ``read_node_files``; state is one of NODE_STATES."""
    present = [label for key, label in (
        ("admin_conf", "admin.conf"), ("super_admin_conf", "super-admin.conf"),
        ("bootstrap_kubelet_conf", "bootstrap-kubelet.conf"), ("ca_crt", "pki/ca.crt"),
        ("kubelet_config", "/var/lib/kubelet/config.yaml"), ("etcd_data", "etcd data in /var/lib/etcd"),
    ) if files.get(key)]
    present += ["manifests/%s" % name for name in files.get("manifests") or []]
    if not files.get("kubelet_conf"):
        if not present:
            return "absent", "no kubeadm files"
        return "half_joined", "kubelet.conf missing while %s exist" % ", ".join(present)
    manifests = set(files.get("manifests") or [])
    if not manifests:
        return "worker", "kubelet.conf and no control-plane manifests"
    missing = [name for name in CONTROL_PLANE_MANIFESTS if name not in manifests]
    if missing:
        return "half_joined", "control-plane manifests incomplete (%s missing)" % ", ".join(missing)
    if files.get("super_admin_conf"):
        return "initialised", "control-plane manifests and super-admin.conf (written by kubeadm init)"
    return "control_plane", "control-plane manifests, joined (no super-admin.conf)"


def decide(state, before, etcd_data=False):
    """What the module does: ``init``, ``refresh``, ``join``, ``reset_then_init``, ``reset_then_join``, ``reset``,
    ``none`` or ``fail``, with a message for ``fail``."""
    control_planes = ("initialised", "control_plane")
    if state == "reset":
        return ("none", None) if before == "absent" else ("reset", None)
    if state == "init":
        if before == "absent":
            return "init", None
        if before in control_planes:
            return "refresh", None
        if before == "worker":
            return "fail", ("this node is a worker; state=init runs on a control plane (the first one, or any healthy "
                            "one to refresh the join material). Reset it first (state=reset) to make it a control plane")
        if etcd_data:
            return "fail", ("this node is half-initialised and holds etcd data in /var/lib/etcd; it is not reset and "
                            "initialised again automatically, as that would destroy a cluster's data. Inspect it, then "
                            "reset it (state=reset) if its data is not needed")
        return "reset_then_init", None
    # control_plane or worker
    if before == "absent":
        return "join", None
    if before == "half_joined":
        return "reset_then_join", None
    if state == "control_plane" and before in control_planes:
        return "none", None
    if state == "worker" and before == "worker":
        return "none", None
    labels = {"initialised": "control plane (the first one)", "control_plane": "control plane", "worker": "worker"}
    return "fail", "this node is already a %s; joining it as %s needs state=reset first" % (
        labels[before], state.replace("_", " "))


def state_after(state, decision, before):
    """The node's state after a successful run of ``decision``."""
    if decision in ("init", "reset_then_init"):
        return "initialised"
    if decision in ("join", "reset_then_join"):
        return state
    if decision == "reset":
        return "absent"
    return before


def removal_plan(members, health, wanted, own_name, node_addresses=None):
    """Which etcd members of ``wanted`` (node names) to remove: (remove, skipped, refused).

    ``remove`` is a list of (name, member); ``skipped`` of (name, reason) for names with no member, a healthy one or
    this node's own; ``refused`` of (name, reason) when etcd lacks the quorum to commit a removal. A member
    that never started has no name; it is matched by its peer URL's host among the node's addresses (or the name
    itself when it is an address).
    """
    addresses = node_addresses or {}
    voters = [member for member in members if not member["is_learner"]]
    healthy_voters = len([member for member in voters if member_healthy(member, health)])
    voter_count = len(voters)
    remove, skipped, refused = [], [], []
    chosen = set()
    for name in wanted:
        hosts = set(addresses.get(name) or []) | {name}
        matches = [member for member in members if member["id"] not in chosen and (
            member["name"] == name or (not member["name"] and any(url_host(url) in hosts for url in member["peer_urls"])))]
        if not matches:
            skipped.append((name, "no etcd member"))
            continue
        if name == own_name:
            skipped.append((name, "this node's own member"))
            continue
        for member in matches:
            if member_healthy(member, health):
                skipped.append((name, "member %s is healthy" % member["id"]))
                continue
            if not member["is_learner"]:
                # Only unhealthy voters are removed, so the healthy count stays and the smaller cluster's quorum is
                # never larger: quorum now is quorum after. Without quorum now, etcd could not commit the removal.
                if healthy_voters < voter_count // 2 + 1:
                    refused.append((name, "etcd has no quorum now (%d of %d voting members healthy); removing member "
                                          "%s could not be committed" % (healthy_voters, voter_count, member["id"])))
                    continue
                voter_count -= 1
            chosen.add(member["id"])
            remove.append((name, member))
    return remove, skipped, refused


def utc_text(moment):
    """RFC 3339 UTC text of an aware datetime."""
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
