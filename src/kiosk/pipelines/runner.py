"""The local runner: executes an expanded Azure Pipelines document on this machine.

The emulator server and ``kiosk pipeline run`` hand it the output of
:func:`kiosk.pipelines.expand.expand_pipeline` (plain data, ``$(var)`` macros and ``$[ ]`` left in)
and get back Azure-shaped timeline records and streamed, masked log lines. The point is to show a
pipeline author what Azure would do with their pipeline, so each behaviour follows Azure's agent
and tasks; where Azure is silent or cannot be emulated, the choice is marked "Decision:".

Layout: :func:`normalize` (pure) turns ``steps:``-only, ``jobs:``-only and ``stages:`` pipelines into
a :class:`Plan` of stages → jobs → steps and rejects what cannot run before anything starts.
:func:`run_pipeline` then runs it: stages one at a time in dependency order, the jobs of a stage one
at a time in dependency order, each step as a ``bash`` process in its own process group. The pure
rules live next door: conditions in :mod:`~kiosk.pipelines.conditions`, variables, macros and
masking in :mod:`~kiosk.pipelines.variables`, ``##vso[...]`` parsing in
:mod:`~kiosk.pipelines.logging_commands`.

Security: scripts get only a few host environment variables (``PATH``, ``HOME``, ``LANG``,
``LC_ALL``, ``TMPDIR``) plus the pipeline's own, never kiosk's whole environment, and secret values
never reach a log line unmasked.
"""

from __future__ import annotations

import codecs
import contextlib
import dataclasses
import os
import platform
import re
import selectors
import shlex
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

from kiosk.pipelines.conditions import (
    DEFAULT_CONDITION,
    RESULT_NAMES,
    condition_text,
    dependency_functions,
    evaluate_condition,
    step_functions,
)
from kiosk.pipelines.errors import PipelineError
from kiosk.pipelines.expressions import evaluate, to_string
from kiosk.pipelines.logging_commands import LoggingCommand, parse_bool, parse_logging_command
from kiosk.pipelines.variables import (
    SecretMasker,
    Variable,
    VariableDefinition,
    VariableSet,
    is_system_name,
    read_variables,
    yaml_scalar_text,
)

__all__ = [
    "AGENT_NAME",
    "IMPLICIT_JOB",
    "IMPLICIT_STAGE",
    "CollectingListener",
    "Job",
    "NullListener",
    "Plan",
    "RunListener",
    "RunOptions",
    "RunOutcome",
    "Stage",
    "Step",
    "TimelineRecord",
    "Variable",
    "normalize",
    "run_pipeline",
    "worst_result",
]

IMPLICIT_STAGE: Final = "__default"
"""Azure's name for the stage of a pipeline written without ``stages:``."""
IMPLICIT_JOB: Final = "Job"
"""Azure's name for the job of a pipeline written with only ``steps:``."""
AGENT_NAME: Final = "kiosk-emulator"
"""``Agent.Name`` of the emulated agent."""

BASH: Final = "/bin/bash"
"""Both CmdLine@2 (``script:``) and Bash@3 (``bash:``) run ``bash --noprofile --norc <file>``.

Azure's tasks pass no ``-e``/``-o pipefail`` (that is GitHub Actions' default): a multi-line
script on Azure fails only if its last command does, and the emulator must not be stricter.
"""

_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RUNTIME_EXPRESSION: Final = re.compile(r"\s*\$\[(?P<expr>.*)\]\s*", re.DOTALL)
_HOST_ENVIRONMENT: Final = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
_RANK: Final = {"succeeded": 0, "succeededWithIssues": 1, "failed": 2, "canceled": 3}
_MAX_RETRIES: Final = 10  # Azure's limit for retryCountOnTaskFailure
_MAX_STDERR_ERRORS: Final = 10  # CmdLine@2 repeats at most 10 stderr writes as errors

_POLL_SECONDS: Final = 0.05
_KILL_GRACE_SECONDS: Final = 1.0
_DRAIN_SECONDS: Final = 1.0
_MAX_LINE_CHARS: Final = 1 << 20


# --------------------------------------------------------------------------------------------
# Public data
# --------------------------------------------------------------------------------------------


@dataclass
class TimelineRecord:
    """Azure's timeline record, one per stage, job and step (listeners receive copies).

    ``order`` is the 1-based position among its siblings in run order; ``log_id`` is set when a
    job or step starts (ids 1..n in start order; stages and skipped records have none).
    """

    id: str
    parent_id: str | None
    type: str  # "Stage" | "Job" | "Task"
    name: str
    display_name: str
    order: int
    state: str = "pending"  # pending | inProgress | completed
    result: str | None = None  # succeeded | succeededWithIssues | failed | canceled | skipped
    start_time: datetime | None = None
    finish_time: datetime | None = None
    log_id: int | None = None
    issues: list[str] = field(default_factory=list)  # "error: ..." / "warning: ..."


