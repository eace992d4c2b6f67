"""Packaging: the distribution ``modelsign-oms`` as ``make dist`` builds it.

``modelsign`` on PyPI is another project (README, Install); this one's distribution is
``modelsign-oms``, its import package and command stay ``modelsign``.

- Without the network: ``python -m build --no-isolation`` (this environment's setuptools)
  builds the sdist, then the wheel from the sdist, out of a copy of the checkout's files
  (a stale ``build/`` or a build running beside it cannot leak in). The wheel's metadata
  (name, version, dependencies), its files and the sdist's are checked.
- With the package registry (``slow``, skipped only when the index cannot be reached): the
  wheel built as ``make dist`` builds it (setuptools from the index) is installed with its
  dependencies into a fresh virtual environment; there, run from outside the checkout, its
  ``modelsign`` command signs and verifies the example model and its API builds a manifest.
  It prints how long building, installing and running took (``-s`` shows it).
"""

from __future__ import annotations

import configparser
import email.message
import email.parser
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import modelsign
from modelsign.sign import build_manifest
from tests.helpers.examples import build_example
from tests.helpers.paths import ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest and mypy require tomli before 3.11
    import tomli as tomllib

DIST = "modelsign-oms"
#: The distribution's name in file names (wheel, sdist, .dist-info).
DIST_FILE = "modelsign_oms"
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
#: Names (.gitignore's) of what a checkout outside git holds that is not source.
_NOT_SOURCE = (
    ".git",
    ".venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    "*.py[cod]",
    ".*_cache",
)


