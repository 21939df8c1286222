"""Check mode predicted the real converge: same changed tasks on every host (runs once, on the controller)."""
import os
import subprocess


def test_check_mode_predicted_the_converge():
    project = os.environ["MOLECULE_PROJECT_DIRECTORY"]
    folder = os.environ["GPULAB_SUMMARY_DIR"]
    result = subprocess.run(
        ["python", os.path.join(project, "scripts", "check-predicts-run"), folder],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
