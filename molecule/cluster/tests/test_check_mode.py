"""Check mode predicted the real converge: same changed tasks on every host (runs once, on the controller).

Shared by the Molecule scenarios (molecule/node links to this file). The few tasks no check mode can predict
on a fresh node are listed, with the reason, in molecule/check_mode_unpredictable.txt.
"""
import os
import subprocess


def test_check_mode_predicted_the_converge():
    project = os.environ["MOLECULE_PROJECT_DIRECTORY"]
    result = subprocess.run(
        ["python", os.path.join(project, "scripts", "check-predicts-run"), os.environ["GPULAB_SUMMARY_DIR"],
         "--unpredictable-file", os.path.join(project, "molecule", "check_mode_unpredictable.txt")],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
