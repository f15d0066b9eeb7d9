"""Build hook: ship the root-level registry.yaml, recipes/ and data/ inside the wheel.

In a source checkout (editable install) rlhub reads them from the repository root; a wheel has no
repository root, so they are copied under ``rlhub/_data/`` at build time.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).parent


class BuildWithData(build_py):
    def run(self):
        super().run()
        dest = Path(self.build_lib) / "rlhub" / "_data"
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / "registry.yaml", dest / "registry.yaml")
        shutil.copytree(ROOT / "recipes", dest / "recipes", dirs_exist_ok=True)
        shutil.copytree(ROOT / "data", dest / "data", dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildWithData})
