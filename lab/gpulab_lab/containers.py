"""The 19-host lab as systemd+sshd containers on a podman network."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import distro as distro_mod
from . import rootfs, ssh
from .inventory import Topology
from .util import CONTAINERS_CONF, TMP, LabError, Timer, locked, log, require_root, run, which

NETWORK = "gpulab-lab"
IMAGE_REPO = "localhost/gpulab-lab/node"
LABEL = "gpulab.lab"
# Beyond podman's defaults: AUDIT_WRITE (sshd and sudo write audit records), NET_RAW (ping),
# NET_ADMIN (firewall and keepalived layers, in the container's own network namespace only).
CAPS = "AUDIT_WRITE,NET_RAW,NET_ADMIN"
CREATE_WORKERS = 4


def podman(*args, check=True):
    """podman with the project's containers.conf (runc, cgroupfs, no default ulimits)."""
    return run([which("podman"), *args], check=check, env={"CONTAINERS_CONF": str(CONTAINERS_CONF)})


# ---------------------------------------------------------------------------------------------- image

def image_ref(spec: rootfs.Provision) -> str:
    return f"{IMAGE_REPO}:{spec.distro.name}-{spec.fingerprint()}"


def provision_spec(topo: Topology, distro=None) -> rootfs.Provision:
    distro = distro or distro_mod.get_distro()
    return rootfs.Provision(distro=distro, flavor="container", admin_user=topo.admin_user,
                            pubkey=topo.access.public_key(), mirror=distro_mod.find_mirror(distro))


def ensure_image(spec: rootfs.Provision) -> str:
    """The podman image for spec, imported from a prepared rootfs when missing."""
    ref = image_ref(spec)
    if podman("image", "exists", ref, check=False).returncode == 0:
        return ref
    with locked(f"image-{ref.rsplit(':', 1)[1]}"):
        if podman("image", "exists", ref, check=False).returncode == 0:
            return ref
        timer = Timer()
        TMP.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=TMP, prefix="image-") as work:
            root = rootfs.prepare(spec, Path(work))
            log(f"importing {ref}")
            with subprocess.Popen([which("tar"), "--numeric-owner", "--xattrs", "-C", str(root), "-cf", "-", "."],
                                  stdout=subprocess.PIPE) as tar:
                proc = subprocess.run(
                    [which("podman"), "import", "--change", 'CMD ["/sbin/init"]',
                     "--change", "STOPSIGNAL SIGRTMIN+3", "--change", f"LABEL {LABEL}=1",
                     "--message", f"gpulab lab node ({spec.distro.name})", "-", ref],
                    stdin=tar.stdout, capture_output=True, text=True, check=False,
                    env={**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)})
                tar.stdout.close()
            if tar.returncode != 0 or proc.returncode != 0:
                raise LabError(f"podman import of {ref} failed: {proc.stderr.strip()}")
            rootfs.remove_tree(root)
        log(f"image {ref} ready in {timer}")
    return ref


def prune_images(keep: str) -> None:
    """Remove older lab images that no container uses any more (the debootstrap tarball stays)."""
    out = podman("images", "--filter", f"reference={IMAGE_REPO}", "--format", "json").stdout
    for image in json.loads(out or "[]"):
        names = image.get("Names") or []
        if keep not in names:
            podman("image", "rm", image["Id"], check=False)


# -------------------------------------------------------------------------------------------- network

def ensure_network(topo: Topology) -> None:
    """The podman bridge `gpulab-lab` on gpulab_node_network; recreated when its subnet differs."""
    proc = podman("network", "inspect", NETWORK, check=False)
    if proc.returncode == 0:
        subnets = _subnets(json.loads(proc.stdout))
        if subnets == [str(topo.network)]:
            return
        log(f"network {NETWORK} has subnets {subnets}, the inventory wants {topo.network}: recreating it")
        remove_containers(list_containers())
        podman("network", "rm", "--force", NETWORK)
    podman("network", "create", "--driver", "bridge", "--subnet", str(topo.network), "--disable-dns",
           "--label", f"{LABEL}=1", NETWORK)


def _subnets(data) -> list:
    """Every "subnet" in `podman network inspect` output: netavark (podman 4) and CNI (podman 3) differ."""
    if isinstance(data, dict):
        found = [data["subnet"]] if isinstance(data.get("subnet"), str) else []
        return found + [s for v in data.values() for s in _subnets(v)]
    if isinstance(data, list):
        return [s for v in data for s in _subnets(v)]
    return []


# ------------------------------------------------------------------------------------------ containers

def list_containers() -> dict:
    """name -> podman ps record, for every lab container."""
    out = podman("ps", "--all", "--filter", f"label={LABEL}=1", "--format", "json").stdout
    return {c["Names"][0]: c for c in json.loads(out or "[]")}