class RunListener(Protocol):
    """What the runner reports to, from the thread that called :func:`run_pipeline`."""

    def record_changed(self, record: TimelineRecord) -> None: ...

    def log_line(self, log_id: int, line: str) -> None: ...


class NullListener:
    """Discards everything (for callers that only want the :class:`RunOutcome`)."""

    def record_changed(self, record: TimelineRecord) -> None:
        """Ignore the change."""

    def log_line(self, log_id: int, line: str) -> None:
        """Ignore the line."""


class CollectingListener:
    """Keeps every log line by log id and the latest copy of every record (CLI and tests)."""

    def __init__(self) -> None:
        self.logs: dict[int, list[str]] = {}
        self.records: dict[str, TimelineRecord] = {}

    def record_changed(self, record: TimelineRecord) -> None:
        self.records[record.id] = record

    def log_line(self, log_id: int, line: str) -> None:
        self.logs.setdefault(log_id, []).append(line)

    def lines(self, record_id: str | None = None) -> list[str]:
        """The lines of one record's log, or of every log in log-id order (``record_id=None``)."""
        if record_id is None:
            return [line for log_id in sorted(self.logs) for line in self.logs[log_id]]
        record = self.records[record_id]
        return list(self.logs.get(record.log_id, [])) if record.log_id is not None else []


@dataclass
class RunOptions:
    """Where and how to run.

    ``variables`` are the system and queue-time variables (secret ones are masked everywhere);
    ``sources`` is what ``checkout: self`` copies into ``s/``; setting ``cancel`` kills the running
    step and cancels the rest; a job's ``timeoutInMinutes`` defaults to
    ``default_job_timeout_minutes`` (0: no limit); ``base_env`` replaces the few host variables
    scripts get by default (``PATH``, ``HOME``, ``LANG``, ``LC_ALL``, ``TMPDIR``).
    """

    workspace: Path
    sources: Path | None = None
    variables: Mapping[str, Variable] = field(default_factory=dict)
    cancel: threading.Event | None = None
    default_job_timeout_minutes: float = 60.0
    base_env: Mapping[str, str] | None = None


@dataclass
class RunOutcome:
    """The run's result and its records in tree order (stage, its jobs, each job's steps)."""

    result: str
    records: list[TimelineRecord]


def worst_result(results: Sequence[str | None]) -> str | None:
    """Azure's roll-up: canceled > failed > succeededWithIssues > succeeded; skipped ones don't count."""
    ranked = [result for result in results if result in _RANK]
    return max(ranked, key=lambda result: _RANK[result]) if ranked else None


# --------------------------------------------------------------------------------------------
# The plan: normalized stages, jobs and steps (pure)
# --------------------------------------------------------------------------------------------


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
class Job:
    """A job (or a ``runOnce`` deployment, whose lifecycle hooks' steps run in order)."""

    name: str
    display_name: str
    depends_on: tuple[str, ...]
    condition: str
    variables: tuple[VariableDefinition, ...]
    steps: tuple[Step, ...]
    timeout_minutes: float | None = None  # None: RunOptions' default; 0: no limit
    notes: tuple[str, ...] = ()  # what the emulator ignores, for the job log
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Stage:
    name: str
    display_name: str
    depends_on: tuple[str, ...]
    condition: str
    variables: tuple[VariableDefinition, ...]
    jobs: tuple[Job, ...]  # in run order
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    """What :func:`run_pipeline` runs: pipeline variables and stages in run order."""

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
        jobs = _order([_job(item, IMPLICIT_STAGE) for item in raw_jobs], "job", f"stage {IMPLICIT_STAGE}")
        stages = [Stage(IMPLICIT_STAGE, IMPLICIT_STAGE, (), DEFAULT_CONDITION, (), tuple(jobs))]
    return Plan(tuple(variables), tuple(_order(stages, "stage", "pipeline")), tuple(warnings))


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
    jobs = _order([_job(item, name) for item in _mapping_list(spec.get("jobs"), "jobs", where)], "job", where)
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


