"""asv environments whose pinned requirements uv installs in one call.

asv's own ``virtualenv`` and ``uv`` environment types both install the matrix with pip, one
package per call: 172 s for the torch 2.14.1 environment on a 2-core machine, paid again on
every fresh CI runner, nightly host or after `asv run -E` removes an environment. uv resolves
the same exact pins together and links the wheels from its cache: seconds once a wheel is
cached. The environment is still a plain virtualenv (pip is seeded, so asv's build and install
commands run unchanged), and every pin is installed exactly as written: nothing is re-resolved.

The config's build, install and uninstall commands call ``uv`` too (`find_executable`): building
and installing the project's wheel took 0.72-0.79 s with uv against 3.0-3.2 s with pip
(`--no-cache-dir`: it fetched the build backend every time), three interleaved rounds on a 2-core
VM; asv pays it for every commit in every environment.

asv loads this module through ``"plugins"`` in ``asv.conf.json``; ``"environment_type":
"uv-pip"`` selects it.
"""

from __future__ import annotations

import os
import re
import subprocess

from asv import util
from asv.environment import EnvironmentUnavailable
from asv.plugins.uv import Uv

SPECIFIER_START = ("=", "<", ">", "!", "~")


def requirement_specs(requirements: dict[str, str]) -> list[str]:
    """asv's matrix entries as uv arguments: ``{"torch": "2.14.1"}`` -> ``torch==2.14.1``;
    an empty version means any; a value that starts with a specifier is used as written."""
    specs = []
    for key, version in requirements.items():
        name = key.removeprefix("pip+")
        version = (version or "").strip()
        if not version:
            specs.append(name)
        elif version.startswith(SPECIFIER_START):
            specs.append(f"{name}{version}")
        else:
            specs.append(f"{name}=={version}")
    return specs


def uv_finds_python(uv: str, python: str) -> bool:
    """Whether this interpreter is on the machine (`uv python find` looks; it never downloads)."""
    if not re.match(r"^[0-9]", python):
        return False
    return subprocess.run([uv, "python", "find", python], capture_output=True).returncode == 0


class UvPip(Uv):
    """``uv venv --seed``, then one ``uv pip install`` of every pinned requirement."""

    tool_name = "uv-pip"

    def __init__(self, conf, python, requirements, tagged_env_vars):
        # As asv's virtualenv type: a Python that is not on this machine makes the environment
        # unavailable, so a config whose `pythons` names a missing one selects no environment
        # (asv: "No environments selected"; the gate: "measured nothing"), instead of asv
        # failing to create it halfway.
        super().__init__(conf, python, requirements, tagged_env_vars)
        if not uv_finds_python(self._uv_path, python):
            raise EnvironmentUnavailable(
                f"uv finds no Python {python} on this machine: install it "
                f"(`uv python install {python}`) or change `pythons` in asv.conf.json"
            )

    def find_executable(self, executable):
        """`uv` in a build, install or uninstall command is the uv that made the environment
        (asv looks only in the environment's own bin/, and uv is not one of its packages)."""
        if executable == "uv" and self._uv_path:
            return self._uv_path
        return super().find_executable(executable)

    def _install_requirements(self):
        specs = requirement_specs({**self._requirements, **self._base_requirements})
        python = os.path.join(self._path, "bin", "python")
        env = {**os.environ, **self.build_env_vars}
        # a `uv run` around asv exports the project's venv: never install into that one
        env.pop("VIRTUAL_ENV", None)
        util.check_output(
            # bytecode compiled once here: every benchmark process imports torch and timm
            [self._uv_path, "pip", "install", "--compile-bytecode", "--python", python, *specs],
            env=env,
            timeout=self._install_timeout,
        )
