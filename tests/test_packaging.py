"""Layout and packaging: one distribution, c360.<folder> subpackages, graphql-core never shadowed."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_graphql_core_is_not_shadowed_from_the_repository_root() -> None:
    path = run(sys.executable, "-c", "import strawberry, graphql; print(graphql.__file__)").strip()
    assert "site-packages" in path and not path.startswith(str(ROOT / "graphql"))


def test_import_contracts_hold() -> None:
    lint = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(lint).exists():
        pytest.skip("import-linter not installed (pip install -e '.[dev]')")
    out = run(lint)
    assert "0 broken" in out


def test_wheel_installs_every_folder_as_a_subpackage(tmp_path: Path) -> None:
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(tmp_path),
        str(ROOT),
    )
    (wheel,) = tmp_path.glob("c360-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in (
        "c360/cli/__init__.py",
        "c360/graph/store.py",
        "c360/resolution/linker.py",
        "c360/connectors/files.py",
        "c360/streams/__init__.py",
        "c360/ml/__init__.py",
    ):
        assert module in names
    assert not any(n.startswith(("graph/", "graphql/", "tests/")) for n in names)
    target = tmp_path / "site"
    run(sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel))
    code = "import c360.graph.store, c360.resolution.linker, c360.connectors.files, c360.cli; print(c360.__file__)"
    out = run(sys.executable, "-c", code, cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"})
    assert out.strip().startswith(str(target))


@pytest.mark.servers  # pip fetches the build backend from the package index into an isolated build
@pytest.mark.parametrize("mode", ["lenient", "strict"])
def test_editable_install_in_a_fresh_venv(tmp_path: Path, mode: str) -> None:
    """`pip install -e .` into a new venv; the dependencies come from this environment's site-packages."""
    import site
    import venv

    target = tmp_path / "venv"
    venv.create(target, with_pip=False)
    python = target / "bin" / "python"
    args = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "-e", str(ROOT)]
    if mode == "strict":
        args += ["--config-settings", "editable_mode=strict"]
    run(*args, cwd=tmp_path)
    code = "import c360.graph.store, c360.resolution.linker, c360.connectors.files, c360.cli; print('ok')"
    deps = ":".join(site.getsitepackages())
    assert run(str(python), "-c", code, cwd=tmp_path, env={"PYTHONPATH": deps, "PATH": "/usr/bin:/bin"}) == "ok\n"