class _Named(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def depends_on(self) -> tuple[str, ...]: ...


_N = TypeVar("_N", bound=_Named)


def _order(items: list[_N], what: str, where: str) -> list[_N]:
    """Dependency order, stable: always the first item (as written) whose dependencies have run.

    Names are matched case-insensitively, as Azure does; unknown targets and cycles are errors.
    """
    by_key: dict[str, _N] = {}
    for item in items:
        if item.name.lower() in by_key:
            raise PipelineError(f"{where}: two {what}s are named '{item.name}'")
        by_key[item.name.lower()] = item
    for item in items:
        for target in item.depends_on:
            if target.lower() not in by_key:
                raise PipelineError(f"{where}: {what} '{item.name}' depends on unknown {what} '{target}'")
            if target.lower() == item.name.lower():
                raise PipelineError(f"{where}: {what} '{item.name}' depends on itself")
    ordered: list[_N] = []
    done: set[str] = set()
    remaining = list(items)
    while remaining:
        ready = next((i for i in remaining if all(t.lower() in done for t in i.depends_on)), None)
        if ready is None:
            names = ", ".join(item.name for item in remaining)
            raise PipelineError(f"{where}: the dependsOn of these {what}s form a cycle: {names}")
        ordered.append(ready)
        done.add(ready.name.lower())
        remaining.remove(ready)
    return ordered


def _graph(items: Sequence[_Named], name: str) -> list[str]:
    """Every item ``name`` depends on, directly or not, in run order (``items`` is in run order)."""
    deps = {item.name.lower(): [d.lower() for d in item.depends_on] for item in items}
    found: set[str] = set()
    pending = list(deps.get(name.lower(), []))
    while pending:
        key = pending.pop()
        if key not in found:
            found.add(key)
            pending.extend(deps.get(key, []))
    return [item.name for item in items if item.name.lower() in found]


def _canonical(items: Sequence[_Named], names: Sequence[str]) -> list[str]:
    spelled = {item.name.lower(): item.name for item in items}
    return [spelled[name.lower()] for name in names]


# --------------------------------------------------------------------------------------------
# Processes (IO)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Deadline:
    at: float  # time.monotonic()
    reason: str  # "timeout" | "job-timeout"


@dataclass(frozen=True)
class _ProcessEnd:
    exit_code: int
    stopped: str | None  # None | "timeout" | "job-timeout" | "canceled"
    group: int  # its process group id
    leftovers: bool  # processes of its group still alive (started in the background)


class _LineSplitter:
    """Bytes of one stream → complete text lines (UTF-8, undecodable bytes replaced)."""

    def __init__(self, is_stderr: bool) -> None:
        self.is_stderr = is_stderr
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""

    def feed(self, chunk: bytes) -> list[str]:
        self._pending += self._decoder.decode(chunk)
        *lines, self._pending = self._pending.split("\n")
        if len(self._pending) > _MAX_LINE_CHARS:  # a huge line without newline: flush it anyway
            lines.append(self._pending)
            self._pending = ""
        return [line.removesuffix("\r") for line in lines]

    def finish(self) -> list[str]:
        rest = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        return [rest.removesuffix("\r")] if rest else []


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    on_line: Callable[[str, bool], None],
    deadlines: Sequence[_Deadline],
    cancel: threading.Event | None,
) -> _ProcessEnd:
    """Run ``argv`` in a new process group, streaming its output lines as they come.

    stdout and stderr are read separately (``failOnStderr`` needs to know which is which) and
    passed on in arrival order. When a deadline passes or ``cancel`` is set the whole group gets
    SIGTERM, then SIGKILL after a short grace. Decision: once the main process has exited, output
    is drained for at most a second, so a background process that keeps the pipe open does not
    hold the step (Azure would wait); such leftovers are reported and killed at the end of the job.
    """
    process = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: timeouts kill the children too
    )
    assert process.stdout is not None and process.stderr is not None
    group = process.pid
    splitters = {process.stdout.fileno(): _LineSplitter(False), process.stderr.fileno(): _LineSplitter(True)}
    selector = selectors.DefaultSelector()
    for fd in splitters:
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ)
    stopped: str | None = None
    kill_at: float | None = None
    exited_at: float | None = None
    try:
        while True:
            if selector.get_map():
                for key, _ in selector.select(_POLL_SECONDS):
                    _read_available(key.fd, splitters[key.fd], selector, on_line)
            else:
                time.sleep(_POLL_SECONDS)
            now = time.monotonic()
            running = process.poll() is None
            if stopped is None and running:
                stopped = _due(deadlines, cancel, now)
                if stopped is not None:
                    _signal_group(group, signal.SIGTERM)
                    kill_at = now + _KILL_GRACE_SECONDS
            if kill_at is not None and now >= kill_at:
                _signal_group(group, signal.SIGKILL)
                kill_at = None
            if not running:
                exited_at = now if exited_at is None else exited_at
                if not selector.get_map() or now - exited_at >= _DRAIN_SECONDS:
                    break
    finally:
        for fd, splitter in splitters.items():
            for line in splitter.finish():
                on_line(line, splitter.is_stderr)
            if fd in selector.get_map():
                selector.unregister(fd)
        selector.close()
        process.stdout.close()
        process.stderr.close()
        if stopped is not None or process.poll() is None:
            _signal_group(group, signal.SIGKILL)
        process.wait()
    code = process.returncode
    return _ProcessEnd(code if code >= 0 else 128 - code, stopped, group, stopped is None and _group_alive(group))


def _read_available(
    fd: int, splitter: _LineSplitter, selector: selectors.BaseSelector, on_line: Callable[[str, bool], None]
) -> None:
    try:
        chunk = os.read(fd, 65536)
    except BlockingIOError:
        return
    if chunk:
        lines = splitter.feed(chunk)
    else:
        selector.unregister(fd)
        lines = splitter.finish()
    for line in lines:
        on_line(line, splitter.is_stderr)


