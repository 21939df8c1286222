# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugins/module_utils/_kubeadm.py: option checks, configuration documents checked against the real kubeadm types,
parsers on recorded real outputs (tests/unit/plugins/fixtures/kubeadm, sources in its README.md), the CA pin."""
from __future__ import absolute_import, division, print_function

import datetime
import hashlib
import json
import os
import shutil
import subprocess

import pytest

from ansible_collections.gpulab.cluster.plugins.module_utils import _kubeadm as kubeadm

__metaclass__ = type

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "kubeadm")
TOKEN = "abcdef.0123456789abcdef"
CERT_KEY = "f" * 64
CA_HASH = "sha256:" + "4c5a0e3bd1c8a3cbb2f3b4b0a0c7e9b1d7f0a36e3a2e8c1d9b6f5e4d3c2b1a09"
# The pin kubeadm's own test expects for testdata/test-cert.pem (cmd/kubeadm/app/util/pubkeypin/pubkeypin_test.go).
PUBKEYPIN_EXPECTED = "sha256:345959acb2c3b2feb87d281961c893f62a314207ef02599f1cc4a5fb255480b3"


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def init_params(**changes):
    params = dict(
        state="init", control_plane_endpoint="lb01.gpulab.lan:6443", kubernetes_version="v1.31.4",
        cluster_name="gpulab", pod_subnet="10.244.0.0/16", service_subnet="10.96.0.0/12",
        service_dns_domain="cluster.local", cert_sans=["lb01.gpulab.lan", "192.168.50.10"],
        advertise_address="192.168.50.11", bind_port=6443, node_name=None,
        cri_socket="unix:///run/containerd/containerd.sock", image_repository=None, fail_swap_on=True,
        ignore_preflight_errors=None, token=TOKEN, token_ttl="30m", certificate_key=CERT_KEY, ca_cert_hashes=None,
        remove_etcd_members=None, timeout=300,
    )
    params.update(changes)
    return params


def join_params(state="worker", **changes):
    params = init_params(state=state, kubernetes_version=None, pod_subnet=None, cert_sans=None,
                         ca_cert_hashes=[CA_HASH], advertise_address=None, cluster_name="kubernetes")
    if state == "worker":
        params["certificate_key"] = None
    params.update(changes)
    return params


# --- option checks -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint, expected", [
    ("lb01.gpulab.lan:6443", ("lb01.gpulab.lan", 6443)),
    ("192.168.50.10:443", ("192.168.50.10", 443)),
    ("[fd00::10]:6443", ("fd00::10", 6443)),
])
def test_endpoints_with_a_port(endpoint, expected):
    assert kubeadm.parse_endpoint(endpoint) == expected


@pytest.mark.parametrize("endpoint, words", [
    ("lb01.gpulab.lan", "with a port"),
    ("https://lb01.gpulab.lan:6443", "without a scheme"),
    ("lb01.gpulab.lan:6443/api", "without a scheme or a path"),
    ("lb01.gpulab.lan:0", "not a TCP port"),
    ("lb01.gpulab.lan:70000", "not a TCP port"),
    ("lb01.gpulab.lan:https", "not a TCP port"),
    (":6443", "not a host name"),
    ("lb_01:6443", "not a host name"),
    ("fd00::10:6443", "IPv6 host goes in brackets"),
    ("[fd00::10]", "with a port"),
    ("[fd00::zz]:6443", "is not an IPv6 address"),
    ("", "with a port"),
])
def test_endpoints_without_a_usable_port_are_refused(endpoint, words):
    with pytest.raises(kubeadm.OptionError) as caught:
        kubeadm.parse_endpoint(endpoint)
    assert caught.value.option == "control_plane_endpoint"
    assert words in str(caught.value)


@pytest.mark.parametrize("version", ["1.31.4", "v1.31", "v1.31.4-rc.0", "v01.31.4", "latest", "", None])
def test_versions_must_be_v_major_minor_patch(version):
    with pytest.raises(kubeadm.OptionError) as caught:
        kubeadm.parse_version(version)
    assert caught.value.option == "kubernetes_version"


def test_versions():
    assert kubeadm.parse_version("v1.31.4") == (1, 31, 4)
    assert kubeadm.version_tuple("v1.31.4-rc.0+abc") == (1, 31, 4)
    assert kubeadm.version_tuple("1.31") is None


@pytest.mark.parametrize("pods, services, ok", [
    ("10.244.0.0/16", "10.96.0.0/12", True),
    ("10.96.0.0/16", "10.96.0.0/12", False),           # pods inside services
    ("10.0.0.0/8", "10.96.0.0/12", False),             # services inside pods
    ("10.244.0.0/16,fd00:10:244::/56", "10.96.0.0/12,fd00:10:96::/112", True),
    ("10.244.0.0/16,fd00:10:96::/64", "10.96.0.0/12,fd00:10:96::/112", False),
    ("10.244.0.0/16", "fd00:10:96::/112", True),       # different families never overlap
])
def test_pod_subnet_must_not_overlap_the_service_subnet(pods, services, ok):
    if ok:
        kubeadm.check_subnets(pods, services)
        return
    with pytest.raises(kubeadm.OptionError) as caught:
        kubeadm.check_subnets(pods, services)
    assert caught.value.option == "pod_subnet" and "overlaps service_subnet" in str(caught.value)


@pytest.mark.parametrize("pods, services, option", [
    ("10.244.0.1/16", "10.96.0.0/12", "pod_subnet"),   # host bits set
    ("banana", "10.96.0.0/12", "pod_subnet"),
    ("10.244.0.0/16", "10.96.0.0/33", "service_subnet"),
])
def test_subnets_must_be_networks(pods, services, option):
    with pytest.raises(kubeadm.OptionError) as caught:
        kubeadm.check_subnets(pods, services)
    assert caught.value.option == option


@pytest.mark.parametrize("text, seconds", [("30m", 1800), ("1h30m", 5400), ("90s", 90), ("0", 0), ("1.5h", 5400)])
def test_go_durations(text, seconds):
    assert kubeadm.duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["30", "30 min", "-5m", "", "1d"])
def test_bad_durations(text):
    with pytest.raises(kubeadm.OptionError) as caught:
        kubeadm.duration_seconds(text)
    assert caught.value.option == "token_ttl"


@pytest.mark.parametrize("changes, option", [
    (dict(control_plane_endpoint="lb01.gpulab.lan"), "control_plane_endpoint"),
    (dict(kubernetes_version="1.31.4"), "kubernetes_version"),
    (dict(pod_subnet="10.96.0.0/16"), "pod_subnet"),
    (dict(timeout=0), "timeout"),
    (dict(bind_port=0), "bind_port"),
    (dict(node_name="GPU07"), "node_name"),
    (dict(advertise_address="cp01"), "advertise_address"),
    (dict(token="ABCDEF.0123456789abcdef"), "token"),
    (dict(certificate_key="xyz"), "certificate_key"),
    (dict(ca_cert_hashes=["sha256:abc"]), "ca_cert_hashes"),
    (dict(token_ttl="half an hour"), "token_ttl"),
    (dict(cluster_name="GPU Lab"), "cluster_name"),
    (dict(cert_sans=["lb01 gpulab"]), "cert_sans"),
    (dict(remove_etcd_members=[" "]), "remove_etcd_members"),
])
def test_check_params_names_the_option(changes, option):
    with pytest.raises(kubeadm.OptionError) as caught:
        kubeadm.check_params(init_params(**changes))
    assert caught.value.option == option
    assert TOKEN[7:] not in str(caught.value) and "ABCDEF" not in str(caught.value)  # secrets are never echoed


def test_check_params_accepts_good_options_of_every_state():
    kubeadm.check_params(init_params(node_name="cp01"))
    kubeadm.check_params(join_params("worker"))
    kubeadm.check_params(join_params("control_plane", certificate_key=CERT_KEY, advertise_address="192.168.50.12"))
    kubeadm.check_params(dict(state="reset", control_plane_endpoint=None, timeout=300, bind_port=6443))


# --- configuration documents: field names and types from the real kubeadm and kubelet types ------------------------
# kubeadm.k8s.io/v1beta4: cmd/kubeadm/app/apis/kubeadm/v1beta4/types.go, kubernetes/kubernetes commit
#   1329935739c3aa007d23cb9a4dadfee9d59ff79b (InitConfiguration, ClusterConfiguration, JoinConfiguration, Timeouts)
# bootstrap tokens: cmd/kubeadm/app/apis/bootstraptoken/v1/types.go, commit 2d350a359e7b251ffa047415af6bf64350f41888
# kubelet.config.k8s.io/v1beta1: staging/src/k8s.io/kubelet/config/v1beta1/types.go, commit
#   8383bd62ee26c68c4eac4b49431d3403d0880a26 (failSwapOn *bool, cgroupDriver string)

INIT_CONFIGURATION_FIELDS = {"apiVersion", "kind", "bootstrapTokens", "dryRun", "nodeRegistration", "localAPIEndpoint",
                             "certificateKey", "skipPhases", "patches", "timeouts"}
CLUSTER_CONFIGURATION_FIELDS = {"apiVersion", "kind", "etcd", "networking", "kubernetesVersion", "controlPlaneEndpoint",
                                "apiServer", "controllerManager", "scheduler", "dns", "proxy", "certificatesDir",
                                "imageRepository", "featureGates", "clusterName", "encryptionAlgorithm",
                                "certificateValidityPeriod", "caCertificateValidityPeriod"}
JOIN_CONFIGURATION_FIELDS = {"apiVersion", "kind", "dryRun", "nodeRegistration", "caCertPath", "discovery",
                             "controlPlane", "skipPhases", "patches", "timeouts"}
NODE_REGISTRATION_FIELDS = {"name", "criSocket", "taints", "kubeletExtraArgs", "ignorePreflightErrors",
                            "imagePullPolicy", "imagePullSerial"}
API_ENDPOINT_FIELDS = {"advertiseAddress", "bindPort"}
NETWORKING_FIELDS = {"serviceSubnet", "podSubnet", "dnsDomain"}
API_SERVER_FIELDS = {"extraArgs", "extraVolumes", "extraEnvs", "certSANs"}
DISCOVERY_FIELDS = {"bootstrapToken", "file", "tlsBootstrapToken"}
BOOTSTRAP_TOKEN_DISCOVERY_FIELDS = {"token", "apiServerEndpoint", "caCertHashes", "unsafeSkipCAVerification"}
JOIN_CONTROL_PLANE_FIELDS = {"localAPIEndpoint", "certificateKey"}
TIMEOUTS_FIELDS = {"controlPlaneComponentHealthCheck", "kubeletHealthCheck", "kubernetesAPICall", "etcdAPICall",
                   "tlsBootstrap", "discovery", "upgradeManifests"}
BOOTSTRAP_TOKEN_FIELDS = {"token", "description", "ttl", "expires", "usages", "groups"}


def documents_of(text):
    """Split like kubeadm (a line of three dashes) and decode each document as JSON."""
    return [json.loads(part) for part in text.split("\n---\n")]


def test_init_documents_use_the_v1beta4_fields_and_types():
    init, cluster, kubelet = documents_of(kubeadm.render(kubeadm.init_documents(init_params(node_name="cp01"))))
    assert (init["apiVersion"], init["kind"]) == ("kubeadm.k8s.io/v1beta4", "InitConfiguration")
    assert set(init) <= INIT_CONFIGURATION_FIELDS
    assert init["certificateKey"] == CERT_KEY
    assert set(init["nodeRegistration"]) <= NODE_REGISTRATION_FIELDS
    assert init["nodeRegistration"] == {"name": "cp01", "criSocket": "unix:///run/containerd/containerd.sock"}
    assert "taints" not in init["nodeRegistration"]  # nil: kubeadm gives the first control plane its taint
    assert set(init["localAPIEndpoint"]) <= API_ENDPOINT_FIELDS
    assert init["localAPIEndpoint"] == {"advertiseAddress": "192.168.50.11", "bindPort": 6443}  # BindPort int32
    assert set(init["timeouts"]) <= TIMEOUTS_FIELDS
    assert init["timeouts"]["controlPlaneComponentHealthCheck"] == "300s"  # *metav1.Duration: a Go duration string
    (token,) = init["bootstrapTokens"]
    assert set(token) <= BOOTSTRAP_TOKEN_FIELDS
    assert token["token"] == TOKEN and token["ttl"] == "30m" and token["usages"] == ["signing", "authentication"]
    assert token["groups"] == ["system:bootstrappers:kubeadm:default-node-token"]

    assert (cluster["apiVersion"], cluster["kind"]) == ("kubeadm.k8s.io/v1beta4", "ClusterConfiguration")
    assert set(cluster) <= CLUSTER_CONFIGURATION_FIELDS
    assert cluster["controlPlaneEndpoint"] == "lb01.gpulab.lan:6443"
    assert cluster["kubernetesVersion"] == "v1.31.4" and cluster["clusterName"] == "gpulab"
    assert set(cluster["networking"]) <= NETWORKING_FIELDS
    assert cluster["networking"] == {"podSubnet": "10.244.0.0/16", "serviceSubnet": "10.96.0.0/12",
                                     "dnsDomain": "cluster.local"}
    assert set(cluster["apiServer"]) <= API_SERVER_FIELDS
    assert cluster["apiServer"]["certSANs"] == ["lb01.gpulab.lan", "192.168.50.10"]  # the LB host once, first
    assert "imageRepository" not in cluster and "etcd" not in cluster  # defaults: registry.k8s.io, local etcd

    assert kubelet == {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
                       "cgroupDriver": "systemd", "failSwapOn": True}


def test_init_documents_without_secrets_and_with_options():
    params = init_params(token=None, certificate_key=None, advertise_address=None, cri_socket=None, node_name=None,
                         image_repository="registry.gpulab.lan/k8s", fail_swap_on=False, timeout=None,
                         ignore_preflight_errors=["NumCPU"], cert_sans=None, bind_port=8443)
    init, cluster, kubelet = kubeadm.init_documents(params)
    assert "bootstrapTokens" not in init and "certificateKey" not in init and "timeouts" not in init
    assert init["nodeRegistration"] == {"ignorePreflightErrors": ["NumCPU"]}
    assert init["localAPIEndpoint"] == {"bindPort": 8443}
    assert cluster["imageRepository"] == "registry.gpulab.lan/k8s"
    assert cluster["apiServer"]["certSANs"] == ["lb01.gpulab.lan"]
    assert kubelet["failSwapOn"] is False
    init, _cluster, _kubelet = kubeadm.init_documents(init_params(cri_socket=None))
    assert "nodeRegistration" not in init


def test_refresh_documents_carry_one_secret_each():
    token_init, token_cluster = kubeadm.token_documents(init_params())
    assert token_init["bootstrapTokens"][0]["token"] == TOKEN and "certificateKey" not in token_init
    assert token_cluster["kind"] == "ClusterConfiguration" and token_cluster["kubernetesVersion"] == "v1.31.4"
    certs_init, _cluster = kubeadm.upload_certs_documents(init_params())
    assert certs_init["certificateKey"] == CERT_KEY and "bootstrapTokens" not in certs_init
    assert "timeouts" not in token_init and "timeouts" not in certs_init


def test_join_configuration_of_a_control_plane():
    params = join_params("control_plane", certificate_key=CERT_KEY, advertise_address="192.168.50.12",
                         node_name="cp02")
    (config,) = documents_of(kubeadm.render([kubeadm.join_configuration(params, control_plane=True)]))
    assert (config["apiVersion"], config["kind"]) == ("kubeadm.k8s.io/v1beta4", "JoinConfiguration")
    assert set(config) <= JOIN_CONFIGURATION_FIELDS
    assert set(config["discovery"]) <= DISCOVERY_FIELDS
    discovery = config["discovery"]["bootstrapToken"]
    assert set(discovery) <= BOOTSTRAP_TOKEN_DISCOVERY_FIELDS
    assert discovery == {"token": TOKEN, "apiServerEndpoint": "lb01.gpulab.lan:6443", "caCertHashes": [CA_HASH]}
    assert set(config["controlPlane"]) <= JOIN_CONTROL_PLANE_FIELDS
    assert config["controlPlane"] == {"localAPIEndpoint": {"advertiseAddress": "192.168.50.12", "bindPort": 6443},
                                      "certificateKey": CERT_KEY}
    assert set(config["timeouts"]) <= TIMEOUTS_FIELDS and config["timeouts"]["discovery"] == "300s"
    assert config["nodeRegistration"]["name"] == "cp02"


def test_join_configuration_of_a_worker():
    config = kubeadm.join_configuration(join_params("worker", cri_socket=None, timeout=None), control_plane=False)
    assert "controlPlane" not in config and "nodeRegistration" not in config and "timeouts" not in config
    assert CERT_KEY not in json.dumps(config)


def test_rendered_configuration_reads_as_yaml_documents():
    """kubeadm reads the file as YAML documents; JSON documents between '---' lines are YAML (checked with PyYAML,
    which only the tests have)."""
    yaml = pytest.importorskip("yaml")
    documents = kubeadm.init_documents(init_params())
    assert list(yaml.safe_load_all(kubeadm.render(documents))) == documents


# --- the CA pin ----------------------------------------------------------------------------------------------------


def test_ca_pin_matches_kubeadms_own_test_vector():
    assert kubeadm.ca_cert_hash(fixture("ca_pubkeypin_test_cert.pem")) == PUBKEYPIN_EXPECTED


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl not installed")
def test_ca_pin_matches_the_openssl_recipe_of_the_kubeadm_docs(tmp_path):
    """openssl x509 -pubkey | openssl pkey -pubin -outform der | sha256 on the same certificate."""
    path = os.path.join(FIXTURES, "ca_pubkeypin_test_cert.pem")
    pem = subprocess.check_output(["openssl", "x509", "-in", path, "-pubkey", "-noout"])
    der = subprocess.check_output(["openssl", "pkey", "-pubin", "-outform", "der"], input=pem)
    assert kubeadm.ca_cert_hash(fixture("ca_pubkeypin_test_cert.pem")) == "sha256:" + hashlib.sha256(der).hexdigest()


def test_ca_pin_of_generated_certificates_without_version_and_with_ecdsa():
    """Certificates made here with the cryptography package (a test-only dependency): ECDSA P-256 (kubeadm's
    encryptionAlgorithm ECDSA-P256) and a long-form DER length (RSA 4096)."""
    crypto = pytest.importorskip("cryptography")
    del crypto
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    for key in (ec.generate_private_key(ec.SECP256R1()), rsa.generate_private_key(65537, 4096)):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, u"kubernetes")])
        now = datetime.datetime(2026, 1, 1)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=3650))
                .sign(key, hashes.SHA256()))
        spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
        pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
        assert kubeadm.ca_cert_hash(pem) == "sha256:" + hashlib.sha256(spki).hexdigest()


def test_ca_pin_of_a_v1_certificate_without_the_version_field():
    """An X.509 v1 certificate has no [0] version; the walk starts at the serial number. The DER below is the
    pubkeypin test certificate's with its version element removed and the lengths adjusted."""
    der = bytearray(kubeadm.pem_certificates(fixture("ca_pubkeypin_test_cert.pem"))[0])
    _tag, tbs_start, tbs_end = kubeadm.der_element(der, 4)
    assert der[8] == 0xA0  # tbsCertificate content starts with the explicit version [0] (5 bytes: a0 03 02 01 02)
    tbs = der[tbs_start + 5:tbs_end]
    tbs_der = bytearray([0x30, 0x82, len(tbs) >> 8, len(tbs) & 0xFF]) + tbs
    rest = der[tbs_end:]
    body = tbs_der + rest
    v1 = bytearray([0x30, 0x82, len(body) >> 8, len(body) & 0xFF]) + body
    assert kubeadm.subject_public_key_info(bytes(v1)) == kubeadm.subject_public_key_info(bytes(der))