def hosts_file(topo: Topology) -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             f"# gpulab lab nodes ({topo.inventory.name} inventory)"]
    lines += [f"{n.ip}\t{topo.fqdn(n)} {n.name}" for n in topo.nodes]
    return "\n".join(lines) + "\n"


def _config_hash(topo: Topology, node, image: str) -> str:
    text = json.dumps([image, node.name, str(node.ip), NETWORK, CAPS, hosts_file(topo)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _create(topo: Topology, node, image: str, config: str) -> None:
    """Create, give it the lab's /etc/hosts, start."""
    podman("create", "--name", node.name, "--hostname", node.name, "--network", NETWORK, "--ip", str(node.ip),
           "--label", f"{LABEL}=1", "--label", f"{LABEL}.config={config}",
           "--label", f"{LABEL}.inventory={topo.inventory}",
           "--systemd", "always", "--cap-add", CAPS, "--no-hosts", image)
    with tempfile.NamedTemporaryFile("w", dir=TMP, prefix="hosts-", delete=False) as tmp:
        tmp.write(hosts_file(topo))
    try:
        os.chmod(tmp.name, 0o644)
        podman("cp", tmp.name, f"{node.name}:/etc/hosts")
    finally:
        os.unlink(tmp.name)
    podman("start", node.name)


def remove_containers(names) -> None:
    names = list(names)
    if names:
        podman("rm", "--force", "--time", "10", *names)


def up(topo: Topology, timeout: float) -> list:
    """Bring every inventory host up as a container; return (node, action, ssh result) per host."""
    require_root("lab up")
    timer = Timer()
    spec = provision_spec(topo)
    image = ensure_image(spec)
    TMP.mkdir(parents=True, exist_ok=True)
    with locked("containers"):
        ensure_network(topo)
        current = list_containers()
        wanted = {n.name for n in topo.nodes}
        orphans = [name for name in current if name not in wanted]
        if orphans:
            log(f"removing lab containers not in {topo.inventory}: {', '.join(orphans)}")
            remove_containers(orphans)

        actions = {}
        to_create, to_start = [], []
        for node in topo.nodes:
            config = _config_hash(topo, node, image)
            have = current.get(node.name)
            if have and (have.get("Labels") or {}).get(f"{LABEL}.config") == config:
                if have.get("State") == "running":
                    actions[node.name] = "unchanged"
                else:
                    actions[node.name] = "started"
                    to_start.append(node.name)
            else:
                actions[node.name] = "recreated" if have else "created"
                to_create.append((node, config))

        if to_start:
            podman("start", *to_start)
        if to_create:
            new_nodes = [node for node, _config in to_create]
            remove_containers([n.name for n in new_nodes if n.name in current])
            ssh.forget_hosts(topo.access.known_hosts, [h for n in new_nodes for h in (str(n.ip), n.name, topo.fqdn(n))])
            log(f"creating {len(to_create)} containers")
            with ThreadPoolExecutor(max_workers=CREATE_WORKERS) as pool:
                list(pool.map(lambda item: _create(topo, item[0], image, item[1]), to_create))
            log(f"containers created and started after {timer}")
        prune_images(image)

    results = ssh.wait_for_ssh([ssh.Target(n.name, str(n.ip)) for n in topo.nodes], topo.admin_user, topo.access,
                               timeout)
    by_name = {r.target.name: r for r in results}
    summary = [(n, actions[n.name], by_name[n.name]) for n in topo.nodes]
    log(f"lab up in {timer}")
    return summary


def down() -> tuple:
    """Remove every lab container and the network; images and the debootstrap cache stay."""
    require_root("lab down")
    with locked("containers"):
        names = sorted(list_containers())
        remove_containers(names)
        network = podman("network", "exists", NETWORK, check=False).returncode == 0
        if network:
            podman("network", "rm", "--force", NETWORK)
    return names, network


def status(topo: Topology | None) -> list:
    """(name, group, state, ip) for inventory hosts and any stray lab container."""
    require_root("lab status")
    current = list_containers()
    addresses = {}
    if current:
        out = podman("inspect", "--format", "json", *current).stdout
        for info in json.loads(out or "[]"):
            nets = (info.get("NetworkSettings") or {}).get("Networks") or {}
            addresses[info["Name"].lstrip("/")] = (nets.get(NETWORK) or {}).get("IPAddress") or "-"
    rows = []
    for node in topo.nodes if topo else ():
        have = current.pop(node.name, None)
        state = have.get("State", "?") if have else "absent"
        ip = addresses.get(node.name) or str(node.ip)
        if have and ip != str(node.ip):
            state += f" (inventory: {node.ip})"
        rows.append((node.name, node.group, state, ip))
    for name, have in sorted(current.items()):
        rows.append((name, "-", have.get("State", "?") + " (not in inventory)", addresses.get(name, "-")))
    return rows
