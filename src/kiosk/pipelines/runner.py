"""The local runner: executes an expanded Azure Pipelines document on this machine.

The emulator server and ``kiosk pipeline run`` hand it the output of
:func:`kiosk.pipelines.expand.expand_pipeline` (plain data, ``$(var)`` macros and ``$[ ]`` left in)
and get back Azure-shaped timeline records and streamed, masked log lines. The point is to show a
pipeline author what Azure would do with their pipeline, so each behaviour follows Azure's agent
and tasks; where Azure is silent or cannot be emulated, the choice is marked "Decision:".

Layout: :func:`~kiosk.pipelines.plan.normalize` (pure) turns the pipeline into a plan of stages →
jobs → steps and rejects what cannot run before anything starts. :func:`run_pipeline` then runs
it: stages one at a time in dependency order, the jobs of a stage one at a time in dependency
order (this module: variables, ``dependencies`` and conditions of stages and jobs), each step as a
``bash`` process in its own process group (:mod:`~kiosk.pipelines.step_execution`,
:mod:`~kiosk.pipelines.processes`). Records and masked logs go through
:mod:`~kiosk.pipelines.timeline`; the agent's directories, predefined variables and the
environment scripts get are in :mod:`~kiosk.pipelines.agent`; the pure rules live next door:
conditions in :mod:`~kiosk.pipelines.conditions`, variables, macros and masking in
:mod:`~kiosk.pipelines.variables`, ``##vso[...]`` parsing in
:mod:`~kiosk.pipelines.logging_commands` and its effects in :mod:`~kiosk.pipelines.command_effects`.

Security: scripts get only a few host environment variables (``PATH``, ``HOME``, ``LANG``,
``LC_ALL``, ``TMPDIR``) plus the pipeline's own, never kiosk's whole environment, and secret values
never reach a log line unmasked.
"""

from __future__ import annotations

import re
import signal
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from kiosk.pipelines.agent import AGENT_NAME, Directories, agent_variables, host_environment
from kiosk.pipelines.conditions import RESULT_NAMES, dependency_functions, evaluate_condition
from kiosk.pipelines.errors import PipelineError
from kiosk.pipelines.expressions import evaluate, to_string
from kiosk.pipelines.ordering import canonical_names, dependency_closure
from kiosk.pipelines.plan import Job, Plan, Stage, normalize
from kiosk.pipelines.processes import Deadline, signal_group
from kiosk.pipelines.run_state import Cancellation, JobState
from kiosk.pipelines.step_execution import StepRunner, default_display_name
from kiosk.pipelines.timeline import (
    RunListener,
    RunOutcome,
    Timeline,
    TimelineRecord,
    job_record_id,
    stage_record_id,
    step_record_id,
    worst_result,
)
from kiosk.pipelines.variables import SecretMasker, Variable, VariableDefinition, VariableSet, is_system_name

__all__ = ["RunOptions", "run_pipeline"]

_RUNTIME_EXPRESSION: Final = re.compile(r"\s*\$\[(?P<expr>.*)\]\s*", re.DOTALL)


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