@pytest.mark.parametrize("data, words", [
    (b"", "truncated"),
    (b"\x1f\x00", "multi-byte"),
    (b"\x30\x80", "indefinite"),
    (b"\x30\x85\x00\x00\x00\x00\x00", "bad DER length"),
    (b"\x30\x05\x00", "runs past"),
])
def test_der_walk_refuses_malformed_input(data, words):
    with pytest.raises(ValueError) as caught:
        kubeadm.der_element(bytearray(data), 0)
    assert words in str(caught.value)


@pytest.mark.parametrize("der, words", [
    (b"\x02\x01\x00", "a certificate is a DER SEQUENCE"),
    (b"\x30\x03\x02\x01\x00", "tbsCertificate is a DER SEQUENCE"),
    (b"\x30\x05\x30\x03\x30\x01\x00", "unexpected DER tag"),
    (b"\x30\x10\x30\x0e\x02\x01\x01\x30\x00\x30\x00\x30\x00\x30\x00\x02\x01\x00", "not where RFC 5280"),
    (b"\x30\x0f\x30\x0b\x02\x01\x01\x30\x00\x30\x00\x30\x00\x30\x00\x30\x00", "not where RFC 5280"),
])
def test_certificate_walk_refuses_what_is_no_certificate(der, words):
    with pytest.raises(ValueError) as caught:
        kubeadm.subject_public_key_info(der)
    assert words in str(caught.value)


