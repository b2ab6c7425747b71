"""The plan: an expanded pipeline normalized into stages → jobs → steps, in run order (pure).

:func:`normalize` turns ``steps:``-only, ``jobs:``-only and ``stages:`` pipelines into a
:class:`Plan` and rejects what cannot run before anything starts: missing or conflicting
sections, malformed items, bad names, unknown ``dependsOn`` targets and cycles (ordering in
:mod:`~kiosk.pipelines.ordering`). Each step gets its kind, its name (generated as Azure does when
none is written) and its settings (``condition``, ``continueOnError``, ``timeoutInMinutes``,
``retryCountOnTaskFailure``...); a step the emulator cannot run becomes ``unsupported`` and fails
when reached, like Azure's missing tasks. Where Azure is silent, the choice is marked "Decision:".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from kiosk.pipelines.conditions import DEFAULT_CONDITION, condition_text
from kiosk.pipelines.errors import PipelineError
from kiosk.pipelines.ordering import order_by_dependencies
from kiosk.pipelines.variables import VariableDefinition, read_variables, yaml_scalar_text

__all__ = ["IMPLICIT_JOB", "IMPLICIT_STAGE", "Job", "Plan", "Stage", "StageOrJob", "Step", "normalize"]

IMPLICIT_STAGE: Final = "__default"
"""Azure's name for the stage of a pipeline written without ``stages:``."""
IMPLICIT_JOB: Final = "Job"
"""Azure's name for the job of a pipeline written with only ``steps:``."""

_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_RETRIES: Final = 10  # Azure's limit for retryCountOnTaskFailure


@dataclass(frozen=True)
class Step:
    """One step; ``kind`` is ``cmdline`` (``script:``/CmdLine@2), ``bash``, ``checkout`` or
    ``unsupported`` (it fails at run time with ``problem``, honouring ``continueOnError``)."""

    index: int
    name: str
    kind: str
    display_name: str | None  # as written (macros expanded when it starts); None: the default
    default_display_name: str
    condition: str = DEFAULT_CONDITION
    inputs: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    enabled: bool = True
    continue_on_error: bool = False
    timeout_minutes: float | None = None  # None or 0: no limit of its own
    retry_count: int = 0
    problem: str | None = None
    implicit: bool = False


@dataclass(frozen=True)
class StageOrJob:
    """What stages and jobs share: a name, the names they depend on (ordered by
    :mod:`~kiosk.pipelines.ordering`), a condition and their own variables."""

    name: str
    display_name: str
    depends_on: tuple[str, ...]
    condition: str
    variables: tuple[VariableDefinition, ...]


@dataclass(frozen=True)
class Job(StageOrJob):
    """A job (or a ``runOnce`` deployment, whose lifecycle hooks' steps run in order)."""

    steps: tuple[Step, ...]
    timeout_minutes: float | None = None  # None: RunOptions' default; 0: no limit
    notes: tuple[str, ...] = ()  # what the emulator ignores, for the job log
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Stage(StageOrJob):
    """A stage: its jobs in run order."""

    jobs: tuple[Job, ...]  # in run order
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    """What :func:`~kiosk.pipelines.runner.run_pipeline` runs: pipeline variables and stages in run order."""

    variables: tuple[VariableDefinition, ...]
    stages: tuple[Stage, ...]
    warnings: tuple[str, ...] = ()


_ROOT_JOB_KEYS: Final = ("pool", "container", "services", "workspace", "timeoutInMinutes", "strategy")
_IGNORED_JOB_KEYS: Final = {
    "pool": "Pool {value} is ignored: every step runs as a local process on this machine.",
    "container": "##[warning]Container {value} is ignored: steps run directly on this machine, not in a container.",
    "services": "##[warning]Service containers {value} are not started by the emulator.",
    "environment": "Environment {value} is not tracked by the emulator.",
    "workspace": "Workspace settings {value} are ignored: the run's workspace is used as it is.",
}
_STEP_TYPES: Final = (
    "script",
    "bash",
    "task",
    "checkout",
    "pwsh",
    "powershell",
    "publish",
    "download",
    "downloadBuild",
    "getPackage",
    "reviewApp",
    "template",
)


