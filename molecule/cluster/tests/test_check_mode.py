"""Check mode predicted the real converge: same changed tasks on every host (runs once, on the controller).

Shared by the Molecule scenarios (molecule/node links to this file). Tasks a role skips in check mode because
what they edit does not exist yet (a package the same run installs) say so with a condition on ansible_check_mode;
the summary callback records them, with the handlers they notify, as tasks the real run may change.
"""
import os
import subprocess
import sys


def test_check_mode_predicted_the_converge():
    project = os.environ["MOLECULE_PROJECT_DIRECTORY"]
    result = subprocess.run(
        [sys.executable, os.path.join(project, "scripts", "check-predicts-run"), os.environ["GPULAB_SUMMARY_DIR"]],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