def test_pem_errors():
    with pytest.raises(ValueError):
        kubeadm.ca_cert_hash("no certificate here")
    with pytest.raises(ValueError):
        kubeadm.pem_certificates("-----BEGIN CERTIFICATE-----\nnot*base64\n-----END CERTIFICATE-----\n")


# --- outputs -------------------------------------------------------------------------------------------------------


def test_preflight_of_a_join_on_leftovers_of_an_earlier_one():
    for name in ("join_preflight_port10250_kubekey227.txt", "join_preflight_kubelet_conf_sealos2370.txt",
                 "join_preflight_four_errors_k8s64171.txt", "init_preflight_v1.29.1_kubeadm3013.txt"):
        text = fixture(name)
        assert kubeadm.preflight_failed(text), name
        checks = [check for check, _message in kubeadm.preflight_errors(text)]
        assert checks and all(kubeadm.is_leftover_check(check) for check in checks), name
    assert kubeadm.preflight_errors(fixture("join_preflight_four_errors_k8s64171.txt")) == [
        ("Port-10250", "Port 10250 is in use"),
        ("DirAvailable--etc-kubernetes-manifests", "/etc/kubernetes/manifests is not empty"),
        ("FileAvailable--etc-kubernetes-pki-ca.crt", "/etc/kubernetes/pki/ca.crt already exists"),
        ("FileAvailable--etc-kubernetes-kubelet.conf", "/etc/kubernetes/kubelet.conf already exists"),
    ]