def _due(deadlines: Sequence[_Deadline], cancel: threading.Event | None, now: float) -> str | None:
    if cancel is not None and cancel.is_set():
        return "canceled"
    for deadline in deadlines:
        if now >= deadline.at:
            return deadline.reason
    return None


def _host_environment(base_env: Mapping[str, str] | None) -> dict[str, str]:
    if base_env is not None:
        return dict(base_env)
    env = {key: os.environ[key] for key in _HOST_ENVIRONMENT if key in os.environ}
    env.setdefault("PATH", os.defpath)
    return env


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Directories:
    workspace: Path
    sources: Path
    artifacts: Path
    binaries: Path
    temp: Path

    @classmethod
    def create(cls, workspace: Path) -> _Directories:
        workspace = workspace.resolve()
        dirs = cls(workspace, workspace / "s", workspace / "a", workspace / "b", workspace / "_temp")
        for path in (dirs.sources, dirs.artifacts, dirs.binaries, dirs.temp):
            path.mkdir(parents=True, exist_ok=True)
        return dirs


@dataclass
class _JobState:
    stage: Stage
    job: Job
    record: TimelineRecord
    variables: VariableSet
    deadline: _Deadline | None
    timeout_minutes: float | None
    status: str = "succeeded"  # worst step result so far (canceling is in `stop`)
    stop: str | None = None  # "canceled" | "job-timeout": the remaining steps are canceled
    outputs: dict[str, str] = field(default_factory=dict)
    path_prepends: list[str] = field(default_factory=list)
    leftover_groups: list[int] = field(default_factory=list)


@dataclass
class _StepState:
    step: Step
    record: TimelineRecord
    log_id: int
    complete_result: str | None = None
    stderr_lines: list[str] = field(default_factory=list)


