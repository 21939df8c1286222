"""What the lab's layers leave on the 19 hosts: node (in a container), container_runtime, nvidia (no GPU here)."""
import tomllib

import pytest

testinfra_hosts = ["ansible://all"]


def _groups(host):
    return host.backend.get_variables()["group_names"]


def test_node_names_and_hosts_file(host):
    name = host.backend.get_hostname()
    assert host.check_output("hostname") == name
    lines = host.file("/etc/hosts").content_string.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("# BEGIN gpulab.cluster")]
    assert starts, "no block of the node role in /etc/hosts"
    block = lines[starts[0]:]
    entries = [line.split() for line in block if line and not line.startswith("#")]
    for other, address in (("lb01", "10.77.19.10"), ("cp01", "10.77.19.11"), ("gpu15", "10.77.19.115")):
        assert [address, "%s.lab.gpulab.lan" % other, other] in entries


def test_node_sshd_hardened(host):
    settings = dict(line.split(None, 1) for line in host.check_output("sudo sshd -T").splitlines() if " " in line)
    assert settings["permitrootlogin"] == "no" and settings["passwordauthentication"] == "no"


def test_node_firewall_written_kernel_settings_persisted(host):
    assert host.file("/etc/nftables-gpulab.nft").exists
    assert "\nnet.ipv4.ip_forward = 1\n" in host.file("/etc/sysctl.d/90-gpulab-kubernetes.conf").content_string


def test_containerd_config_for_kubeadm_and_accepted_by_containerd(host):
    if not set(_groups(host)) & {"control_plane", "workers"}:
        pytest.skip("the load balancer runs no container runtime")
    config = tomllib.loads(host.check_output("sudo cat /etc/containerd/config.toml"))
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert config["version"] == 2
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True
    assert cri["sandbox_image"] == "registry.k8s.io/pause:3.10"  # gpulab_kubernetes_version 1.33.x
    assert cri["registry"]["config_path"] == "/etc/containerd/certs.d"
    dumped = tomllib.loads(host.check_output("sudo containerd config dump"))
    assert dumped["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True
    assert host.service("containerd").is_enabled
    assert "unix:///run/containerd/containerd.sock" in host.file("/etc/crictl.yaml").content_string


def test_nvidia_layer_left_gpu_less_workers_alone(host):
    if "workers" not in _groups(host):
        pytest.skip("the nvidia layer runs on workers")
    config = tomllib.loads(host.check_output("sudo cat /etc/containerd/config.toml"))
    runtimes = config["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]
    assert "nvidia" not in runtimes
    assert not host.file("/etc/modprobe.d/gpulab-blacklist-nouveau.conf").exists
    assert host.run("dpkg-query -W nvidia-container-toolkit").rc != 0