def test_preflight_errors_that_a_reset_does_not_clear():
    text = fixture("join_preflight_swap_bridge_khtwod1.txt")
    assert kubeadm.preflight_failed(text)
    checks = [check for check, _message in kubeadm.preflight_errors(text)]
    assert checks == ["FileContent--proc-sys-net-bridge-bridge-nf-call-iptables", "Swap"]
    assert not any(kubeadm.is_leftover_check(check) for check in checks)
    assert kubeadm.is_leftover_check("Port-8443", bind_port=8443) and not kubeadm.is_leftover_check("Port-8443")


def test_successful_outputs_are_no_preflight_failures():
    for name in ("join_control_plane_v1.32_ingcloud.txt", "join_worker_v1.24_kubeadm574.txt",
                 "init_v1.34.3_aganesan94.txt"):
        assert not kubeadm.preflight_failed(fixture(name)) and kubeadm.preflight_errors(fixture(name)) == []


def test_etcd_membership_errors():
    assert "learner member" in kubeadm.etcd_membership_error(fixture("etcd_too_many_learners_k8ssnap2813.txt"))
    assert "learner member" in kubeadm.etcd_membership_error(fixture("etcd_too_many_learners_talos5350.txt"))
    assert "never caught up" in kubeadm.etcd_membership_error(
        fixture("join_cp_learner_not_in_sync_k8s122826_excerpt.txt"))
    assert "peer URL" in kubeadm.etcd_membership_error("etcdserver: Peer URLs already exists")
    assert "etcd step" in kubeadm.etcd_membership_error(
        "error execution phase control-plane-join/etcd: error creating local etcd static pod manifest file")
    assert kubeadm.etcd_membership_error(fixture("join_preflight_port10250_kubekey227.txt")) is None
    # a successful control-plane join logs retried promotions too: the module looks only at failed joins
    assert kubeadm.etcd_membership_error(fixture("join_control_plane_v1.32_ingcloud.txt")) is not None


