"""`pip install .` anywhere: a wheel built from the repository, installed into a fresh venv and run from
outside the repository, lists its presets, samples from its bundled text model, and generates audio with
the numba kernels that warm_up() compiled into the install.

Nothing is downloaded: the fresh venv borrows this venv's dependencies (torch, numpy, ...) through a .pth
file, and the wheel is built and installed with --no-build-isolation / --no-index.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run(*cmd, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    # built from a copy: an in-tree build would leave build/ and *.egg-info in the repository
    source = tmp / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "bench", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache"))
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
        "-w", tmp / "dist", ".", cwd=source)
    return next((tmp / "dist").glob("sequence_studio-*.whl"))


@pytest.fixture(scope="module")
def fresh_venv(wheel, tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("venv")
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=venv)
    python = venv / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=venv).stdout.strip())
    # after the venv's own site-packages on sys.path, so the installed studio wins over this venv's editable one
    (site / "borrowed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", wheel, cwd=venv)
    return venv


@pytest.fixture
def outside(tmp_path) -> tuple[Path, dict]:
    """A working directory outside the repository, and an environment that cannot reach it."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["SEQUENCE_STUDIO_HOME"] = str(tmp_path / "home")
    return tmp_path, env


def test_the_wheel_carries_every_package_preset_and_bundled_model(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for init in [*REPO.glob("engines/**/__init__.py"), *REPO.glob("studio/**/__init__.py")]:
        path = init.relative_to(REPO).as_posix()
        assert path in names, f"{path} is not in the wheel: add its package to [tool.setuptools] packages"
    for folder, pattern in (("presets", "*/*.toml"), ("assets", "*/*.safetensors"), ("assets", "ink/primed/*")):
        for data in (REPO / folder).glob(pattern):
            assert f"engines/{folder}/{data.relative_to(REPO / folder).as_posix()}" in names


def test_installed_studio_runs_from_its_own_files(fresh_venv, outside):
    cwd, env = outside
    lines = run(fresh_venv / "bin" / "python", "-c", "import engines; text = engines.get_engine('text'); "
                "print(engines.__file__, *text.bundled_models(), sep='\\n'); print(*text.presets())",
                cwd=cwd, env=env).stdout.splitlines()
    *paths, presets = lines
    assert len(paths) >= 2, lines         # the package and at least one bundled model
    for path in paths:
        assert Path(path).is_relative_to(fresh_venv), path
    assert "tiny" in presets.split()

    sample = run(fresh_venv / "bin" / "studio", "sample", "text", "--length", "40", "--seed", "1", cwd=cwd, env=env)
    assert len(sample.stdout.strip()) >= 20, sample.stdout


def test_installed_audio_engine_samples_from_the_kernel_cache_warm_up_filled(fresh_venv, outside):
    cwd, env = outside
    env.pop("NUMBA_CACHE_DIR", None)        # numba's own choice: __pycache__ in the install, as a user gets it
    run(fresh_venv / "bin" / "python", "-c", "from engines.audio.fast import warm_up; warm_up()", cwd=cwd, env=env)
    env["NUMBA_DEBUG_CACHE"] = "1"
    # two variations: their warm-up codes are broadcast, the layout that once needed its own compilation
    sample = run(fresh_venv / "bin" / "studio", "sample", "audio", "--seconds", "0.1", "--seed", "1",
                 "--variations", "2", "--out", cwd / "sample.wav", cwd=cwd, env=env)
    assert f"[cache] data loaded from '{fresh_venv}" in sample.stdout, sample.stdout
    assert "data saved" not in sample.stdout, sample.stdout
    assert (cwd / "sample.wav").stat().st_size > 0
