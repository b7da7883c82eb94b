"""scripts/compare_versions.py times two checkouts in one process and prints their ratio."""
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO, subprocess_env

pytestmark = pytest.mark.slow  # end-to-end: starts main.py, cifar.py or a script as a process


def test_compare_a_checkout_with_itself(fmnist_dir, tmp_path):
    cmd = [sys.executable, "scripts/compare_versions.py", str(REPO), str(REPO), "--warmup_steps", "3",
           "--blocks", "2", "--block_steps", "2", "--threads", "1", "--minibatch_size", "10",
           "--data_path", str(tmp_path)]
    done = subprocess.run(cmd, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert "--model hcr --dataset seq-fmnist --buffer_size 500" in lines[0] and "4 steps each" in lines[0]
    old, new = (float(re.search(rf"^{name}: .*: ([0-9.]+) ms/step$", line).group(1))
                for name, line in zip(("old", "new"), lines[1:3], strict=True))
    ratio = float(re.fullmatch(r"new/old: ([0-9.]+)", lines[3]).group(1))
    assert old > 0 and new > 0 and abs(ratio - new / old) < 0.01
