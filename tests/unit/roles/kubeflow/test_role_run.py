# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kubeflow role run by ansible-playbook on the controller, as the kubeflow layer runs it: its defaults, the
kubeflow_resources filter and the module with the real ``kubernetes`` library, against the HTTP API stand-in; the
release is the miniature one of test_kubeflow_install (the real example/kustomization.yaml, built by the real
kubectl)."""
from __future__ import absolute_import, division, print_function

import json
import os
import re
import subprocess
import sys

import pytest

from ...plugins.kube_http_standin import ApiServer, kubeconfig
from ...plugins.modules.test_kubeflow_install import COMPONENTS, USERS, make_release

__metaclass__ = type

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
BIN = os.path.dirname(sys.executable)
PLAYBOOK = """- name: The kubeflow layer, alone
  hosts: localhost
  gather_facts: false
  roles:
    - role: gpulab.cluster.kubeflow
"""
OIDC_SECRET = "oidc-client-s3cret"


@pytest.fixture
def site(tmp_path):
    server = ApiServer(settle=True, version="v1.33.5")
    server.crd_served = True
    server.thread.start()
    (tmp_path / "playbook.yml").write_text(PLAYBOOK)
    base = dict(kubeflow_manifests_dir=make_release(str(tmp_path / "manifests")),
                kubeflow_kubeconfig=kubeconfig(server, str(tmp_path / "admin.conf")),
                kubeflow_components=COMPONENTS, kubeflow_dex_users=USERS, kubeflow_gateway_address="",
                gpulab_layers=["kubeflow"], gpulab_cluster_name="test", ansible_python_interpreter=sys.executable)

    def play(check=False, verbose="-v", **extra):
        variables = dict(base, **extra)
        variables = dict((key, value) for key, value in variables.items() if value is not None)
        (tmp_path / "vars.json").write_text(json.dumps(variables))
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "collections"), TMPDIR=str(tmp_path),
                   GPULAB_SUMMARY_DIR=str(tmp_path), PATH=BIN + os.pathsep + os.environ.get("PATH", ""),
                   ANSIBLE_CACHE_PLUGIN="memory")
        done = subprocess.run([os.path.join(BIN, "ansible-playbook"), verbose, "-i", "localhost,", "-c", "local",
                               str(tmp_path / "playbook.yml"), "-e", "@%s" % (tmp_path / "vars.json")]
                              + (["--check"] if check else []),
                              cwd=ROOT, env=env, check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True, timeout=300)
        (tmp_path / "ansible-playbook.out").write_text(done.stdout)
        recap = re.search(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", done.stdout)
        # the YAML callback folds long messages: compare with the whitespace made single spaces
        return (done.returncode, " ".join(done.stdout.split()),
                recap and dict(changed=int(recap.group(2)), failed=int(recap.group(3))))

    yield server, play
    server.httpd.shutdown()
    server.httpd.server_close()


def patched(server):
    return [path for method, path, _query, _type in server.requests if method == "PATCH"]


def test_the_roles_own_entries_meet_a_release_without_those_workloads_and_nothing_is_applied(site):
    server, play = site
    rc, out, recap = play()
    assert rc != 0 and recap["failed"] == 1, out
    # the role passed its defaults through the filter: the first entry of the first part, cert-manager's
    assert "resources[0] names cert-manager, which no component being installed has" in out
    assert patched(server) == []


PIPELINE = {"pipelines": [{"name": "ml-pipeline", "requests": {"cpu": "50m", "memory": "256Mi"},
                           "limits": {"memory": "512Mi"}, "sidecar": "{{ kubeflow_sidecar_resources }}"}]}


def test_the_role_installs_with_its_entries_and_a_second_run_changes_nothing(site):
    server, play = site
    rc, out, recap = play(kubeflow_resources=PIPELINE, kubeflow_memory_budget="1Gi")
    assert rc == 0 and recap == dict(changed=1, failed=0), out
    deployment = server.objects["/apis/apps/v1/namespaces/kubeflow/deployments/ml-pipeline"]
    template = deployment["spec"]["template"]
    assert template["spec"]["containers"][0]["resources"] == {"requests": {"cpu": "50m", "memory": "256Mi"},
                                                              "limits": {"memory": "512Mi"}}
    # kubeflow_sidecar_resources, templated inside the entry
    assert template["metadata"]["annotations"]["sidecar.istio.io/proxyMemory"] == "48Mi"
    # 3 replicas x (256 MiB + the sidecar's 48 MiB)
    assert "memory requests 912 MiB of 1Gi" in out
    assert "/api/v1/namespaces/auth/configmaps/dex" in server.objects
    rc, out, recap = play(kubeflow_resources=PIPELINE, kubeflow_memory_budget="1Gi")
    assert rc == 0 and recap == dict(changed=0, failed=0), out


def test_the_roles_check_run_is_a_dry_run_that_predicts_the_run(site):
    server, play = site
    rc, out, recap = play(check=True, kubeflow_resources=PIPELINE, kubeflow_memory_budget="1Gi")
    assert rc == 0 and recap == dict(changed=1, failed=0), out
    assert server.objects == {} and patched(server)
    assert all(query.get("dryRun") == ["All"] for method, _path, query, _type in server.requests if method == "PATCH")
    rc, out, recap = play(kubeflow_resources=PIPELINE, kubeflow_memory_budget="1Gi")
    assert rc == 0 and recap == dict(changed=1, failed=0), out


def test_the_role_refuses_a_budget_the_release_exceeds(site):
    server, play = site
    rc, out, recap = play(kubeflow_resources=PIPELINE, kubeflow_memory_budget="900Mi")
    assert rc != 0 and recap["failed"] == 1, out
    assert "the components ask for 912 MiB of memory in all" in out and patched(server) == []


OIDC = dict(kubeflow_resources={}, gpulab_kubeflow_auth="oidc", kubeflow_dex_users=None,
            kubeflow_gateway_address="192.168.50.242", kubeflow_oidc_issuer_url="https://sso.gpulab.lan/realms/gpulab",
            kubeflow_oidc_client_id="kubeflow", kubeflow_oidc_client_secret=OIDC_SECRET)


def test_the_role_signs_in_through_the_sites_provider_without_dex(site):
    server, play = site
    # -vvv shows the module's arguments: the secret must be masked there too
    rc, out, recap = play(verbose="-vvv", kubeflow_oidc_cookie_refresh="3m", **OIDC)
    assert rc == 0 and recap == dict(changed=1, failed=0), out
    assert "oidc_client_secret: VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in out
    assert not [path for path in server.objects if "/namespaces/auth/" in path]
    (config,) = [obj for path, obj in server.objects.items() if "/namespaces/oauth2-proxy/configmaps/" in path]
    # the redirect URL the role derives from the gateway address
    assert 'redirect_url = "http://192.168.50.242/oauth2/callback"' in config["data"]["oauth2_proxy.cfg"]
    assert 'cookie_refresh = "3m"' in config["data"]["oauth2_proxy.cfg"]
    assert "the provider must accept the redirect URI http://192.168.50.242/oauth2/callback" in out
    # the gateway at its MetalLB address (the role's patch), where the dashboard then answers
    gateway = server.objects["/api/v1/namespaces/istio-system/services/istio-ingressgateway"]
    assert gateway["spec"]["type"] == "LoadBalancer"
    assert gateway["metadata"]["annotations"] == {"metallb.io/loadBalancerIPs": "192.168.50.242"}
    assert "dashboard http://192.168.50.242/" in out
    assert OIDC_SECRET not in out


def test_the_role_refuses_oidc_without_its_client_before_anything_is_applied(site):
    server, play = site
    rc, out, recap = play(gpulab_kubeflow_auth="oidc", kubeflow_dex_users=None,
                          kubeflow_oidc_issuer_url="https://sso.gpulab.lan/realms/gpulab")
    assert rc != 0 and recap["failed"] == 1, out
    assert "kubeflow_auth is oidc (dex or oidc, from gpulab_kubeflow_auth)" in out
    assert patched(server) == []


def test_the_role_refuses_oidc_without_a_redirect_url_where_no_gateway_address_gives_one(site):
    server, play = site
    rc, out, recap = play(**dict(OIDC, kubeflow_gateway_address=""))
    assert rc != 0 and recap["failed"] == 1, out
    assert "kubeflow_oidc_redirect_url (its default needs kubeflow_gateway_address" in out
    assert patched(server) == []


def test_a_rollout_whose_new_pods_fail_is_not_taken_for_done(site):
    server, play = site
    server.stuck.add("oauth2-proxy")
    rc, out, recap = play(kubeflow_resources={}, kubeflow_component_timeouts={"oauth2_proxy": 1})
    assert rc != 0 and recap["failed"] == 1, out
    assert ("oauth2_proxy: not rolled out after 1s: Deployment oauth2-proxy/oauth2-proxy (set "
            "component_timeouts.oauth2_proxy to wait longer)") in out
