"""The documentation builds strictly, and the README's example runs."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mkdocs_build_strict(tmp_path):
    # mkdocs comes with the test extra; a missing install is a failure, not a skip.
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path)]
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", JAX_PLATFORMS="cpu")
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (tmp_path / "index.html").exists()


def test_readme_example_runs():
    text = (ROOT / "README.md").read_text()
    code = re.search(r"## A first example\s+```python\n(.*?)```", text, re.S).group(1)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert res.returncode == 0, res.stderr
    assert "48 M^{2}" in res.stdout
    assert "(4, 4, 4)" in res.stdout


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    cmd = re.search(r"Run the tests.*?```bash\n(.*?)\n```", readme, re.S).group(1)
    tail = cmd.split("&& ", 2)[2]  # after creating and activating the venv
    assert tail in ci