class _Run:
    """One execution of a :class:`Plan`; all methods run on the caller's thread."""

    def __init__(self, plan: Plan, options: RunOptions, listener: RunListener, dirs: _Directories) -> None:
        self.plan = plan
        self.options = options
        self.listener = listener
        self.dirs = dirs
        self.base_env = _host_environment(options.base_env)
        self.masker = SecretMasker()
        self.canceled = False
        self.next_log_id = 1
        self.records: dict[str, TimelineRecord] = {}
        self.children: dict[str, list[str]] = {}
        self.stage_results: dict[str, str] = {}
        self.job_results: dict[str, dict[str, str]] = {}
        self.job_outputs: dict[str, dict[str, dict[str, str]]] = {}
        self.queue_time = VariableSet(options.variables)
        for secret in self.queue_time.secrets():
            self.masker.add(secret)
        self.run_variables = self.queue_time.copy()
        for name, value in self._agent_variables().items():
            self.run_variables.set(name, Variable(value))

    # ---- records and logs

    def _record(self, record: TimelineRecord) -> TimelineRecord:
        self.records[record.id] = record
        if record.parent_id is not None:
            self.children.setdefault(record.parent_id, []).append(record.id)
        self._changed(record)
        return record

    def _changed(self, record: TimelineRecord) -> None:
        self.listener.record_changed(dataclasses.replace(record, issues=list(record.issues)))

    def _start(self, record: TimelineRecord, *, with_log: bool) -> None:
        record.state = "inProgress"
        record.start_time = datetime.now(UTC)
        if with_log:
            record.log_id = self.next_log_id
            self.next_log_id += 1
        self._changed(record)

    def _finish(self, record: TimelineRecord, result: str) -> None:
        record.state = "completed"
        record.result = result
        record.finish_time = datetime.now(UTC)
        self._changed(record)

    def _log(self, log_id: int, text: str) -> None:
        for line in text.split("\n"):
            self.listener.log_line(log_id, self.masker.mask(line))

    def _error(self, record: TimelineRecord, log_id: int | None, message: str) -> None:
        """An error line in the log and an issue on the record (Azure shows both)."""
        masked = self.masker.mask(message)
        record.issues.append(f"error: {masked}")
        if log_id is not None:
            self._log(log_id, f"##[error]{masked}")

    def _cancel_requested(self) -> bool:
        if not self.canceled and self.options.cancel is not None and self.options.cancel.is_set():
            self.canceled = True
        return self.canceled

    # ---- variables

    def _agent_variables(self) -> dict[str, str]:
        """What the agent defines for every job (directories, OS); these override queue-time values."""
        dirs = self.dirs
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

    def _define(
        self,
        variables: VariableSet,
        definitions: Sequence[VariableDefinition],
        dependencies: Mapping[str, Any],
        warnings: list[str],
    ) -> None:
        """Add YAML definitions to ``variables``, evaluating ``$[ ]`` values as they are reached.

        Queue-time values win over YAML ones; YAML cannot define system variables at all.
        """
        for definition in definitions:
            if is_system_name(definition.name):
                warnings.append(f"Variable '{definition.name}' is a system variable; its YAML definition is ignored.")
                continue
            if definition.name in self.queue_time:
                continue
            value = definition.value
            match = _RUNTIME_EXPRESSION.fullmatch(value)
            if match is not None:
                context = {"variables": variables.values(), **dependencies}
                value = to_string(evaluate(match.group("expr").strip(), context))
            variables.set(definition.name, Variable(value), readonly=definition.readonly)

    def _stage_dependencies(self, stage: Stage) -> dict[str, Any]:
        """``dependencies`` and ``stageDependencies`` as a stage's expressions see them."""
        dependencies: dict[str, Any] = {}
        stage_dependencies: dict[str, Any] = {}
        for name in stage.depends_on:
            canonical = _canonical(self.plan.stages, [name])[0]
            jobs = self.job_results.get(canonical, {})
            outputs = self.job_outputs.get(canonical, {})
            flattened = {f"{job}.{key}": value for job, values in outputs.items() for key, value in values.items()}
            dependencies[canonical] = {
                "result": RESULT_NAMES.get(self.stage_results.get(canonical, "skipped"), "Skipped"),
                "outputs": flattened,
            }
            stage_dependencies[canonical] = {
                job: {"result": RESULT_NAMES.get(result, "Skipped"), "outputs": dict(outputs.get(job, {}))}
                for job, result in jobs.items()
            }
        return {"dependencies": dependencies, "stageDependencies": stage_dependencies}

    def _job_dependencies(self, stage: Stage, job: Job) -> dict[str, Any]:
        results = self.job_results.get(stage.name, {})
        outputs = self.job_outputs.get(stage.name, {})
        dependencies = {
            name: {
                "result": RESULT_NAMES.get(results.get(name, "skipped"), "Skipped"),
                "outputs": outputs.get(name, {}),
            }
            for name in _canonical(stage.jobs, job.depends_on)
        }
        return {"dependencies": dependencies, "stageDependencies": self._stage_dependencies(stage)["stageDependencies"]}

    # ---- stages

    def execute(self) -> RunOutcome:
        for order, stage in enumerate(self.plan.stages, start=1):
            self._record(TimelineRecord(f"stage:{stage.name}", None, "Stage", stage.name, stage.display_name, order))
            for job_order, job in enumerate(stage.jobs, start=1):
                record_id = f"job:{stage.name}.{job.name}"
                self._record(
                    TimelineRecord(record_id, f"stage:{stage.name}", "Job", job.name, job.display_name, job_order)
                )
        for stage in self.plan.stages:
            self._run_stage(stage)
        # Canceled only if the cancel was seen while running; one after the last step changes nothing.
        # Decision: a run whose stages were all skipped succeeded.
        rolled_up = worst_result(list(self.stage_results.values())) or "succeeded"
        result = "canceled" if self.canceled else rolled_up
        return RunOutcome(result, self._tree())

    def _tree(self) -> list[TimelineRecord]:
        ordered: list[TimelineRecord] = []

        def visit(record_id: str) -> None:
            ordered.append(self.records[record_id])
            for child in self.children.get(record_id, []):
                visit(child)

        for record in list(self.records.values()):
            if record.parent_id is None:
                visit(record.id)
        return ordered

    def _run_stage(self, stage: Stage) -> None:
        record = self.records[f"stage:{stage.name}"]
        self.job_results[stage.name] = {}
        self.job_outputs[stage.name] = {}
        if self._cancel_requested():
            self._end_stage_unstarted(stage, record, "canceled")
            return
        dependencies = self._stage_dependencies(stage)
        warnings: list[str] = []
        try:
            variables = self.run_variables.copy()
            self._define(variables, self.plan.variables, dependencies, warnings)
            self._define(variables, stage.variables, dependencies, warnings)
            variables.set("System.StageName", Variable(stage.name))
            variables.set("System.StageDisplayName", Variable(stage.display_name))
            variables.set("System.StageAttempt", Variable("1"))
            functions = dependency_functions(
                self.stage_results, _graph(self.plan.stages, stage.name), canceled=False, what="stage"
            )
            run = evaluate_condition(stage.condition, {"variables": variables.values(), **dependencies}, functions)
        except PipelineError as err:
            # A stage has no log of its own: the error goes to its issues.
            self._error(record, None, str(err))
            self._end_stage_unstarted(stage, record, "failed")
            return
        if not run:
            self._end_stage_unstarted(stage, record, "skipped")
            return
        self._start(record, with_log=False)
        for job in stage.jobs:
            self._run_job(stage, job, variables, warnings)
        # Decision: a stage whose jobs were all skipped is itself skipped.
        result = worst_result(list(self.job_results[stage.name].values())) or "skipped"
        self.stage_results[stage.name] = result
        self._finish(record, result)

    def _end_stage_unstarted(self, stage: Stage, record: TimelineRecord, result: str) -> None:
        self.stage_results[stage.name] = result
        self._finish(record, result)
        for job in stage.jobs:
            job_result = "canceled" if result == "canceled" else "skipped"
            self.job_results[stage.name][job.name] = job_result
            self._finish(self.records[f"job:{stage.name}.{job.name}"], job_result)

    # ---- jobs

    def _run_job(self, stage: Stage, job: Job, stage_variables: VariableSet, stage_warnings: list[str]) -> None:
        record = self.records[f"job:{stage.name}.{job.name}"]
        if self._cancel_requested():
            self._end_job(stage, job, record, "canceled", {})
            return
        dependencies = self._job_dependencies(stage, job)
        warnings = [*self.plan.warnings, *stage.warnings, *stage_warnings, *job.warnings]
        try:
            variables = stage_variables.copy()
            self._define(variables, job.variables, dependencies, warnings)
            for name, value in (
                ("System.JobName", job.name),
                ("System.PhaseName", job.name),
                ("System.JobDisplayName", job.display_name),
                ("Agent.JobName", job.display_name),
                ("System.JobAttempt", "1"),
                ("System.JobId", str(uuid.uuid4())),
                ("Agent.JobStatus", "Succeeded"),
            ):
                variables.set(name, Variable(value))
            functions = dependency_functions(
                self.job_results[stage.name], _graph(stage.jobs, job.name), canceled=False, what="job"
            )
            run = evaluate_condition(job.condition, {"variables": variables.values(), **dependencies}, functions)
        except PipelineError as err:
            self._start(record, with_log=True)
            assert record.log_id is not None
            self._error(record, record.log_id, str(err))
            self._end_job(stage, job, record, "failed", {})
            return
        if not run:
            self._end_job(stage, job, record, "skipped", {})
            return
        state = self._begin_job(stage, job, record, variables, warnings)
        try:
            for step in job.steps:
                self._run_step(state, step)
        finally:
            # Background processes the steps left behind (Azure's agent kills them at job end too).
            # A group id cannot be reused while any member lives, so this reaches only them.
            for group in state.leftover_groups:
                _signal_group(group, signal.SIGKILL)
        if state.stop is not None:
            result = "canceled"
        else:
            result = worst_result([self.records[c].result for c in self.children.get(record.id, [])]) or "succeeded"
        assert record.log_id is not None
        self._log(record.log_id, f"##[section]Finishing: {record.display_name}")
        self._end_job(stage, job, record, result, state.outputs)

    def _begin_job(
        self, stage: Stage, job: Job, record: TimelineRecord, variables: VariableSet, warnings: list[str]
    ) -> _JobState:
        self._start(record, with_log=True)
        assert record.log_id is not None
        minutes = job.timeout_minutes if job.timeout_minutes is not None else self.options.default_job_timeout_minutes
        deadline = _Deadline(time.monotonic() + minutes * 60, "job-timeout") if minutes > 0 else None
        log = record.log_id
        self._log(log, f"##[section]Starting: {record.display_name}")
        self._log(log, f"Agent name: '{AGENT_NAME}' (kiosk's local emulator: steps run as processes on this machine)")
        self._log(log, f"Job: {job.name} (stage {stage.name})")
        self._log(log, f"Workspace: {self.dirs.workspace}")
        self._log(log, f"Job timeout: {f'{minutes:g} minutes' if minutes > 0 else 'none'}")
        for note in job.notes:
            self._log(log, note)
        for warning in dict.fromkeys(warnings):  # each once, in order
            self._log(log, f"##[warning]{warning}")
            record.issues.append(f"warning: {self.masker.mask(warning)}")
        for order, step in enumerate(job.steps, start=1):
            display = variables.expand(step.display_name) if step.display_name is not None else None
            self._record(
                TimelineRecord(
                    f"step:{stage.name}.{job.name}.{step.index}",
                    record.id,
                    "Task",
                    step.name,
                    self.masker.mask(display or self._default_display(step, variables)),
                    order,
                )
            )
        return _JobState(stage, job, record, variables, deadline, minutes if minutes > 0 else None)

    def _end_job(self, stage: Stage, job: Job, record: TimelineRecord, result: str, outputs: dict[str, str]) -> None:
        self.job_results[stage.name][job.name] = result
        self.job_outputs[stage.name][job.name] = dict(outputs)
        self._finish(record, result)

    def _job_timed_out(self, state: _JobState) -> None:
        state.stop = "job-timeout"
        minutes = f"{state.timeout_minutes:g}" if state.timeout_minutes is not None else "?"
        message = f"The job running on agent {AGENT_NAME} ran longer than the maximum time of {minutes} minutes."
        self._error(state.record, state.record.log_id, message)

    # ---- steps

    @staticmethod
    def _default_display(step: Step, variables: VariableSet) -> str:
        if step.kind != "checkout":
            return step.default_display_name
        repository = variables.get("Build.Repository.Name")
        branch = variables.get("Build.SourceBranchName")
        name = repository.value if repository is not None else "self"
        return f"Checkout {name}@{branch.value} to s" if branch is not None else f"Checkout {name} to s"

    def _run_step(self, state: _JobState, step: Step) -> None:
        record = self.records[f"step:{state.stage.name}.{state.job.name}.{step.index}"]
        if state.stop is None and self._cancel_requested():
            state.stop = "canceled"
        if state.stop is None and state.deadline is not None and time.monotonic() >= state.deadline.at:
            self._job_timed_out(state)
        if state.stop is not None:
            # Decision: after a cancel or job timeout nothing more runs, not even always() steps.
            self._finish(record, "canceled")
            return
        if not step.enabled:
            self._finish(record, "skipped")
            return
        state.variables.set("Agent.JobStatus", Variable(RESULT_NAMES[state.status]))
        try:
            functions = step_functions(state.status, canceled=False)
            run = evaluate_condition(step.condition, {"variables": state.variables.values()}, functions)
        except PipelineError as err:
            self._start(record, with_log=True)
            assert record.log_id is not None
            self._error(record, record.log_id, str(err))
            self._complete_step(state, step, record, "failed")
            return
        if not run:
            self._finish(record, "skipped")
            return
        display = state.variables.expand(step.display_name) if step.display_name is not None else None
        record.display_name = self.masker.mask(display or self._default_display(step, state.variables))
        self._start(record, with_log=True)
        assert record.log_id is not None
        step_state = _StepState(step, record, record.log_id)
        self._log(step_state.log_id, f"##[section]Starting: {record.display_name}")
        attempts = 1 + step.retry_count
        result = "failed"
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                self._log(step_state.log_id, f"##[warning]Retrying the failed task: attempt {attempt} of {attempts}.")
            step_state.complete_result = None
            step_state.stderr_lines = []
            result = self._execute(state, step_state)
            if result != "failed" or state.stop is not None:
                break
        self._log(step_state.log_id, f"##[section]Finishing: {record.display_name}")
        self._complete_step(state, step, record, result)

    def _complete_step(self, state: _JobState, step: Step, record: TimelineRecord, result: str) -> None:
        if result == "failed" and step.continue_on_error:
            result = "succeededWithIssues"  # continueOnError: Azure shows a partial success
        if result in ("succeededWithIssues", "failed"):
            state.status = worst_result([state.status, result]) or state.status
        self._finish(record, result)

    def _execute(self, state: _JobState, step_state: _StepState) -> str:
        step = step_state.step
        if step.kind == "unsupported":
            self._error(step_state.record, step_state.log_id, step.problem or "This step cannot run in the emulator.")
            return "failed"
        if step.kind == "checkout":
            return self._checkout(step_state)
        return self._script(state, step_state)

    def _checkout(self, step_state: _StepState) -> str:
        log = step_state.log_id
        sources = self.options.sources
        if sources is None:
            self._log(log, "No sources were given to the emulator: nothing to check out, s/ stays empty.")
            return "succeeded"
        if not sources.is_dir():
            self._error(step_state.record, log, f"The sources directory '{sources}' does not exist.")
            return "failed"
        self._log(log, f"Copying {sources} to {self.dirs.sources} (without .git)")
        try:
            shutil.copytree(
                sources, self.dirs.sources, symlinks=True, ignore=shutil.ignore_patterns(".git"), dirs_exist_ok=True
            )
        except (OSError, shutil.Error) as err:
            self._error(step_state.record, log, f"Checkout failed: {err}")
            return "failed"
        return "succeeded"

    def _script(self, state: _JobState, step_state: _StepState) -> str:
        """CmdLine@2 and Bash@3: write the script to Agent.TempDirectory and run bash on it."""
        step, log, record = step_state.step, step_state.log_id, step_state.record
        variables = state.variables
        inputs = {key: variables.expand(value) for key, value in step.inputs.items()}
        cmdline = step.kind == "cmdline"
        self._log(log, "=" * 78)
        self._log(log, f"Task         : {'Command line' if cmdline else 'Bash'}")
        self._log(log, f"Version      : {'2' if cmdline else '3'} (emulated by kiosk)")
        self._log(log, "=" * 78)
        working_directory = self._path(inputs.get("workingDirectory") or str(self.dirs.sources))
        if not working_directory.is_dir():
            self._error(record, log, f"Not found workingDirectory: {working_directory}")
            return "failed"
        script_file: Path | None = None
        if not cmdline and inputs.get("targetType", "filePath").lower() == "filepath":
            target = inputs.get("filePath", "").strip()
            if not target or not self._path(target).is_file():
                self._error(record, log, f"Invalid file path '{target}'. A path to a .sh file is required.")
                return "failed"
            try:
                arguments = shlex.split(inputs.get("arguments", ""))
            except ValueError as err:
                self._error(record, log, f"Invalid arguments: {err}")
                return "failed"
            argv = [BASH, "--noprofile", "--norc", str(self._path(target)), *arguments]
        else:
            script = inputs.get("script", "")
            # Decision: the whole script is shown (masked), not just one-liners as Azure does.
            self._log(log, "Generating script.")
            self._log(log, "Script contents:")
            self._log(log, script)
            script_file = self.dirs.temp / f"{uuid.uuid4()}.sh"
            script_file.write_text(script, encoding="utf-8")
            argv = [BASH, "--noprofile", "--norc", str(script_file)]
        self._log(log, "========================== Starting Command Output ===========================")
        self._log(log, shlex.join(argv))
        fail_on_stderr = parse_bool(inputs.get("failOnStderr"))
        env = self._environment(state, {key: variables.expand(value) for key, value in step.env.items()})
        deadlines = [state.deadline] if state.deadline is not None else []
        if step.timeout_minutes:
            deadlines.append(_Deadline(time.monotonic() + step.timeout_minutes * 60, "timeout"))

        def on_line(line: str, is_stderr: bool) -> None:
            command = parse_logging_command(line)
            problems = self._apply(command, state, step_state) if command is not None else []
            self._log(log, line)
            for problem in problems:
                self._log(log, f"##[warning]{problem}")
            if is_stderr and fail_on_stderr:
                step_state.stderr_lines.append(line)

        try:
            end = _run_process(
                argv, cwd=working_directory, env=env, on_line=on_line, deadlines=deadlines, cancel=self.options.cancel
            )
        except OSError as err:
            self._error(record, log, f"Could not start {BASH}: {err}")
            return "failed"
        finally:
            if script_file is not None:
                script_file.unlink(missing_ok=True)
        if end.leftovers:
            state.leftover_groups.append(end.group)
        return self._script_result(state, step_state, end)

    def _script_result(self, state: _JobState, step_state: _StepState, end: _ProcessEnd) -> str:
        log, record = step_state.log_id, step_state.record
        if end.stopped == "canceled":
            self.canceled = True
            state.stop = "canceled"
            self._error(record, log, "The operation was canceled.")
            return "canceled"
        if end.stopped == "job-timeout":
            self._job_timed_out(state)
            self._error(record, log, "The operation was canceled.")
            return "canceled"
        if end.stopped == "timeout":
            self._error(record, log, "The task has timed out.")
            return "failed"
        result = "succeeded"
        if end.exit_code != 0:
            self._error(record, log, f"Bash exited with code '{end.exit_code}'.")
            result = "failed"
        if step_state.stderr_lines:
            self._error(record, log, "Bash wrote one or more lines to the standard error stream.")
            for line in step_state.stderr_lines[:_MAX_STDERR_ERRORS]:
                self._error(record, log, line)
            result = "failed"
        if step_state.complete_result is not None:
            result = worst_result([result, step_state.complete_result]) or result
        return result

    def _path(self, text: str) -> Path:
        """A task path input: absolute, or relative to System.DefaultWorkingDirectory (s/)."""
        path = Path(text)
        return path if path.is_absolute() else self.dirs.sources / path

    def _environment(self, state: _JobState, step_env: Mapping[str, str]) -> dict[str, str]:
        """Host basics, then non-secret variables, then the step's ``env:`` (which may hold secrets)."""
        env = dict(self.base_env)
        env.update(state.variables.environment())
        env["TF_BUILD"] = "True"  # what tools check to know they run in Azure Pipelines
        if state.path_prepends:
            env["PATH"] = os.pathsep.join([*state.path_prepends, env.get("PATH", "")])
        env.update(step_env)
        return env

    # ---- logging commands

    def _apply(self, command: LoggingCommand, state: _JobState, step_state: _StepState) -> list[str]:
        """Carry out one ``##vso[...]`` command; returns warnings to log after the line."""
        properties = command.properties
        if command.name == "task.setvariable":
            return self._set_variable(command, state, step_state)
        if command.name == "task.setsecret":
            self.masker.add(command.data)
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
            step_state.record.issues.append(f"{kind}: {self.masker.mask(command.data)}")
        elif command.name == "task.prependpath":
            if command.data.strip():
                state.path_prepends.insert(0, command.data.strip())
        elif command.name != "task.setprogress":
            return [f"The logging command '{command.name}' is not supported by the emulator; ignored."]
        return []

    def _set_variable(self, command: LoggingCommand, state: _JobState, step_state: _StepState) -> list[str]:
        """``task.setvariable``: visible to later steps of this job; ``isOutput`` also to dependents.

        An output variable is named ``<step>.<name>`` in this job and appears in
        ``dependencies.<job>.outputs['<step>.<name>']`` of the jobs (and stages) that follow.
        """
        properties = command.properties
        name = properties.get("variable", "").strip()
        secret = parse_bool(properties.get("issecret"))
        if secret:
            self.masker.add(command.data)  # before the line itself is logged
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


def run_pipeline(pipeline: Mapping[str, Any], options: RunOptions, listener: RunListener) -> RunOutcome:
    """Run an expanded pipeline on this machine, reporting records and log lines to ``listener``.

    Raises :class:`PipelineError` before anything runs when the pipeline cannot run at all (see
    :func:`normalize`); every later problem is a failed record with the reason in its log.
    """
    if options.default_job_timeout_minutes < 0:
        raise ValueError("default_job_timeout_minutes must be >= 0 (0: no limit)")
    plan = normalize(pipeline)
    dirs = _Directories.create(options.workspace)
    return _Run(plan, options, listener, dirs).execute()
