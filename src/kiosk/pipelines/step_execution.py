"""Step execution: one step of a running job, from its condition to its result.

A step runs unless the job was canceled or timed out (then it is canceled, even an ``always()``
step), it is disabled or its condition is false (skipped). ``script:``/CmdLine@2 and
``bash:``/Bash@3 steps run ``bash`` on a script file in their own process group
(:mod:`~kiosk.pipelines.processes`); ``checkout: self`` copies the run's sources into ``s/``;
unsupported steps fail with the reason. ``retryCountOnTaskFailure`` reruns a failed step,
``timeoutInMinutes`` fails it, ``continueOnError`` turns its failure into a partial success, and
the ``##vso[...]`` lines it prints take effect as they arrive
(:mod:`~kiosk.pipelines.command_effects`). Where Azure is silent, the choice is marked "Decision:".
"""

from __future__ import annotations

import shlex
import shutil
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from kiosk.pipelines.agent import AGENT_NAME, Directories, script_environment
from kiosk.pipelines.command_effects import apply_logging_command
from kiosk.pipelines.conditions import RESULT_NAMES, evaluate_condition, step_functions
from kiosk.pipelines.errors import PipelineError
from kiosk.pipelines.logging_commands import parse_bool, parse_logging_command
from kiosk.pipelines.plan import Step
from kiosk.pipelines.processes import Deadline, ProcessEnd, run_process
from kiosk.pipelines.run_state import Cancellation, JobState, StepState
from kiosk.pipelines.timeline import Timeline, TimelineRecord, step_record_id, worst_result
from kiosk.pipelines.variables import Variable, VariableSet

__all__ = ["BASH", "StepRunner", "default_display_name"]

BASH: Final = "/bin/bash"
"""Both CmdLine@2 (``script:``) and Bash@3 (``bash:``) run ``bash --noprofile --norc <file>``.

Azure's tasks pass no ``-e``/``-o pipefail`` (that is GitHub Actions' default): a multi-line
script on Azure fails only if its last command does, and the emulator must not be stricter.
"""

_MAX_STDERR_ERRORS: Final = 10  # CmdLine@2 repeats at most 10 stderr writes as errors


def default_display_name(step: Step, variables: VariableSet) -> str:
    """A step's display name when none is written (a checkout names its repository and branch)."""
    if step.kind != "checkout":
        return step.default_display_name
    repository = variables.get("Build.Repository.Name")
    branch = variables.get("Build.SourceBranchName")
    name = repository.value if repository is not None else "self"
    return f"Checkout {name}@{branch.value} to s" if branch is not None else f"Checkout {name} to s"


def _job_timed_out(timeline: Timeline, state: JobState) -> None:
    """Stop the job: its remaining steps are canceled, and its log says why."""
    state.stop = "job-timeout"
    minutes = f"{state.timeout_minutes:g}" if state.timeout_minutes is not None else "?"
    message = f"The job running on agent {AGENT_NAME} ran longer than the maximum time of {minutes} minutes."
    timeline.error(state.record, state.record.log_id, message)