def normalize(pipeline: Mapping[str, Any]) -> Plan:
    """Turn an expanded pipeline into stages → jobs → steps, in run order.

    A pipeline with only ``jobs:`` gets the implicit stage ``__default``; one with only ``steps:``
    also gets the implicit job ``Job`` (which takes the root's ``pool``, ``container``,
    ``timeoutInMinutes``...). Raises :class:`PipelineError` for what cannot run at all: missing or
    conflicting sections, malformed items, bad names, unknown ``dependsOn`` targets and cycles.
    Unsupported *steps* are not errors here: like Azure's missing tasks, they fail when reached.
    """
    if not isinstance(pipeline, Mapping):
        raise PipelineError("the pipeline must be a mapping")
    sections = [key for key in ("stages", "jobs", "steps") if key in pipeline]
    if not sections:
        raise PipelineError("the pipeline has nothing to run: it needs 'stages', 'jobs' or 'steps'")
    if len(sections) > 1:
        raise PipelineError(f"the pipeline has both '{sections[0]}' and '{sections[1]}'; use only one of them")
    variables, warnings = read_variables(pipeline.get("variables"), "pipeline")
    if "stages" in pipeline:
        stages: list[Stage] = []
        previous: str | None = None
        for item in _mapping_list(pipeline["stages"], "stages", "pipeline"):
            stage = _stage(item, previous)
            stages.append(stage)
            previous = stage.name
    else:
        if "jobs" in pipeline:
            raw_jobs = _mapping_list(pipeline["jobs"], "jobs", "pipeline")
        else:
            root_job = {key: pipeline[key] for key in _ROOT_JOB_KEYS if key in pipeline}
            raw_jobs = [{"job": IMPLICIT_JOB, "steps": pipeline["steps"], **root_job}]
        jobs = order_by_dependencies(
            [_job(item, IMPLICIT_STAGE) for item in raw_jobs], "job", f"stage {IMPLICIT_STAGE}"
        )
        stages = [Stage(IMPLICIT_STAGE, IMPLICIT_STAGE, (), DEFAULT_CONDITION, (), tuple(jobs))]
    return Plan(tuple(variables), tuple(order_by_dependencies(stages, "stage", "pipeline")), tuple(warnings))


def _mapping_list(value: Any, key: str, where: str) -> list[Mapping[str, Any]]:
    if not isinstance(value, list) or not value:
        raise PipelineError(f"{where}: '{key}' must be a non-empty list")
    for item in value:
        if not isinstance(item, Mapping):
            raise PipelineError(f"{where}: each item of '{key}' must be a mapping, found {item!r}")
    return value


def _identifier(value: Any, what: str, where: str) -> str:
    if not isinstance(value, str) or _IDENTIFIER.fullmatch(value) is None:
        raise PipelineError(
            f"{where}: {what} name {value!r} is invalid (letters, digits and '_', not starting with a digit)"
        )
    return value


