"""Every example in every docstring of the package runs and prints what it says.

The examples are run in a fresh interpreter with JAX's default configuration (float32), as a
reader who copies them would run them, not under the test suite's float64 settings.
"""

import os
import subprocess
import sys

RUNNER = r"""
import doctest, importlib, pkgutil, sys
import infograv
failed, attempted = [], 0
for info in pkgutil.walk_packages(infograv.__path__, "infograv."):
    if "._theory" in info.name:
        continue
    mod = importlib.import_module(info.name)
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                          report=True)
    attempted += res.attempted
    if res.failed:
        failed.append(info.name)
print(f"attempted={attempted} failed={failed}")
sys.exit(1 if failed else 0)
"""


def test_all_docstring_examples_run():
    env = dict(os.environ, JAX_PLATFORMS="cpu", MPLBACKEND="Agg")
    env.pop("JAX_ENABLE_X64", None)
    res = subprocess.run([sys.executable, "-c", RUNNER], capture_output=True, text=True,
                         env=env, timeout=900)
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-3000:]
    attempted = int(res.stdout.rsplit("attempted=", 1)[1].split()[0])
    assert attempted > 100, "the package's docstrings should carry runnable examples"
