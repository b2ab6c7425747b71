"""What each ``##vso[...]`` logging command does to the running job.

:mod:`~kiosk.pipelines.logging_commands` parses the lines scripts print; this module carries them
out, as Azure's agent does: ``task.setvariable`` (later steps, and dependents for ``isOutput``),
``task.setsecret``, ``task.complete``, ``task.logissue``, ``task.prependpath``; ``task.setprogress``
is accepted and ignored, any other command is ignored with a warning. A secret value is added to
the masker before the line that carries it is logged.
"""

from __future__ import annotations

from kiosk.pipelines.logging_commands import LoggingCommand, parse_bool
from kiosk.pipelines.run_state import JobState, StepState
from kiosk.pipelines.variables import SecretMasker, Variable, is_system_name

__all__ = ["apply_logging_command"]


def apply_logging_command(
    command: LoggingCommand, state: JobState, step_state: StepState, masker: SecretMasker
) -> list[str]:
    """Carry out one ``##vso[...]`` command; returns warnings to log after the line."""
    properties = command.properties
    if command.name == "task.setvariable":
        return _set_variable(command, state, step_state, masker)
    if command.name == "task.setsecret":
        masker.add(command.data)
    elif command.name == "task.complete":
        result = properties.get("result", "Succeeded").strip().lower()
        mapped = {"succeeded": "succeeded", "succeededwithissues": "succeededWithIssues", "failed": "failed"}
        if result not in mapped:
            return [f"task.complete: unknown result '{properties.get('result')}'; ignored."]
        step_state.complete_result = mapped[result]
    elif command.name == "task.logissue":
        kind = properties.get("type", "").strip().lower()
        if kind not in ("error", "warning"):
            return [f"task.logissue: type must be error or warning, found '{properties.get('type', '')}'."]
        step_state.record.issues.append(f"{kind}: {masker.mask(command.data)}")
    elif command.name == "task.prependpath":
        if command.data.strip():
            state.path_prepends.insert(0, command.data.strip())
    elif command.name != "task.setprogress":
        return [f"The logging command '{command.name}' is not supported by the emulator; ignored."]
    return []


def _set_variable(command: LoggingCommand, state: JobState, step_state: StepState, masker: SecretMasker) -> list[str]:
    """``task.setvariable``: visible to later steps of this job; ``isOutput`` also to dependents.

    An output variable is named ``<step>.<name>`` in this job and appears in
    ``dependencies.<job>.outputs['<step>.<name>']`` of the jobs (and stages) that follow.
    """
    properties = command.properties
    name = properties.get("variable", "").strip()
    secret = parse_bool(properties.get("issecret"))
    if secret:
        masker.add(command.data)  # before the line itself is logged
    if not name:
        return ["task.setvariable needs a 'variable' property; ignored."]
    if is_system_name(name):
        return [f"Variable '{name}' is a system variable and cannot be set by a script; ignored."]
    output = parse_bool(properties.get("isoutput"))
    target = f"{step_state.step.name}.{name}" if output else name
    if state.variables.is_readonly(target):
        return [f"Variable '{target}' is read-only and cannot be set; ignored."]
    readonly = parse_bool(properties.get("isreadonly"))
    state.variables.set(target, Variable(command.data, secret), readonly=readonly)
    if output:
        state.outputs[target] = command.data
    return []