def test_reset_reports():
    assert kubeadm.reset_report(fixture("reset_kata3873_excerpt.txt")) == {
        "etcd_member_removal_failed": False, "no_cluster_config": False}
    assert kubeadm.reset_report(fixture("reset_no_cluster_config_hetzner1043_head.txt")) == {
        "etcd_member_removal_failed": False, "no_cluster_config": True}
    # the warning of removeetcdmember.go: klog.Warningf("[reset] Failed to remove etcd member: %v, please ...")
    assert kubeadm.reset_report("[reset] Failed to remove etcd member: context deadline exceeded, please manually "
                                "remove this etcd member using etcdctl")["etcd_member_removal_failed"]


def test_versions_in_outputs():
    assert kubeadm.kubeadm_version(fixture("kubeadm_version_yaml_v1.26.2_abcdesktop8.txt")) == "v1.26.2"
    assert kubeadm.kubeadm_version(fixture("kubectl_version_json_k8s53259.txt")) == "v1.9.0-alpha.1.487+550c3cab4fe267"
    assert kubeadm.kubeadm_version("v1.31.4\n") == "v1.31.4"
    assert kubeadm.kubeadm_version("command not found") is None
    assert kubeadm.server_version(fixture("kubectl_version_json_k8s53259.txt")) == "v1.9.0-alpha.1.487+550c3cab4fe267"
    assert kubeadm.server_version(fixture("kubectl_version_json_refused_oalders34.txt")) is None
    assert kubeadm.server_version("The connection to the server localhost:8080 was refused") is None
    assert kubeadm.server_version("{ not json") is None
    assert kubeadm.server_version("[1, 2]") is None