def _run(
    args: Sequence[str | Path],
    *,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    shown = " ".join(map(str, args))
    assert r.returncode == 0, f"{shown}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def _copy_checkout(dest: Path) -> Path:
    """The checkout's files (tracked, and new ones not ignored) copied to ``dest``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if listed.returncode != 0:  # not a git checkout: everything but what a build leaves
        shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(*_NOT_SOURCE))
        return dest
    for name in filter(None, listed.stdout.split("\0")):
        source = ROOT / name
        if source.is_file():  # deleted in the work tree but still tracked: left out
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def _needs_build() -> None:
    if importlib.util.find_spec("build") is None:
        pytest.skip(
            "the build front end is not installed: the test extra has it (make install-test)"
        )


@pytest.fixture(scope="session")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _copy_checkout(tmp_path_factory.mktemp("checkout"))


@dataclass(frozen=True)
class Dists:
    sdist: Path
    wheel: Path


@pytest.fixture(scope="session")
def dists(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Dists:
    """The sdist, and the wheel built from it, by ``python -m build --no-isolation``."""
    _needs_build()
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", out, source], cwd=source)
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return Dists(sdist, wheel)


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as z:
        text = z.read(f"{DIST_FILE}-{modelsign.__version__}.dist-info/METADATA").decode()
    return email.parser.Parser().parsestr(text)


def _key(requirement: str) -> tuple[str, tuple[str, ...], str, str]:
    r = Requirement(requirement)
    return canonicalize_name(r.name), tuple(sorted(r.extras)), str(r.specifier), str(r.marker)


def _package_files(root: Path) -> set[str]:
    """The files of the ``modelsign`` package under ``root``, as relative POSIX paths."""
    return {
        p.relative_to(root).as_posix()
        for p in (root / "modelsign").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


# -- the name and the version -------------------------------------------------------------------


def test_the_distribution_is_named_apart_from_the_other_modelsign() -> None:
    project = PYPROJECT["project"]
    assert project["name"] == DIST
    assert project["scripts"] == {"modelsign": "modelsign.cli:main"}


def test_the_version_has_one_source() -> None:
    """pyproject.toml states no version: setuptools reads ``modelsign._version``."""
    project = PYPROJECT["project"]
    assert "version" not in project and "version" in project["dynamic"]
    dynamic = PYPROJECT["tool"]["setuptools"]["dynamic"]
    assert dynamic["version"] == {"attr": "modelsign._version.__version__"}


def test_install_lines_name_this_distribution() -> None:
    """No ``pip install modelsign`` in the docs and CI files: that installs the other project."""
    other = re.compile(r"modelsign(\[[^\]]*\])?([<>=!~;].*)?")  # a requirement of modelsign
    files = [ROOT / "README.md", ROOT / "action.yml", *(ROOT / "examples").rglob("*.y*ml")]
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            for args in re.findall(r"pip install\b(.*)", line):
                named = [a for a in args.split() if other.fullmatch(a.strip("\"'`"))]
                assert not named, f"{path}: {line}"


# -- the wheel and the sdist --------------------------------------------------------------------


def test_wheel_metadata_has_the_name_the_version_and_the_dependencies(dists: Dists) -> None:
    assert dists.wheel.name == f"{DIST_FILE}-{modelsign.__version__}-py3-none-any.whl"
    meta = _metadata(dists.wheel)
    assert meta["Name"] == DIST
    assert meta["Version"] == modelsign.__version__
    project = PYPROJECT["project"]
    assert meta["Requires-Python"] == project["requires-python"]
    extras = project["optional-dependencies"]
    assert set(meta.get_all("Provides-Extra") or ()) == set(extras)
    wanted = {_key(d) for d in project["dependencies"]}
    wanted |= {_key(f'{d}; extra == "{x}"') for x, deps in extras.items() for d in deps}
    assert {_key(d) for d in meta.get_all("Requires-Dist") or ()} == wanted


def test_wheel_holds_the_package_and_nothing_else(dists: Dists, source: Path) -> None:
    info = f"{DIST_FILE}-{modelsign.__version__}.dist-info"
    with zipfile.ZipFile(dists.wheel) as z:
        names = set(z.namelist())
        entry_points = z.read(f"{info}/entry_points.txt").decode()
    assert {n.split("/")[0] for n in names} == {"modelsign", info}
    package = {n for n in names if n.startswith("modelsign/")}
    # Every module and subpackage (modelsign/_internal/… too), py.typed and any data file.
    assert package == _package_files(source)
    assert {"modelsign/py.typed", "modelsign/_internal/signature/__init__.py"} <= package
    assert f"{info}/licenses/LICENSE" in names  # the Apache-2.0 text the metadata names
    scripts = configparser.ConfigParser()
    scripts.read_string(entry_points)
    assert dict(scripts["console_scripts"]) == {"modelsign": "modelsign.cli:main"}


def test_sdist_holds_what_a_rebuild_needs(dists: Dists, source: Path) -> None:
    """pyproject.toml, MANIFEST.in, the README (the long description), the licence text and
    the package; no
    tests (they need the checkout's examples/ and tools/ too). The wheel was built from it."""
    top = f"{DIST_FILE}-{modelsign.__version__}"
    assert dists.sdist.name == f"{top}.tar.gz"
    with tarfile.open(dists.sdist) as t:
        names = {m.name.removeprefix(f"{top}/") for m in t.getmembers() if m.isfile()}
    needed = {"pyproject.toml", "MANIFEST.in", "README.md", "LICENSE", "PKG-INFO"}
    assert needed <= names
    made = {"setup.cfg", f"{DIST_FILE}.egg-info"}  # by setuptools
    assert {n.split("/")[0] for n in names} <= needed | made | {"modelsign"}
    assert {n for n in names if n.startswith("modelsign/")} == _package_files(source)


# -- the wheel installed ------------------------------------------------------------------------


def _index_url() -> str:
    """The index pip installs from: PIP_INDEX_URL, pip's configuration, else PyPI."""
    if os.environ.get("PIP_INDEX_URL"):
        return os.environ["PIP_INDEX_URL"].split()[0]
    for key in ("install.index-url", "global.index-url"):
        r = subprocess.run(
            [sys.executable, "-m", "pip", "config", "get", key], capture_output=True, text=True
        )
        if r.returncode == 0 and r.stdout.strip():
            return r.stdout.split()[0]
    return "https://pypi.org/simple/"


def _skip_without_registry() -> None:
    """Skip unless the package index answers (this is the one test that needs it)."""
    url = _index_url().rstrip("/") + "/"
    try:
        with urllib.request.urlopen(url + "pip/", timeout=20):
            pass
    except urllib.error.HTTPError:
        pass  # it answered
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        pytest.skip(f"package registry {url} unreachable ({reason}): the install needs it")


def _test_requirement(name: str) -> str:
    """The test extra's requirement on ``name``."""
    extra = PYPROJECT["project"]["optional-dependencies"]["test"]
    (found,) = (d for d in extra if canonicalize_name(Requirement(d).name) == name)
    return found


def _venv(path: Path, *, cwd: Path) -> tuple[list[str], dict[str, str]]:
    """A fresh virtual environment: its pip command line and an environment to run it in,
    without this one's Python settings (nothing of the checkout on the path)."""
    _run([sys.executable, "-m", "venv", path], cwd=cwd)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSAFEPATH"}
    }
    env["PATH"] = f"{path / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    pip = [str(path / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "--no-input"]
    return pip, env


@pytest.mark.slow
def test_the_wheel_installs_with_its_dependencies_and_works(source: Path, tmp_path: Path) -> None:
    """Built as ``make dist`` builds it: the front end of the test extra in an environment of
    its own, setuptools from the index in an isolated one; the sdist, the wheel from it."""
    _skip_without_registry()
    out, work = tmp_path / "dist", tmp_path / "work"
    work.mkdir()
    assert not work.resolve().is_relative_to(ROOT)
    started = time.monotonic()
    pip, env = _venv(tmp_path / "build-venv", cwd=work)
    _run([*pip, "install", _test_requirement("build")], cwd=work, env=env)
    _run([pip[0], "-m", "build", "--outdir", out, source], cwd=source, env=env)
    (wheel,) = out.glob("*.whl")
    built = time.monotonic()

    venv = tmp_path / "venv"
    pip, env = _venv(venv, cwd=work)
    _run([*pip, "install", wheel], cwd=work, env=env, timeout=900)
    _run([*pip, "check"], cwd=work, env=env)
    installed = time.monotonic()

    python, command = venv / "bin" / "python", venv / "bin" / "modelsign"
    for version in ([command, "--version"], [python, "-m", "modelsign", "--version"]):
        assert modelsign.__version__ in _run(version, cwd=work, env=env).stdout
    model, quant = build_example(tmp_path / "models")
    _run([command, "keygen", "-o", "release"], cwd=work, env=env)
    _run([command, "sign", model, "--key", "release.key"], cwd=work, env=env)
    verified = _run([command, "verify", model, "--key", "release.pub"], cwd=work, env=env)
    assert "verified" in verified.stdout + verified.stderr

    api = (
        "import importlib.metadata, json, sys, modelsign\n"
        "m = modelsign.build_manifest(sys.argv[1])\n"
        "print(json.dumps({'file': modelsign.__file__, 'digest': m.digest(),\n"
        f"    'version': importlib.metadata.version({DIST!r})}}))\n"
    )
    answer = json.loads(_run([python, "-c", api, quant], cwd=work, env=env).stdout)
    assert Path(answer["file"]).is_relative_to(venv)  # the installed package, not the checkout
    assert answer["version"] == modelsign.__version__
    assert answer["digest"] == build_manifest(quant).digest()
    took = [
        f"{t:.1f} s" for t in (built - started, installed - built, time.monotonic() - installed)
    ]
    print("build {}, venv and install {}, CLI and API {}".format(*took))
