# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpulab.cluster.kubeflow_resources: the entries of the parts an install applies."""
from __future__ import absolute_import, division, print_function

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.gpulab.cluster.plugins.filter.kubeflow import kubeflow_resources

__metaclass__ = type

BY_PART = {"istio": [{"name": "istiod"}], "dex": [{"name": "dex"}], "pipelines": [{"name": "mysql"}],
           "katib": [{"name": "katib-mysql"}], "profiles": [{"name": "profiles-deployment"}]}


def test_the_installed_parts_entries_in_install_order():
    found = kubeflow_resources(BY_PART, ["profiles", "pipelines"])
    assert [e["name"] for e in found] == ["istiod", "dex", "profiles-deployment", "mysql"]


def test_no_dex_entries_with_oidc_and_none_for_components_left_out():
    found = kubeflow_resources(BY_PART, ["profiles", "katib"], "oidc")
    assert [e["name"] for e in found] == ["istiod", "profiles-deployment", "katib-mysql"]


def test_a_misspelt_part_is_refused_with_the_parts_named():
    with pytest.raises(AnsibleFilterError) as caught:
        kubeflow_resources(dict(BY_PART, pipeline=[]), ["profiles"])
    assert str(caught.value).startswith("kubeflow_resources names pipeline, which is no Kubeflow part; the parts are "
                                        "cert_manager, kubeflow_namespace, istio,")


@pytest.mark.parametrize("by_part, components, message", [
    ({"istio": {"name": "istiod"}}, ["profiles"], "kubeflow_resources.istio must be a list"),
    (["istio"], ["profiles"], "kubeflow_resources must be a mapping of Kubeflow parts"),
    ({}, ["notebooks"], "kubeflow_components: notebooks needs profiles"),
])
def test_bad_input_is_refused(by_part, components, message):
    with pytest.raises(AnsibleFilterError) as caught:
        kubeflow_resources(by_part, components)
    assert str(caught.value).startswith(message)