def _depends_on(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise PipelineError(f"{where}: 'dependsOn' must be a name or a list of names, found {value!r}")


def _stage(spec: Mapping[str, Any], previous: str | None) -> Stage:
    if "template" in spec:
        raise PipelineError(f"stage template '{spec['template']}' was not expanded")
    name = _identifier(spec.get("stage"), "stage", "stages")
    where = f"stage {name}"
    if "dependsOn" in spec and spec["dependsOn"] is not None:
        depends_on = _depends_on(spec["dependsOn"], where)
    else:
        # A stage without dependsOn depends on the one written before it.
        depends_on = (previous,) if previous is not None else ()
    variables, warnings = read_variables(spec.get("variables"), where)
    jobs = order_by_dependencies(
        [_job(item, name) for item in _mapping_list(spec.get("jobs"), "jobs", where)], "job", where
    )
    return Stage(
        name=name,
        display_name=_text(spec.get("displayName"), where) or name,
        depends_on=depends_on,
        condition=condition_text(spec.get("condition")),
        variables=tuple(variables),
        jobs=tuple(jobs),
        warnings=tuple(warnings),
    )


def _job(spec: Mapping[str, Any], stage: str) -> Job:
    if "template" in spec:
        raise PipelineError(f"stage {stage}: job template '{spec['template']}' was not expanded")
    deployment = "deployment" in spec
    name = _identifier(spec.get("deployment" if deployment else "job"), "job", f"stage {stage}")
    where = f"stage {stage}, job {name}"
    notes = [
        template.format(value=_describe(spec[key])) for key, template in _IGNORED_JOB_KEYS.items() if spec.get(key)
    ]
    raw_steps: Any
    if deployment:
        raw_steps, hook_notes = _deployment_steps(spec.get("strategy"), where)
        notes.extend(hook_notes)
    else:
        strategy = spec.get("strategy")
        if isinstance(strategy, Mapping) and ("matrix" in strategy or "parallel" in strategy):
            raise PipelineError(f"{where}: 'strategy: matrix/parallel' is not supported by the emulator")
        raw_steps = spec.get("steps")
    variables, warnings = read_variables(spec.get("variables"), where)
    timeout = spec.get("timeoutInMinutes")
    return Job(
        name=name,
        display_name=_text(spec.get("displayName"), where) or name,
        depends_on=_depends_on(spec["dependsOn"], where) if spec.get("dependsOn") is not None else (),
        condition=condition_text(spec.get("condition")),
        variables=tuple(variables),
        # Azure's deployment jobs do not check out the repository unless told to.
        steps=_steps(_mapping_list(raw_steps, "steps", where), where, implicit_checkout=not deployment),
        timeout_minutes=_minutes(timeout, where) if timeout is not None else None,
        notes=tuple(notes),
        warnings=tuple(warnings),
    )


def _deployment_steps(strategy: Any, where: str) -> tuple[list[Any], list[str]]:
    """The steps of a ``runOnce`` deployment: preDeploy, deploy, routeTraffic, postRouteTraffic.

    Decision: the ``on: failure/success`` hooks are not run (a note says so); other strategies
    (rolling, canary) need several targets and are rejected.
    """
    if not isinstance(strategy, Mapping) or "runOnce" not in strategy:
        kinds = ", ".join(strategy) if isinstance(strategy, Mapping) else "none"
        raise PipelineError(f"{where}: only the 'runOnce' deployment strategy is supported (found: {kinds})")
    run_once = strategy["runOnce"]
    if not isinstance(run_once, Mapping):
        raise PipelineError(f"{where}: 'strategy.runOnce' must be a mapping")
    steps: list[Any] = []
    for hook in ("preDeploy", "deploy", "routeTraffic", "postRouteTraffic"):
        section = run_once.get(hook)
        if isinstance(section, Mapping) and isinstance(section.get("steps"), list):
            steps.extend(section["steps"])
    notes = ["##[warning]The 'on:' success/failure hooks of this deployment are not run."] if "on" in run_once else []
    return steps, notes


def _describe(value: Any) -> str:
    if isinstance(value, Mapping):
        return "(" + ", ".join(f"{key}: {_describe(item)}" for key, item in value.items()) + ")"
    if isinstance(value, list):
        return "[" + ", ".join(_describe(item) for item in value) + "]"
    return f"'{value}'"


def _text(value: Any, where: str) -> str:
    try:
        return yaml_scalar_text(value)
    except PipelineError as err:
        raise PipelineError(f"{where}: {err.message}") from None


def _flag(value: Any, key: str, where: str) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise PipelineError(f"{where}: '{key}' must be true or false, found {value!r}")


def _minutes(value: Any, where: str) -> float:
    """``timeoutInMinutes``: a non-negative number; fractions allowed (0.02 is 1.2 seconds)."""
    try:
        minutes = float(value) if not isinstance(value, bool) else -1.0
    except (TypeError, ValueError):
        minutes = -1.0
    if not minutes >= 0:  # also rejects NaN
        raise PipelineError(f"{where}: 'timeoutInMinutes' must be a number of minutes >= 0, found {value!r}")
    return minutes


@dataclass
class _StepDraft:
    kind: str
    spec: Mapping[str, Any]
    default_name: str
    default_display: str
    inputs: dict[str, str] = field(default_factory=dict)
    problem: str | None = None
    implicit: bool = False


def _steps(items: list[Mapping[str, Any]], where: str, *, implicit_checkout: bool) -> tuple[Step, ...]:
    drafts: list[_StepDraft] = []
    checkout_written = False
    for item in items:
        if "checkout" in item:
            checkout_written = True
            if str(item["checkout"]).strip().lower() == "none":
                continue  # Azure shows no step at all for `checkout: none`
        drafts.append(_draft(item, where))
    if implicit_checkout and not checkout_written:
        # Azure's default: a job checks out its own repository first.
        drafts.insert(0, _StepDraft("checkout", {}, "Checkout", "Checkout", {"repository": "self"}, implicit=True))
    names = _step_names(drafts, where)
    numbered = enumerate(zip(names, drafts, strict=True), start=1)
    return tuple(_step(index, name, draft, where) for index, (name, draft) in numbered)


def _draft(item: Mapping[str, Any], where: str) -> _StepDraft:
    step_type = next((key for key in _STEP_TYPES if key in item), None)
    if step_type in ("script", "bash"):
        inputs = {"script": _text(item[step_type], where)}
        for key in ("workingDirectory", "failOnStderr"):
            if item.get(key) is not None:
                inputs[key] = _text(item[key], where)
        if step_type == "script":
            return _StepDraft("cmdline", item, "CmdLine", "CmdLine", inputs)
        return _StepDraft("bash", item, "Bash", "Bash", {"targetType": "inline", **inputs})
    if step_type == "task":
        return _task_draft(item, where)
    if step_type == "checkout":
        repository = str(item["checkout"])
        if repository.strip().lower() == "self":
            return _StepDraft("checkout", item, "Checkout", "Checkout", {"repository": "self"})
        problem = f"Checking out repository '{repository}' is not available in the emulator (only 'self' and 'none')."
        return _StepDraft("unsupported", item, "Checkout", f"Checkout {repository}", problem=problem)
    if step_type in ("pwsh", "powershell"):
        problem = f"PowerShell steps ('{step_type}') are not available in the emulator: it runs bash only."
        return _StepDraft("unsupported", item, "PowerShell", "PowerShell", problem=problem)
    if step_type == "template":
        problem = f"Step template '{item['template']}' was not expanded; the emulator runs expanded pipelines only."
        return _StepDraft("unsupported", item, "Template", "Template", problem=problem)
    if step_type is not None:
        problem = f"'{step_type}' steps are not available in the emulator."
        base = step_type[0].upper() + step_type[1:]
        return _StepDraft("unsupported", item, base, base, problem=problem)
    keys = ", ".join(str(key) for key in item) or "none"
    problem = f"Unknown step: expected script, bash, task or checkout, found keys {keys}."
    return _StepDraft("unsupported", item, "Step", "Step", problem=problem)


def _task_draft(item: Mapping[str, Any], where: str) -> _StepDraft:
    reference = str(item["task"]).strip()
    task, _, version = reference.partition("@")
    raw_inputs = item.get("inputs") or {}
    if not isinstance(raw_inputs, Mapping):
        raise PipelineError(f"{where}: the 'inputs' of task {reference} must be a mapping")
    inputs = {str(key): _text(value, where) for key, value in raw_inputs.items()}
    base = re.sub(r"[^A-Za-z0-9_]", "_", task) or "Task"
    if task.lower() == "cmdline" and version.strip() == "2":
        return _StepDraft("cmdline", item, base, "Command Line Script", inputs)
    if task.lower() == "bash" and version.strip() == "3":
        # Bash@3's targetType defaults to filePath, as in the task's definition.
        return _StepDraft("bash", item, base, "Bash Script", {"targetType": "filePath", **inputs})
    problem = f"The task '{reference}' is not available in the emulator: it runs script, bash, CmdLine@2 and Bash@3."
    return _StepDraft("unsupported", item, base, reference, problem=problem)


def _step_names(drafts: list[_StepDraft], where: str) -> list[str]:
    """Explicit ``name:`` values, and generated ones for the rest.

    Decision: a generated name is the task's short name (``CmdLine``, ``Bash``, ``Checkout``),
    numbered from 2 on repeats (``CmdLine2``), never clashing with an explicit name.
    """
    taken: set[str] = set()
    for draft in drafts:
        if draft.spec.get("name") is not None:
            name = _identifier(draft.spec["name"], "step", where)
            if name.lower() in taken:
                raise PipelineError(f"{where}: two steps are named '{name}'")
            taken.add(name.lower())
    names: list[str] = []
    for draft in drafts:
        if draft.spec.get("name") is not None:
            names.append(str(draft.spec["name"]))
            continue
        name, number = draft.default_name, 1
        while name.lower() in taken:
            number += 1
            name = f"{draft.default_name}{number}"
        taken.add(name.lower())
        names.append(name)
    return names


def _step(index: int, name: str, draft: _StepDraft, where: str) -> Step:
    spec = draft.spec
    here = f"{where}, step {name}"
    env = spec.get("env") or {}
    if not isinstance(env, Mapping):
        raise PipelineError(f"{here}: 'env' must be a mapping")
    retries = spec.get("retryCountOnTaskFailure", 0)
    if isinstance(retries, str) and retries.strip().isdigit():
        retries = int(retries)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= _MAX_RETRIES:
        raise PipelineError(f"{here}: 'retryCountOnTaskFailure' must be a whole number from 0 to {_MAX_RETRIES}")
    timeout = spec.get("timeoutInMinutes")
    return Step(
        index=index,
        name=name,
        kind=draft.kind,
        display_name=_text(spec["displayName"], here) if spec.get("displayName") is not None else None,
        default_display_name=draft.default_display,
        condition=condition_text(spec.get("condition")),
        inputs=draft.inputs,
        env={str(key): _text(value, here) for key, value in env.items()},
        enabled=spec.get("enabled") is None or _flag(spec.get("enabled"), "enabled", here),
        continue_on_error=_flag(spec.get("continueOnError"), "continueOnError", here),
        timeout_minutes=_minutes(timeout, here) if timeout is not None else None,
        retry_count=retries,
        problem=draft.problem,
        implicit=draft.implicit,
    )
