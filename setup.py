"""Ships the top-level config folders (data_recipes/, train/, evaluate/, pipelines/) inside the wheel as
``bamkit/_configs/``: the checkout's folders stay their one source, and an installed bamkit runs its pipelines
from any folder (``bamkit run``, ``bamkit configs copy DIR`` to edit them). Everything else is in pyproject.toml."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CONFIG_FOLDERS = ("data_recipes", "train", "evaluate", "pipelines")


class BuildWithConfigs(build_py):
    def run(self) -> None:
        super().run()
        root = Path(__file__).resolve().parent
        for folder in CONFIG_FOLDERS:
            for src in sorted((root / folder).rglob("*.yaml")):
                dest = Path(self.build_lib) / "bamkit" / "_configs" / src.relative_to(root)
                dest.parent.mkdir(parents=True, exist_ok=True)
                self.copy_file(str(src), str(dest))


setup(cmdclass={"build_py": BuildWithConfigs})
