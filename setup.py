"""The one thing pyproject.toml cannot say: configs/ is the package mt.configs in the wheel."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["mt", "mt.*"]), "mt.configs"],
    package_dir={"mt.configs": "configs"},
)