@dataclass
class StepRunner:
    """Runs the steps of the jobs of one run; all methods run on the caller's thread.

    ``base_env`` is the host part of every script's environment; ``sources`` is what
    ``checkout: self`` copies (None: nothing to check out).
    """

    timeline: Timeline
    dirs: Directories
    base_env: Mapping[str, str]
    sources: Path | None
    cancellation: Cancellation

    def run_step(self, state: JobState, step: Step) -> None:
        """Run (or skip, or cancel) one step of ``state``'s job and finish its record."""
        record = self.timeline.records[step_record_id(state.stage.name, state.job.name, step.index)]
        if state.stop is None and self.cancellation.requested():
            state.stop = "canceled"
        if state.stop is None and state.deadline is not None and time.monotonic() >= state.deadline.at:
            _job_timed_out(self.timeline, state)
        if state.stop is not None:
            # Decision: after a cancel or job timeout nothing more runs, not even always() steps.
            self.timeline.finish(record, "canceled")
            return
        if not step.enabled:
            self.timeline.finish(record, "skipped")
            return
        state.variables.set("Agent.JobStatus", Variable(RESULT_NAMES[state.status]))
        try:
            functions = step_functions(state.status, canceled=False)
            run = evaluate_condition(step.condition, {"variables": state.variables.values()}, functions)
        except PipelineError as err:
            self.timeline.start(record, with_log=True)
            assert record.log_id is not None
            self.timeline.error(record, record.log_id, str(err))
            self._complete_step(state, step, record, "failed")
            return
        if not run:
            self.timeline.finish(record, "skipped")
            return
        display = state.variables.expand(step.display_name) if step.display_name is not None else None
        record.display_name = self.timeline.masker.mask(display or default_display_name(step, state.variables))
        self.timeline.start(record, with_log=True)
        assert record.log_id is not None
        step_state = StepState(step, record, record.log_id)
        self.timeline.log(step_state.log_id, f"##[section]Starting: {record.display_name}")
        attempts = 1 + step.retry_count
        result = "failed"
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                self.timeline.log(
                    step_state.log_id, f"##[warning]Retrying the failed task: attempt {attempt} of {attempts}."
                )
            step_state.complete_result = None
            step_state.stderr_lines = []
            result = self._execute(state, step_state)
            if result != "failed" or state.stop is not None:
                break
        self.timeline.log(step_state.log_id, f"##[section]Finishing: {record.display_name}")
        self._complete_step(state, step, record, result)

    def _complete_step(self, state: JobState, step: Step, record: TimelineRecord, result: str) -> None:
        if result == "failed" and step.continue_on_error:
            result = "succeededWithIssues"  # continueOnError: Azure shows a partial success
        if result in ("succeededWithIssues", "failed"):
            state.status = worst_result([state.status, result]) or state.status
        self.timeline.finish(record, result)

    def _execute(self, state: JobState, step_state: StepState) -> str:
        step = step_state.step
        if step.kind == "unsupported":
            self.timeline.error(
                step_state.record, step_state.log_id, step.problem or "This step cannot run in the emulator."
            )
            return "failed"
        if step.kind == "checkout":
            return self._checkout(step_state)
        return self._script(state, step_state)

    def _checkout(self, step_state: StepState) -> str:
        log = step_state.log_id
        sources = self.sources
        if sources is None:
            self.timeline.log(log, "No sources were given to the emulator: nothing to check out, s/ stays empty.")
            return "succeeded"
        if not sources.is_dir():
            self.timeline.error(step_state.record, log, f"The sources directory '{sources}' does not exist.")
            return "failed"
        self.timeline.log(log, f"Copying {sources} to {self.dirs.sources} (without .git)")
        try:
            shutil.copytree(
                sources, self.dirs.sources, symlinks=True, ignore=shutil.ignore_patterns(".git"), dirs_exist_ok=True
            )
        except (OSError, shutil.Error) as err:
            self.timeline.error(step_state.record, log, f"Checkout failed: {err}")
            return "failed"
        return "succeeded"

    def _script(self, state: JobState, step_state: StepState) -> str:
        """CmdLine@2 and Bash@3: write the script to Agent.TempDirectory and run bash on it."""
        step, log, record = step_state.step, step_state.log_id, step_state.record
        variables = state.variables
        inputs = {key: variables.expand(value) for key, value in step.inputs.items()}
        cmdline = step.kind == "cmdline"
        self.timeline.log(log, "=" * 78)
        self.timeline.log(log, f"Task         : {'Command line' if cmdline else 'Bash'}")
        self.timeline.log(log, f"Version      : {'2' if cmdline else '3'} (emulated by kiosk)")
        self.timeline.log(log, "=" * 78)
        working_directory = self.dirs.input_path(inputs.get("workingDirectory") or str(self.dirs.sources))
        if not working_directory.is_dir():
            self.timeline.error(record, log, f"Not found workingDirectory: {working_directory}")
            return "failed"
        script_file: Path | None = None
        if not cmdline and inputs.get("targetType", "filePath").lower() == "filepath":
            target = inputs.get("filePath", "").strip()
            if not target or not self.dirs.input_path(target).is_file():
                self.timeline.error(record, log, f"Invalid file path '{target}'. A path to a .sh file is required.")
                return "failed"
            try:
                arguments = shlex.split(inputs.get("arguments", ""))
            except ValueError as err:
                self.timeline.error(record, log, f"Invalid arguments: {err}")
                return "failed"
            argv = [BASH, "--noprofile", "--norc", str(self.dirs.input_path(target)), *arguments]
        else:
            script = inputs.get("script", "")
            # Decision: the whole script is shown (masked), not just one-liners as Azure does.
            self.timeline.log(log, "Generating script.")
            self.timeline.log(log, "Script contents:")
            self.timeline.log(log, script)
            script_file = self.dirs.temp / f"{uuid.uuid4()}.sh"
            script_file.write_text(script, encoding="utf-8")
            argv = [BASH, "--noprofile", "--norc", str(script_file)]
        self.timeline.log(log, "========================== Starting Command Output ===========================")
        self.timeline.log(log, shlex.join(argv))
        fail_on_stderr = parse_bool(inputs.get("failOnStderr"))
        step_env = {key: variables.expand(value) for key, value in step.env.items()}
        env = script_environment(self.base_env, variables, state.path_prepends, step_env)
        deadlines = [state.deadline] if state.deadline is not None else []
        if step.timeout_minutes:
            deadlines.append(Deadline(time.monotonic() + step.timeout_minutes * 60, "timeout"))

        def on_line(line: str, is_stderr: bool) -> None:
            command = parse_logging_command(line)
            problems = (
                apply_logging_command(command, state, step_state, self.timeline.masker) if command is not None else []
            )
            self.timeline.log(log, line)
            for problem in problems:
                self.timeline.log(log, f"##[warning]{problem}")
            if is_stderr and fail_on_stderr:
                step_state.stderr_lines.append(line)

        try:
            end = run_process(
                argv,
                cwd=working_directory,
                env=env,
                on_line=on_line,
                deadlines=deadlines,
                cancel=self.cancellation.event,
            )
        except OSError as err:
            self.timeline.error(record, log, f"Could not start {BASH}: {err}")
            return "failed"
        finally:
            if script_file is not None:
                script_file.unlink(missing_ok=True)
        if end.leftovers:
            state.leftover_groups.append(end.group)
        return self._script_result(state, step_state, end)

    def _script_result(self, state: JobState, step_state: StepState, end: ProcessEnd) -> str:
        log, record = step_state.log_id, step_state.record
        if end.stopped == "canceled":
            self.cancellation.seen()
            state.stop = "canceled"
            self.timeline.error(record, log, "The operation was canceled.")
            return "canceled"
        if end.stopped == "job-timeout":
            _job_timed_out(self.timeline, state)
            self.timeline.error(record, log, "The operation was canceled.")
            return "canceled"
        if end.stopped == "timeout":
            self.timeline.error(record, log, "The task has timed out.")
            return "failed"
        result = "succeeded"
        if end.exit_code != 0:
            self.timeline.error(record, log, f"Bash exited with code '{end.exit_code}'.")
            result = "failed"
        if step_state.stderr_lines:
            self.timeline.error(record, log, "Bash wrote one or more lines to the standard error stream.")
            for line in step_state.stderr_lines[:_MAX_STDERR_ERRORS]:
                self.timeline.error(record, log, line)
            result = "failed"
        if step_state.complete_result is not None:
            result = worst_result([result, step_state.complete_result]) or result
        return result
