"""The layering contracts (.importlinter) hold, and a module that breaks one is caught."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{root / 'plugins'}{os.pathsep}{root}"}
    return subprocess.run([str(LINT), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_every_layering_contract_is_kept():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "Contracts: 6 kept, 0 broken." in result.stdout


def test_a_core_module_importing_a_hook_breaks_the_contracts(tmp_path):
    copy = tmp_path / "repo"
    for part in ("plugins", "dags", "sandbox", "tests"):
        shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", copy / ".importlinter")
    (copy / "plugins/antdb_k8s/core/leak.py").write_text(
        '"""A deliberate violation."""\nfrom antdb_k8s.hooks.kube import AntDBKubeHook\nimport psycopg\n')
    result = _lint(copy)
    assert result.returncode != 0
    assert "No module imports a higher layer" in result.stdout and "BROKEN" in result.stdout
    assert "antdb_k8s.core.leak -> antdb_k8s.hooks.kube" in result.stdout
    assert "antdb_k8s.core.leak -> psycopg" in result.stdout
