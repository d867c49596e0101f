"""The wheel a user installs: what it carries, and that the README's `configs/...` paths and the
model catalogue's configs resolve from it outside a source checkout."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CATALOGUE = json.loads((REPO / "posec3d/zoo/released.json").read_text())


def _build_backend_available() -> bool:
    try:
        import setuptools
    except ImportError:
        return False
    return tuple(int(x) for x in setuptools.__version__.split(".")[:2]) >= (70, 1)  # bdist_wheel built in


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """One wheel built from a copy of the source tree (the checkout itself is left untouched)."""
    src = tmp_path_factory.mktemp("src") / "posec3d"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", "*.pyc", "work_dirs", "dev_clips", ".pytest_cache",
        ".venv", "out"))
    out = tmp_path_factory.mktemp("wheel")
    # Without a recent setuptools here, pip's default build isolation fetches the backend.
    isolation = ["--no-build-isolation"] if _build_backend_available() else []
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *isolation, "-w", str(out), str(src)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    (whl,) = out.glob("posec3d-*.whl")
    return whl


@pytest.mark.slow
def test_the_wheel_carries_every_catalogue_config_and_no_research_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {e["config"] for e in CATALOGUE["models"]}
    assert configs and all(f"posec3d/{c}" in names for c in configs), sorted(
        c for c in configs if f"posec3d/{c}" not in names)
    tracked = {p.relative_to(REPO).as_posix() for p in (REPO / "configs").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}
    assert {f"posec3d/{t}" for t in tracked} <= names
    # The bundled default model ships; datasets and videos (research-only or third-party) never do.
    assert "posec3d/zoo/penn_action/penn_action_x3d_shallow.pth" in names
    banned = (".pkl", ".mp4", ".avi", ".mkv", ".npy", ".npz")
    assert not [n for n in names if n.endswith(banned)]
    assert wheel.stat().st_size < 25e6


@pytest.mark.slow
def test_configs_resolve_from_the_installed_wheel_outside_a_checkout(wheel, tmp_path):
    """Installed into a fresh venv (its dependencies borrowed from this interpreter's site-packages),
    run from a folder with no configs/: the catalogue's configs exist and `configs/...` loads."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
                   check=True, timeout=120)
    py = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps",
                    "--no-index", str(wheel)], check=True, timeout=300)
    probe = (
        "import posec3d, json\n"
        "from pathlib import Path\n"
        "from posec3d.zoo.catalogue import released_models\n"
        "from posec3d.engine.config import load_config\n"
        "missing = [m.name for m in released_models() if not m.config.is_file()]\n"
        "cfg = load_config('configs/ntu60_xsub/slowonly_r50_joint.py')\n"
        "print(json.dumps(dict(pkg=posec3d.__file__, missing=missing, n=len(released_models()),\n"
        "                      cfg=cfg['_filename'], head=cfg['model']['cls_head']['num_classes'])))\n")
    work = tmp_path / "elsewhere"
    work.mkdir()
    r = subprocess.run([str(py), "-c", probe], cwd=work, capture_output=True, text=True, timeout=300,
                       env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert Path(got["pkg"]).is_relative_to(venv), got["pkg"]  # the wheel, not the checkout
    assert got["n"] > 30 and got["missing"] == []
    assert Path(got["cfg"]).is_relative_to(venv) and got["cfg"].endswith("posec3d/configs/ntu60_xsub/slowonly_r50_joint.py")
    assert got["head"] == 60


def test_readme_config_paths_load_from_any_folder(tmp_path, monkeypatch):
    """In the editable install too, `configs/...` names the checkout's configs from another folder;
    a `configs/...` file of the user's own, when present, wins."""
    from posec3d.engine.config import load_config
    from posec3d.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    cfg = load_config("configs/penn_action/x3d_shallow_penn_action.py")
    assert Path(cfg["_filename"]) == REPO / "configs/penn_action/x3d_shallow_penn_action.py"
    own = tmp_path / "configs/penn_action/x3d_shallow_penn_action.py"
    own.parent.mkdir(parents=True)
    own.write_text("model = dict(type='Recognizer3D')\n")
    assert load_config("configs/penn_action/x3d_shallow_penn_action.py")["model"] == {"type": "Recognizer3D"}
    with pytest.raises(ConfigError, match="configs/no_such.py: config file not found"):
        load_config("configs/no_such.py")