class _Run:
    """One execution of a :class:`~kiosk.pipelines.plan.Plan`; all methods run on the caller's thread."""

    def __init__(self, plan: Plan, options: RunOptions, listener: RunListener, dirs: Directories) -> None:
        self.plan = plan
        self.options = options
        self.dirs = dirs
        self.timeline = Timeline(listener, SecretMasker())
        self.cancellation = Cancellation(options.cancel)
        self.steps = StepRunner(
            timeline=self.timeline,
            dirs=dirs,
            base_env=host_environment(options.base_env),
            sources=options.sources,
            cancellation=self.cancellation,
        )
        self.stage_results: dict[str, str] = {}
        self.job_results: dict[str, dict[str, str]] = {}
        self.job_outputs: dict[str, dict[str, dict[str, str]]] = {}
        self.queue_time = VariableSet(options.variables)
        for secret in self.queue_time.secrets():
            self.timeline.masker.add(secret)
        self.run_variables = self.queue_time.copy()
        for name, value in agent_variables(dirs).items():
            self.run_variables.set(name, Variable(value))

    # ---- variables

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
            canonical = canonical_names(self.plan.stages, [name])[0]
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
            for name in canonical_names(stage.jobs, job.depends_on)
        }
        return {"dependencies": dependencies, "stageDependencies": self._stage_dependencies(stage)["stageDependencies"]}

    # ---- stages

    def execute(self) -> RunOutcome:
        """Report every stage and job record as pending, then run the stages in order."""
        for order, stage in enumerate(self.plan.stages, start=1):
            stage_id = stage_record_id(stage.name)
            self.timeline.add(TimelineRecord(stage_id, None, "Stage", stage.name, stage.display_name, order))
            for job_order, job in enumerate(stage.jobs, start=1):
                record_id = job_record_id(stage.name, job.name)
                self.timeline.add(TimelineRecord(record_id, stage_id, "Job", job.name, job.display_name, job_order))
        for stage in self.plan.stages:
            self._run_stage(stage)
        # Canceled only if the cancel was seen while running; one after the last step changes nothing.
        # Decision: a run whose stages were all skipped succeeded.
        rolled_up = worst_result(list(self.stage_results.values())) or "succeeded"
        result = "canceled" if self.cancellation.canceled else rolled_up
        return RunOutcome(result, self.timeline.tree())

    def _run_stage(self, stage: Stage) -> None:
        record = self.timeline.records[stage_record_id(stage.name)]
        self.job_results[stage.name] = {}
        self.job_outputs[stage.name] = {}
        if self.cancellation.requested():
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
                self.stage_results, dependency_closure(self.plan.stages, stage.name), canceled=False, what="stage"
            )
            run = evaluate_condition(stage.condition, {"variables": variables.values(), **dependencies}, functions)
        except PipelineError as err:
            # A stage has no log of its own: the error goes to its issues.
            self.timeline.error(record, None, str(err))
            self._end_stage_unstarted(stage, record, "failed")
            return
        if not run:
            self._end_stage_unstarted(stage, record, "skipped")
            return
        self.timeline.start(record, with_log=False)
        for job in stage.jobs:
            self._run_job(stage, job, variables, warnings)
        # Decision: a stage whose jobs were all skipped is itself skipped.
        result = worst_result(list(self.job_results[stage.name].values())) or "skipped"
        self.stage_results[stage.name] = result
        self.timeline.finish(record, result)

    def _end_stage_unstarted(self, stage: Stage, record: TimelineRecord, result: str) -> None:
        self.stage_results[stage.name] = result
        self.timeline.finish(record, result)
        for job in stage.jobs:
            job_result = "canceled" if result == "canceled" else "skipped"
            self.job_results[stage.name][job.name] = job_result
            self.timeline.finish(self.timeline.records[job_record_id(stage.name, job.name)], job_result)

    # ---- jobs

    def _run_job(self, stage: Stage, job: Job, stage_variables: VariableSet, stage_warnings: list[str]) -> None:
        record = self.timeline.records[job_record_id(stage.name, job.name)]
        if self.cancellation.requested():
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
                self.job_results[stage.name], dependency_closure(stage.jobs, job.name), canceled=False, what="job"
            )
            run = evaluate_condition(job.condition, {"variables": variables.values(), **dependencies}, functions)
        except PipelineError as err:
            self.timeline.start(record, with_log=True)
            assert record.log_id is not None
            self.timeline.error(record, record.log_id, str(err))
            self._end_job(stage, job, record, "failed", {})
            return
        if not run:
            self._end_job(stage, job, record, "skipped", {})
            return
        state = self._begin_job(stage, job, record, variables, warnings)
        try:
            for step in job.steps:
                self.steps.run_step(state, step)
        finally:
            # Background processes the steps left behind (Azure's agent kills them at job end too).
            # A group id cannot be reused while any member lives, so this reaches only them.
            for group in state.leftover_groups:
                signal_group(group, signal.SIGKILL)
        if state.stop is not None:
            result = "canceled"
        else:
            result = worst_result(self.timeline.child_results(record.id)) or "succeeded"
        assert record.log_id is not None
        self.timeline.log(record.log_id, f"##[section]Finishing: {record.display_name}")
        self._end_job(stage, job, record, result, state.outputs)

    def _begin_job(
        self, stage: Stage, job: Job, record: TimelineRecord, variables: VariableSet, warnings: list[str]
    ) -> JobState:
        self.timeline.start(record, with_log=True)
        assert record.log_id is not None
        minutes = job.timeout_minutes if job.timeout_minutes is not None else self.options.default_job_timeout_minutes
        deadline = Deadline(time.monotonic() + minutes * 60, "job-timeout") if minutes > 0 else None
        log = record.log_id
        self.timeline.log(log, f"##[section]Starting: {record.display_name}")
        self.timeline.log(
            log, f"Agent name: '{AGENT_NAME}' (kiosk's local emulator: steps run as processes on this machine)"
        )
        self.timeline.log(log, f"Job: {job.name} (stage {stage.name})")
        self.timeline.log(log, f"Workspace: {self.dirs.workspace}")
        self.timeline.log(log, f"Job timeout: {f'{minutes:g} minutes' if minutes > 0 else 'none'}")
        for note in job.notes:
            self.timeline.log(log, note)
        for warning in dict.fromkeys(warnings):  # each once, in order
            self.timeline.log(log, f"##[warning]{warning}")
            record.issues.append(f"warning: {self.timeline.masker.mask(warning)}")
        for order, step in enumerate(job.steps, start=1):
            display = variables.expand(step.display_name) if step.display_name is not None else None
            self.timeline.add(
                TimelineRecord(
                    step_record_id(stage.name, job.name, step.index),
                    record.id,
                    "Task",
                    step.name,
                    self.timeline.masker.mask(display or default_display_name(step, variables)),
                    order,
                )
            )
        return JobState(stage, job, record, variables, deadline, minutes if minutes > 0 else None)

    def _end_job(self, stage: Stage, job: Job, record: TimelineRecord, result: str, outputs: dict[str, str]) -> None:
        self.job_results[stage.name][job.name] = result
        self.job_outputs[stage.name][job.name] = dict(outputs)
        self.timeline.finish(record, result)


def run_pipeline(pipeline: Mapping[str, Any], options: RunOptions, listener: RunListener) -> RunOutcome:
    """Run an expanded pipeline on this machine, reporting records and log lines to ``listener``.

    Raises :class:`PipelineError` before anything runs when the pipeline cannot run at all (see
    :func:`~kiosk.pipelines.plan.normalize`); every later problem is a failed record with the reason
    in its log.
    """
    if options.default_job_timeout_minutes < 0:
        raise ValueError("default_job_timeout_minutes must be >= 0 (0: no limit)")
    plan = normalize(pipeline)
    dirs = Directories.create(options.workspace)
    return _Run(plan, options, listener, dirs).execute()