def test_token_list():
    tokens = kubeadm.token_list(fixture("kubeadm_token_list_k8s42233.txt"))
    assert len(tokens) == 7 and tokens["81a8f9.c3fa30dd1ed05d96"] is None
    # Composed, not recorded: the text printer formats EXPIRES with time.RFC3339 (formatBootstrapToken,
    # cmd/kubeadm/app/cmd/token.go); the token is this test's.
    line = "%s   23h         2026-11-23T19:02:11Z   authentication,signing   <none>   %s" % (
        TOKEN, kubeadm.DEFAULT_TOKEN_GROUP)
    assert kubeadm.token_list(line) == {TOKEN: "2026-11-23T19:02:11Z"}


def test_member_lists():
    members = kubeadm.member_list(fixture("etcdctl_member_list_unstarted_etcd15787.txt"))
    assert [(m["id"], m["status"], m["name"]) for m in members] == [
        ("10ff1e8664a58dc8", "unstarted", ""), ("614a7d4d78766dc4", "started", "etcd-2"),
        ("d7e9fb5134c29e0a", "started", "etcd-1")]
    assert members[0]["client_urls"] == [] and members[0]["peer_urls"] == [
        "https://etcd-0.etcd-peer.ztissan.svc.cluster.local:2380"]
    assert members[1]["client_urls"] == ["https://etcd-2.etcd.ztissan:2379"] and not members[1]["is_learner"]
    assert len(kubeadm.member_list(fixture("etcdctl_member_list_etcd11537.txt"))) == 3
    # warnings etcdctl logs as JSON lines are not members
    assert kubeadm.member_list(fixture("join_control_plane_v1.32_ingcloud.txt")) == []


def test_endpoint_health():
    health = kubeadm.endpoint_health(fixture("etcdctl_endpoint_health_etcd10897.txt"))
    assert health == {"192.168.195.130:2379": True, "192.168.195.129:2379": True, "192.168.195.128:2379": False}
    health = kubeadm.endpoint_health(fixture("etcdctl_endpoint_health_etcd10353.txt"))
    assert sorted(key for key, ok in health.items() if ok) == ["192.168.3.20:2379", "192.168.3.22:2379",
                                                               "192.168.3.23:2379"]
    member = {"client_urls": ["http://192.168.3.24:2379"]}
    assert not kubeadm.member_healthy(member, health)
    assert kubeadm.member_healthy({"client_urls": ["http://192.168.3.22:2379"]}, health)
    assert not kubeadm.member_healthy({"client_urls": []}, health)
    assert kubeadm.url_host("https://[fd00::1]:2380") == "fd00::1"
    assert kubeadm.url_host("https://10.0.0.1:2380") == "10.0.0.1"
    assert kubeadm.url_host("etcd-0") == "etcd-0"


def test_ca_pins_printed_by_kubeadm():
    assert kubeadm.ca_hashes_in_output(fixture("init_v1.34.3_aganesan94.txt")) == [
        "sha256:0ac795cf97cf7dd60048b9a3affae0a3446549192441db61be49dae90120b75d"]
    assert kubeadm.ca_hashes_in_output(fixture("init_upload_certs_v1.32_ingcloud_excerpt.txt")) == [
        "sha256:181ea3313e3542f5c1791eec3e9b564435946203845b5eac793279df5779eea1"]


@pytest.mark.parametrize("name, secrets", [
    ("init_v1.34.3_aganesan94.txt", ["at07se.0qu1ysne9uhv2tcs"]),
    ("init_upload_certs_v1.32_ingcloud_excerpt.txt",
     ["xbtcem.rc4intnuv80o7otw", "31da1221d1ed5a68f583fa79657389470489bb11cce86a8721e99c7c3c3e9612"]),
    ("token_create_print_join_command_kubeadm659.txt", ["5d2dc8.3e93f8449167639b"]),
    ("kubeadm_token_list_k8s42233.txt", ["81a8f9.c3fa30dd1ed05d96", "b186e5.7a19ae1a82652643"]),
])
def test_redaction_of_real_outputs_keeps_the_public_pin(name, secrets):
    text = fixture(name)
    redacted = kubeadm.redact(text)
    for secret in secrets:
        assert secret in text and secret not in redacted
    for pin in kubeadm.ca_hashes_in_output(text):
        assert pin in redacted
    assert kubeadm.redact("key %s and %s" % ("0" * 64, TOKEN), [TOKEN]) == "key <redacted-key> and <redacted>"


