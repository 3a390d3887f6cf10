"""The package list, with the configs: ``conf/`` (one copy, at the top of the repository)
ships inside the wheel as ``chordexp/conf``, so an installed ``python -m chordexp.run``
finds them (``chordexp.run.CONF_DIR``). Everything else is in pyproject.toml."""

from setuptools import find_namespace_packages, find_packages, setup

CONF = ["chordexp." + name for name in find_namespace_packages(include=["conf", "conf.*"])]

#: Hydra's Optuna sweeper of ours: hydra_plugins is a namespace package (no __init__.py), shared with Hydra's plugins.
PLUGINS = find_namespace_packages(include=["hydra_plugins.chordexp_optuna_sweeper"])

setup(
    packages=find_packages(include=["chordexp", "chordexp.*"]) + CONF + PLUGINS, package_dir={"chordexp.conf": "conf"}
)
