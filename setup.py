"""Ships the top-level ``configs/`` inside the wheel as ``posec3d/configs``.

The model catalogue names a config for every released checkpoint and the README's commands use
``configs/...`` paths; a source checkout has them next to the package, an installed wheel has them
here. (Everything else about the build is in pyproject.toml.)"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CONFIGS = Path(__file__).resolve().parent / "configs"


class BuildPyWithConfigs(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False) or not CONFIGS.is_dir():
            return  # an editable install reads configs/ from the checkout itself
        shutil.copytree(CONFIGS, Path(self.build_lib) / "posec3d" / "configs", dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithConfigs})