def test_tail():
    assert kubeadm.tail("a\nb\nc\n", 2) == "b\nc"
    assert kubeadm.tail(None) == ""


# --- the node's state and the decisions ----------------------------------------------------------------------------


def files(**present):
    base = dict(kubelet_conf=False, admin_conf=False, super_admin_conf=False, bootstrap_kubelet_conf=False,
                ca_crt=False, kubelet_config=False, manifests=[], etcd_data=False)
    base.update(present)
    return base


ALL_MANIFESTS = list(kubeadm.CONTROL_PLANE_MANIFESTS)


@pytest.mark.parametrize("present, state, words", [
    (dict(), "absent", "no kubeadm files"),
    (dict(kubelet_conf=True, ca_crt=True, kubelet_config=True), "worker", "no control-plane manifests"),
    (dict(kubelet_conf=True, admin_conf=True, super_admin_conf=True, manifests=ALL_MANIFESTS), "initialised",
     "super-admin.conf"),
    (dict(kubelet_conf=True, admin_conf=True, manifests=ALL_MANIFESTS), "control_plane", "joined"),
    (dict(ca_crt=True, kubelet_config=True), "half_joined", "kubelet.conf missing while pki/ca.crt"),
    (dict(etcd_data=True), "half_joined", "etcd data"),
    (dict(kubelet_conf=True, manifests=["kube-apiserver.yaml"]), "half_joined", "etcd.yaml"),
])
def test_node_states(present, state, words):
    found, reason = kubeadm.node_state(files(**present))
    assert found == state and words in reason


def test_read_node_files(tmp_path, monkeypatch):
    monkeypatch.setattr(kubeadm, "ROOT", str(tmp_path))
    assert kubeadm.node_state(kubeadm.read_node_files())[0] == "absent"
    (tmp_path / "etc/kubernetes/manifests").mkdir(parents=True)
    for name in ALL_MANIFESTS + ["kube-vip.yaml"]:
        (tmp_path / "etc/kubernetes/manifests" / name).write_text("")
    for name in ("kubelet.conf", "admin.conf", "super-admin.conf"):
        (tmp_path / "etc/kubernetes" / name).write_text("")
    (tmp_path / "var/lib/etcd/member").mkdir(parents=True)
    found = kubeadm.read_node_files()
    assert found["manifests"] == sorted(ALL_MANIFESTS) and found["etcd_data"] and found["super_admin_conf"]
    assert kubeadm.node_state(found)[0] == "initialised"


@pytest.mark.parametrize("state, before, etcd_data, decision", [
    ("init", "absent", False, "init"),
    ("init", "initialised", True, "refresh"),
    ("init", "control_plane", True, "refresh"),
    ("init", "worker", False, "fail"),
    ("init", "half_joined", True, "fail"),
    ("init", "half_joined", False, "reset_then_init"),
    ("control_plane", "absent", False, "join"),
    ("control_plane", "half_joined", True, "reset_then_join"),
    ("control_plane", "control_plane", True, "none"),
    ("control_plane", "initialised", True, "none"),
    ("control_plane", "worker", False, "fail"),
    ("worker", "absent", False, "join"),
    ("worker", "half_joined", False, "reset_then_join"),
    ("worker", "worker", False, "none"),
    ("worker", "control_plane", True, "fail"),
    ("worker", "initialised", True, "fail"),
    ("reset", "absent", False, "none"),
    ("reset", "half_joined", False, "reset"),
    ("reset", "initialised", True, "reset"),
])
def test_decisions(state, before, etcd_data, decision):
    found, message = kubeadm.decide(state, before, etcd_data)
    assert found == decision
    assert (message is not None) == (decision == "fail")


def test_failure_messages_name_the_way_out():
    assert "state=reset first" in kubeadm.decide("worker", "initialised")[1]
    assert "control plane (the first one)" in kubeadm.decide("worker", "initialised")[1]
    assert "worker" in kubeadm.decide("init", "worker")[1]
    assert "etcd data" in kubeadm.decide("init", "half_joined", True)[1]


@pytest.mark.parametrize("decision, before, after", [
    ("init", "absent", "initialised"), ("reset_then_init", "half_joined", "initialised"),
    ("join", "absent", "worker"), ("reset_then_join", "half_joined", "worker"), ("reset", "worker", "absent"),
    ("none", "worker", "worker"), ("refresh", "control_plane", "control_plane"),
])
def test_state_after(decision, before, after):
    assert kubeadm.state_after("worker" if "join" in decision else "init", decision, before) == after


