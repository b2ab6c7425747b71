"""The emulated agent: its name, its work directories, the variables it defines, the environment
scripts get.

Azure's agent gives every job a workspace (``s/`` sources, ``a/`` artifacts, ``b/`` binaries,
``_temp``) and predefined variables naming them (``Build.SourcesDirectory``...), which override
queue-time values. Security: scripts get only a few host environment variables (``PATH``,
``HOME``, ``LANG``, ``LC_ALL``, ``TMPDIR``) plus the pipeline's own, never kiosk's whole
environment; secret variables reach a script only through its step's ``env:``.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from kiosk.pipelines.variables import VariableSet

__all__ = ["AGENT_NAME", "Directories", "agent_variables", "host_environment", "script_environment"]

AGENT_NAME: Final = "kiosk-emulator"
"""``Agent.Name`` of the emulated agent."""

_HOST_ENVIRONMENT: Final = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")


@dataclass(frozen=True)
class Directories:
    """A run's workspace and the directories the agent makes in it."""

    workspace: Path
    sources: Path
    artifacts: Path
    binaries: Path
    temp: Path

    @classmethod
    def create(cls, workspace: Path) -> Directories:
        workspace = workspace.resolve()
        dirs = cls(workspace, workspace / "s", workspace / "a", workspace / "b", workspace / "_temp")
        for path in (dirs.sources, dirs.artifacts, dirs.binaries, dirs.temp):
            path.mkdir(parents=True, exist_ok=True)
        return dirs

    def input_path(self, text: str) -> Path:
        """A task path input: absolute, or relative to System.DefaultWorkingDirectory (s/)."""
        path = Path(text)
        return path if path.is_absolute() else self.sources / path


def agent_variables(dirs: Directories) -> dict[str, str]:
    """What the agent defines for every job (directories, OS); these override queue-time values."""
    system = platform.system()
    machine = platform.machine().lower()
    architecture = {"x86_64": "X64", "amd64": "X64", "aarch64": "ARM64", "arm64": "ARM64"}.get(machine, machine)
    return {
        "Agent.Name": AGENT_NAME,
        "Agent.OS": {"Windows": "Windows_NT"}.get(system, system),
        "Agent.OSArchitecture": architecture,
        "Agent.BuildDirectory": str(dirs.workspace),
        "Agent.TempDirectory": str(dirs.temp),
        "Pipeline.Workspace": str(dirs.workspace),
        "Build.SourcesDirectory": str(dirs.sources),
        "Build.Repository.LocalPath": str(dirs.sources),
        "Build.ArtifactStagingDirectory": str(dirs.artifacts),
        "Build.StagingDirectory": str(dirs.artifacts),
        "Build.BinariesDirectory": str(dirs.binaries),
        "System.DefaultWorkingDirectory": str(dirs.sources),
        "System.ArtifactsDirectory": str(dirs.artifacts),
        "Common.TestResultsDirectory": str(dirs.workspace / "TestResults"),
    }


def host_environment(base_env: Mapping[str, str] | None) -> dict[str, str]:
    """The host variables every script starts from: ``base_env`` if given, else the few named above."""
    if base_env is not None:
        return dict(base_env)
    env = {key: os.environ[key] for key in _HOST_ENVIRONMENT if key in os.environ}
    env.setdefault("PATH", os.defpath)
    return env


def script_environment(
    base_env: Mapping[str, str],
    variables: VariableSet,
    path_prepends: Sequence[str],
    step_env: Mapping[str, str],
) -> dict[str, str]:
    """Host basics, then non-secret variables, then the step's ``env:`` (which may hold secrets).

    ``path_prepends`` are the ``task.prependpath`` directories of earlier steps, newest first.
    """
    env = dict(base_env)
    env.update(variables.environment())
    env["TF_BUILD"] = "True"  # what tools check to know they run in Azure Pipelines
    if path_prepends:
        env["PATH"] = os.pathsep.join([*path_prepends, env.get("PATH", "")])
    env.update(step_env)
    return env