def health_for(members, healthy_names):
    # Composed from the recorded line format of `etcdctl endpoint health` (fixtures etcdctl_endpoint_health_*.txt).
    lines = []
    for member in members:
        for url in member["client_urls"]:
            word = "healthy: successfully committed proposal: took = 3.189286ms" if member["name"] in healthy_names \
                else "unhealthy: failed to commit proposal: context deadline exceeded"
            lines.append("%s is %s" % (url, word))
    return kubeadm.endpoint_health("\n".join(lines))


def test_removal_of_a_member_that_never_started():
    members = kubeadm.member_list(fixture("etcdctl_member_list_unstarted_etcd15787.txt"))
    health = health_for(members, ["etcd-1", "etcd-2"])
    addresses = {"etcd-0": ["10.0.0.9", "etcd-0.etcd-peer.ztissan.svc.cluster.local"]}
    remove, skipped, refused = kubeadm.removal_plan(members, health, ["etcd-0", "etcd-2", "etcd-1", "cp09"], "etcd-1",
                                                    addresses)
    assert [(name, member["id"]) for name, member in remove] == [("etcd-0", "10ff1e8664a58dc8")]
    assert skipped == [("etcd-2", "member 614a7d4d78766dc4 is healthy"), ("etcd-1", "this node's own member"),
                       ("cp09", "no etcd member")]
    assert refused == []


def test_removal_never_breaks_quorum():
    members = kubeadm.member_list(fixture("etcdctl_member_list_etcd11537.txt"))
    # one of three healthy: no quorum now
    remove, _skipped, refused = kubeadm.removal_plan(members, health_for(members, ["etcd-001"]), ["etcd-003"], "etcd-001")
    assert remove == [] and "no quorum now (1 of 3" in refused[0][1]
    # two of three healthy: the third can go; after that a second unhealthy one could not
    remove, _skipped, refused = kubeadm.removal_plan(members, health_for(members, ["etcd-001", "etcd-002"]),
                                                     ["etcd-003"], "etcd-001")
    assert [name for name, _member in remove] == ["etcd-003"] and refused == []
    two = [dict(member) for member in members[:2]]  # etcd-003 and etcd-002; only etcd-002 healthy
    remove, _skipped, refused = kubeadm.removal_plan(two, health_for(two, ["etcd-002"]), ["etcd-003"], "etcd-002")
    assert remove == [] and "no quorum now (1 of 2" in refused[0][1]


def test_removal_of_a_learner_needs_no_quorum_arithmetic():
    members = kubeadm.member_list(fixture("etcdctl_member_list_etcd11537.txt"))
    members[0]["is_learner"] = True  # etcd-003 as a learner (the learner flag of the last column)
    remove, _skipped, refused = kubeadm.removal_plan(members, health_for(members, ["etcd-001", "etcd-002"]),
                                                     ["etcd-003"], "etcd-001")
    assert [name for name, _member in remove] == ["etcd-003"] and refused == []


def voters(count):
    return [dict(id="m%d" % index, status="started", name="n%d" % index, peer_urls=["https://10.0.0.%d:2380" % index],
                 client_urls=["https://10.0.0.%d:2379" % index], is_learner=False) for index in range(1, count + 1)]


def test_removals_keep_quorum_one_after_the_other():
    five = voters(5)
    health = health_for(five, ["n1", "n2", "n3"])  # 3 of 5: quorum now; then 3 of 4, then 3 of 3
    remove, _skipped, refused = kubeadm.removal_plan(five, health, ["n4", "n5"], "n1")
    assert [name for name, _member in remove] == ["n4", "n5"] and refused == []
    health = health_for(five, ["n1", "n2"])  # 2 of 5: no quorum, etcd could not commit a removal
    remove, _skipped, refused = kubeadm.removal_plan(five, health, ["n4", "n5"], "n1")
    assert remove == [] and [name for name, _reason in refused] == ["n4", "n5"]
    assert "no quorum now (2 of 5 voting members healthy)" in refused[0][1]


def test_a_member_listed_twice_is_removed_once():
    three = voters(3)
    remove, skipped, _refused = kubeadm.removal_plan(three, health_for(three, ["n1", "n2"]), ["n3", "n3"], "n1")
    assert [name for name, _member in remove] == ["n3"] and skipped == [("n3", "no etcd member")]


def test_utc_text():
    moment = datetime.datetime(2026, 11, 23, 20, 2, 11, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
    assert kubeadm.utc_text(moment) == "2026-11-23T19:02:11Z"


def test_host_path(monkeypatch):
    monkeypatch.setattr(kubeadm, "ROOT", "/srv/root")
    assert kubeadm.host_path("/etc/kubernetes/admin.conf") == "/srv/root/etc/kubernetes/admin.conf"


@pytest.mark.parametrize("text, seconds", [("4m", 240.0), ("1h30m", 5400.0), ("24h", 86400.0), ("0", 0.0),
                                           ("1.5s", 1.5), ("4", None), ("4m ", None), ("4m\n", None), ("m", None),
                                           ("", None), (None, None)])
def test_go_durations_exactly_as_written(text, seconds):
    """What a configuration gets verbatim (the kubeflow module's oidc_cookie_refresh): no spaces, no newline."""
    assert kubeadm.go_duration(text) == seconds
