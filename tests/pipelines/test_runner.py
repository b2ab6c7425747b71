"""The local runner, with real bash processes in ``tmp_path``: structure and ordering, conditions,
variables and environments, secrets and masking, logging commands, timeouts, cancelation,
checkout, unsupported steps, and the timeline records it reports."""

from __future__ import annotations

import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from kiosk.pipelines.errors import PipelineError
from kiosk.pipelines.plan import IMPLICIT_JOB, IMPLICIT_STAGE, normalize
from kiosk.pipelines.runner import RunOptions, run_pipeline
from kiosk.pipelines.timeline import CollectingListener, NullListener, RunOutcome, TimelineRecord, worst_result
from kiosk.pipelines.variables import Variable

JOB = f"job:{IMPLICIT_STAGE}.{IMPLICIT_JOB}"


def load(text: str) -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe").load(textwrap.dedent(text))
    return data


def step_id(index: int, stage: str = IMPLICIT_STAGE, job: str = IMPLICIT_JOB) -> str:
    return f"step:{stage}.{job}.{index}"


class Run:
    """One finished run: its outcome and everything the listener heard."""

    def __init__(self, outcome: RunOutcome, listener: CollectingListener) -> None:
        self.outcome = outcome
        self.listener = listener

    @property
    def result(self) -> str:
        return self.outcome.result

    def record(self, record_id: str) -> TimelineRecord:
        return next(r for r in self.outcome.records if r.id == record_id)

    def log(self, record_id: str) -> list[str]:
        return self.listener.lines(record_id)

    def output(self, record_id: str) -> list[str]:
        """The script's own lines: after the command line, before the closing section."""
        lines = self.log(record_id)
        start = lines.index("========================== Starting Command Output ===========================") + 2
        end = max(i for i, line in enumerate(lines) if line.startswith("##[section]Finishing:"))
        return [line for line in lines[start:end] if not line.startswith("##[")]


def run(text: str, tmp_path: Path, **options: Any) -> Run:
    listener = CollectingListener()
    outcome = run_pipeline(load(text), RunOptions(workspace=tmp_path / "ws", **options), listener)
    return Run(outcome, listener)


# ---------------------------------------------------------------- the seed and the basics


def test_hello_world(tmp_path: Path) -> None:
    r = run(
        """
        steps:
        - script: echo Hello, world!
        """,
        tmp_path,
    )
    assert r.result == "succeeded"
    assert r.output(step_id(2)) == ["Hello, world!"]
    log = r.log(step_id(2))
    assert log[0] == "##[section]Starting: CmdLine"
    assert log[-1] == "##[section]Finishing: CmdLine"
    assert "echo Hello, world!" in log  # the script is shown in the header
    for sub in ("s", "a", "b", "_temp"):
        assert (tmp_path / "ws" / sub).is_dir()


def test_records_tree_order_parents_and_log_ids(tmp_path: Path) -> None:
    r = run(
        """
        stages:
        - stage: Build
          jobs:
          - job: Compile
            steps:
            - checkout: none
            - script: echo one
              name: first
            - bash: echo two
              displayName: Second $(Build.BuildId)
        - stage: Test
          jobs:
          - job: Unit
            steps:
            - script: echo three
        """,
        tmp_path,
        variables={"Build.BuildId": Variable("7")},
    )
    rows = [(x.id, x.parent_id, x.type, x.name, x.order, x.result, x.log_id) for x in r.outcome.records]
    assert rows == [
        ("stage:Build", None, "Stage", "Build", 1, "succeeded", None),
        ("job:Build.Compile", "stage:Build", "Job", "Compile", 1, "succeeded", 1),
        ("step:Build.Compile.1", "job:Build.Compile", "Task", "first", 1, "succeeded", 2),
        ("step:Build.Compile.2", "job:Build.Compile", "Task", "Bash", 2, "succeeded", 3),
        ("stage:Test", None, "Stage", "Test", 2, "succeeded", None),
        ("job:Test.Unit", "stage:Test", "Job", "Unit", 1, "succeeded", 4),
        ("step:Test.Unit.1", "job:Test.Unit", "Task", "Checkout", 1, "succeeded", 5),
        ("step:Test.Unit.2", "job:Test.Unit", "Task", "CmdLine", 2, "succeeded", 6),
    ]
    assert r.record("step:Build.Compile.2").display_name == "Second 7"
    assert all(x.state == "completed" and x.start_time and x.finish_time for x in r.outcome.records)
    assert r.log("job:Build.Compile")[0] == "##[section]Starting: Compile"


def test_listener_sees_pending_then_in_progress_then_completed(tmp_path: Path) -> None:
    seen: list[tuple[str, str, str | None]] = []

    class Recorder(NullListener):
        def record_changed(self, record: TimelineRecord) -> None:
            seen.append((record.id, record.state, record.result))

    run_pipeline(load("steps: [{checkout: none}, {script: 'true'}]"), RunOptions(workspace=tmp_path), Recorder())
    step = [entry for entry in seen if entry[0] == step_id(1)]
    assert step == [
        (step_id(1), "pending", None),
        (step_id(1), "inProgress", None),
        (step_id(1), "completed", "succeeded"),
    ]
    assert seen[0] == (f"stage:{IMPLICIT_STAGE}", "pending", None)


# ---------------------------------------------------------------- structure and dependencies


def test_stage_depends_on_decides_the_order(tmp_path: Path) -> None:
    r = run(
        """
        stages:
        - stage: Deploy
          dependsOn: Build
          jobs: [{job: J, steps: [{checkout: none}, {script: echo deploy}]}]
        - stage: Build
          dependsOn: []
          jobs: [{job: J, steps: [{checkout: none}, {script: echo build}]}]
        """,
        tmp_path,
    )
    assert [x.id for x in r.outcome.records if x.type == "Stage"] == ["stage:Build", "stage:Deploy"]
    assert r.record("job:Build.J").log_id == 1
    assert r.record("job:Deploy.J").log_id == 3


def test_depends_on_cycle_is_rejected_before_anything_runs(tmp_path: Path) -> None:
    listener = CollectingListener()
    pipeline = load(
        """
        stages:
        - stage: A
          dependsOn: B
          jobs: [{job: J, steps: [{script: echo a}]}]
        - stage: B
          dependsOn: [A]
          jobs: [{job: J, steps: [{script: echo b}]}]
        """
    )
    with pytest.raises(PipelineError, match="cycle: A, B"):
        run_pipeline(pipeline, RunOptions(workspace=tmp_path / "ws"), listener)
    assert listener.records == {} and listener.logs == {}
    with pytest.raises(PipelineError, match="unknown stage 'Nope'"):
        normalize({"stages": [{"stage": "A", "dependsOn": "Nope", "jobs": [{"job": "J", "steps": [{"script": "x"}]}]}]})


def test_jobs_run_in_dependency_order_and_see_output_variables(tmp_path: Path) -> None:
    r = run(
        """
        jobs:
        - job: Consumer
          dependsOn: Producer
          condition: eq(dependencies.Producer.result, 'Succeeded')
          variables:
            fromProducer: $[ dependencies.Producer.outputs['setter.color'] ]
          steps:
          - checkout: none
          - script: echo "color=$(fromProducer)"
        - job: Producer
          steps:
          - checkout: none
          - bash: |
              echo "##vso[task.setvariable variable=color;isOutput=true]blue"
            name: setter
          - script: echo "same job=$(setter.color) env=$SETTER_COLOR"
        """,
        tmp_path,
    )
    assert r.result == "succeeded"
    assert r.output(step_id(2, job="Producer")) == ["same job=blue env=blue"]
    assert r.output(step_id(1, job="Consumer")) == ["color=blue"]


def test_deployment_run_once_runs_its_hooks_without_checkout(tmp_path: Path) -> None:
    r = run(
        """
        jobs:
        - deployment: Ship
          environment: production
          pool: {vmImage: ubuntu-latest}
          strategy:
            runOnce:
              preDeploy: {steps: [{script: echo pre}]}
              deploy: {steps: [{script: echo deploy}]}
        """,
        tmp_path,
    )
    assert r.result == "succeeded"
    assert [x.name for x in r.outcome.records if x.type == "Task"] == ["CmdLine", "CmdLine2"]
    assert r.output(step_id(2, job="Ship")) == ["deploy"]
    job_log = r.log(f"job:{IMPLICIT_STAGE}.Ship")
    assert "Pool (vmImage: 'ubuntu-latest') is ignored: every step runs as a local process on this machine." in job_log


# ---------------------------------------------------------------- conditions and results


def test_failed_and_always_after_a_failing_step(tmp_path: Path) -> None:
    r = run(
        """
        steps:
        - checkout: none
        - script: |
            echo not the last command
            exit 3
        - script: echo skipped
        - script: echo on failure
          condition: failed()
        - script: echo always
          condition: always()
        - script: echo only on success
          condition: succeeded()
        """,
        tmp_path,
    )
    assert r.result == "failed"
    results = [r.record(step_id(i)).result for i in range(1, 6)]
    assert results == ["failed", "skipped", "succeeded", "succeeded", "skipped"]
    assert "##[error]Bash exited with code '3'." in r.log(step_id(1))
    assert r.record(step_id(1)).issues == ["error: Bash exited with code '3'."]
    assert r.record(step_id(2)).log_id is None  # a skipped step gets no log
    assert r.record(JOB).result == "failed"


def test_scripts_run_without_errexit_like_azure(tmp_path: Path) -> None:
    r = run('steps: [{checkout: none}, {script: "false\\necho still here"}]', tmp_path)
    assert r.result == "succeeded"
    assert r.output(step_id(1)) == ["still here"]


@pytest.mark.parametrize(("reason", "expected"), [("ResourceTrigger", "succeeded"), ("Manual", "skipped")])
def test_condition_on_build_reason(tmp_path: Path, reason: str, expected: str) -> None:
    r = run(
        """
        steps:
        - checkout: none
        - script: echo triggered by a webhook
          condition: eq(variables['Build.Reason'], 'ResourceTrigger')
        """,
        tmp_path,
        variables={"Build.Reason": Variable(reason)},
    )
    assert r.record(step_id(1)).result == expected
    assert r.result == "succeeded"


def test_stage_conditions_and_skipped_dependencies(tmp_path: Path) -> None:
    r = run(
        """
        stages:
        - stage: Build
          jobs: [{job: J, steps: [{checkout: none}, {script: exit 1}]}]
        - stage: Deploy
          jobs: [{job: J, steps: [{checkout: none}, {script: echo deploy}]}]
        - stage: Report
          condition: failed()
          jobs: [{job: J, steps: [{checkout: none}, {script: echo report}]}]
        - stage: Cleanup
          dependsOn: [Build]
          condition: and(always(), eq(dependencies.Build.result, 'Failed'))
          jobs: [{job: J, steps: [{checkout: none}, {script: echo cleanup}]}]
        """,
        tmp_path,
    )
    assert [r.record(f"stage:{s}").result for s in ("Build", "Deploy", "Report", "Cleanup")] == [
        "failed",
        "skipped",
        "succeeded",  # Build failed somewhere in Report's dependency graph
        "succeeded",
    ]
    assert r.record("job:Deploy.J").result == "skipped"
    assert r.result == "failed"


def test_bad_condition_fails_that_record_with_the_error_in_its_log(tmp_path: Path) -> None:
    r = run(
        """
        steps:
        - checkout: none
        - script: echo never
          condition: eq(variables.x
        - script: echo later
          condition: always()
        """,
        tmp_path,
    )
    assert r.record(step_id(1)).result == "failed"
    assert any(line.startswith("##[error]") and "eq(variables.x" in line for line in r.log(step_id(1)))
    assert r.record(step_id(2)).result == "succeeded"


def test_continue_on_error_gives_succeeded_with_issues(tmp_path: Path) -> None:
    r = run(
        """
        steps:
        - checkout: none
        - script: exit 1
          continueOnError: true
        - script: echo next
        """,
        tmp_path,
    )
    assert r.record(step_id(1)).result == "succeededWithIssues"
    assert r.record(step_id(2)).result == "succeeded"  # succeeded() still holds
    assert r.record(JOB).result == "succeededWithIssues"
    assert r.result == "succeededWithIssues"


def test_unsupported_task_fails_clearly_and_honours_continue_on_error(tmp_path: Path) -> None:
    r = run(
        """
        steps:
        - checkout: none
        - task: PublishBuildArtifacts@1
          inputs: {PathtoPublish: x}
        - pwsh: Write-Host hi
          continueOnError: true
          condition: always()
        """,
        tmp_path,
    )
    assert r.record(step_id(1)).result == "failed"
    assert r.record(step_id(1)).display_name == "PublishBuildArtifacts@1"
    assert any("'PublishBuildArtifacts@1' is not available in the emulator" in line for line in r.log(step_id(1)))
    assert r.record(step_id(2)).result == "succeededWithIssues"
    assert any("not available in the emulator" in line for line in r.log(step_id(2)))
    assert r.result == "failed"


def test_enabled_false_skips_the_step(tmp_path: Path) -> None:
    r = run("steps: [{checkout: none}, {script: echo no, enabled: false}, {script: echo yes}]", tmp_path)
    assert [r.record(step_id(i)).result for i in (1, 2)] == ["skipped", "succeeded"]


def test_retry_count_on_task_failure(tmp_path: Path) -> None:
    r = run(
        """
        steps:
        - checkout: none
        - bash: |
            n=$(cat "$AGENT_TEMPDIRECTORY/count" 2>/dev/null || echo 0)
            echo $((n + 1)) > "$AGENT_TEMPDIRECTORY/count"
            echo "attempt $((n + 1))"
            test "$n" -ge 2
          retryCountOnTaskFailure: 3
        """,
        tmp_path,
    )
    assert r.record(step_id(1)).result == "succeeded"
    log = r.log(step_id(1))
    assert [line for line in log if line.startswith("attempt")] == ["attempt 1", "attempt 2", "attempt 3"]
    assert "##[warning]Retrying the failed task: attempt 3 of 4." in log


def test_tasks_cmdline_and_bash_with_file_path_and_working_directory(tmp_path: Path) -> None:
    sources = tmp_path / "repo"
    (sources / "tools").mkdir(parents=True)
    (sources / "tools" / "hello.sh").write_text('echo "args: $1 $2 in $(basename "$PWD")"\n')
    r = run(
        """
        steps:
        - task: CmdLine@2
          inputs:
            script: pwd
            workingDirectory: tools
        - task: Bash@3
          inputs:
            filePath: tools/hello.sh
            arguments: one "two words"
            workingDirectory: $(Build.SourcesDirectory)/tools
        - task: Bash@3
          inputs:
            filePath: missing.sh
        """,
        tmp_path,
        sources=sources,
    )
    workspace = (tmp_path / "ws").resolve()
    assert r.record(step_id(2)).display_name == "Command Line Script"
    assert r.output(step_id(2)) == [str(workspace / "s" / "tools")]
    assert r.output(step_id(3)) == ["args: one two words in tools"]
    assert r.record(step_id(4)).result == "failed"
    assert "##[error]Invalid file path 'missing.sh'. A path to a .sh file is required." in r.log(step_id(4))


def test_fail_on_stderr(tmp_path: Path) -> None:
    r = run(
        """
        steps:
        - checkout: none
        - script: echo fine >&2
        - script: echo bad >&2
          failOnStderr: true
          condition: always()
        """,
        tmp_path,
    )
    assert r.record(step_id(1)).result == "succeeded"
    assert r.record(step_id(2)).result == "failed"
    assert "##[error]Bash wrote one or more lines to the standard error stream." in r.log(step_id(2))
    assert "##[error]bad" in r.log(step_id(2))


# ---------------------------------------------------------------- variables and environment


def test_environment_names_and_agent_variables(tmp_path: Path) -> None:
    r = run(
        """
        variables:
          my.var: from yaml
          Build.Reason: not allowed
        steps:
        - checkout: none
        - script: |
            echo "$BUILD_BUILDID|$SYSTEM_TEAMPROJECT|$MY_VAR|$BUILD_REASON|$TF_BUILD"
            echo "$AGENT_OS|$SYSTEM_JOBNAME|$SYSTEM_STAGENAME|$AGENT_JOBNAME"
            echo "$(Build.SourcesDirectory)|$BUILD_ARTIFACTSTAGINGDIRECTORY|$PIPELINE_WORKSPACE|$PWD"
        """,
        tmp_path,
        variables={
            "Build.BuildId": Variable("42"),
            "System.TeamProject": Variable("Payments"),
            "Build.Reason": Variable("Manual"),
        },
    )
    ws = (tmp_path / "ws").resolve()
    assert r.output(step_id(1)) == [
        "42|Payments|from yaml|Manual|True",
        f"Linux|{IMPLICIT_JOB}|{IMPLICIT_STAGE}|{IMPLICIT_JOB}",
        f"{ws / 's'}|{ws / 'a'}|{ws}|{ws / 's'}",
    ]
    job_log = r.log(JOB)
    assert "##[warning]Variable 'Build.Reason' is a system variable; its YAML definition is ignored." in job_log


def test_variable_scopes_queue_time_overrides_and_groups(tmp_path: Path) -> None:
    r = run(
        """
        variables:
        - name: level
          value: pipeline
        - name: override
          value: yaml
        - group: shared-secrets
        stages:
        - stage: S
          variables: {level: stage}
          jobs:
          - job: J
            variables:
            - name: inner
              value: $(level)-job
            - name: isManual
              value: $[ eq(variables['Build.Reason'], 'Manual') ]
            steps:
            - checkout: none
            - script: |
                echo "$(level) $(inner) $(override) $(isManual)"
                echo '$(undefined.var) stays as written'
        """,
        tmp_path,
        variables={"override": Variable("queue"), "Build.Reason": Variable("Manual")},
    )
    assert r.output("step:S.J.1") == ["stage stage-job queue True", "$(undefined.var) stays as written"]
    assert any("Variable group 'shared-secrets' is not available" in line for line in r.log("job:S.J"))


def test_host_environment_does_not_leak_into_scripts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIOSK_DATABASE_URL", "postgresql://user:hunter2@db/kiosk")
    monkeypatch.setenv("KIOSK_TEST_TOKEN", "leaky")
    r = run("steps: [{checkout: none}, {script: env}]", tmp_path)
    names = {line.split("=", 1)[0] for line in r.output(step_id(1))}
    assert not any(name.startswith("KIOSK_") for name in names)
    assert "PATH" in names and "AGENT_TEMPDIRECTORY" in names


# ---------------------------------------------------------------- secrets and logging commands


def test_secret_is_not_in_env_reachable_through_env_mapping_and_masked(tmp_path: Path) -> None:
    r = run(
        """
        steps:
        - checkout: none
        - script: echo "auto=[$MYSECRET]"
        - script: |
            echo "mapped=[$TOKEN]"
            echo "macro=$(mySecret)"
            echo "$TOKEN" | base64
          env:
            TOKEN: $(mySecret)
        """,
        tmp_path,
        variables={"mySecret": Variable("hunter2-value", secret=True)},
    )
    assert r.output(step_id(1)) == ["auto=[]"]
    lines = r.output(step_id(2))
    assert lines[:2] == ["mapped=[***]", "macro=***"]
    assert lines[2] == "aHVudGVyMi12YWx1ZQo="  # only literal occurrences are masked
    assert not any("hunter2-value" in line for line in r.listener.lines())


def test_setvariable_is_visible_to_later_steps_and_secrets_are_masked(tmp_path: Path) -> None:
    r = run(
        """
        steps:
        - checkout: none
        - bash: |
            echo "##vso[task.setvariable variable=plain]hello"
            token=$(printf 's3cr3t-%s' Value)  # computed, so the script text never holds it
            echo "##vso[task.setvariable variable=token;issecret=true]$token"
            echo "plain now=[$PLAIN]"
            echo "leak $token"
        - script: |
            echo "plain=$(plain) env=$PLAIN"
            echo "token=$(token) env=[$TOKEN]"
        """,
        tmp_path,
    )
    assert r.output(step_id(1)) == [
        "##vso[task.setvariable variable=plain]hello",
        "##vso[task.setvariable variable=token;issecret=true]***",
        "plain now=[]",
        "leak ***",
    ]
    assert r.output(step_id(2)) == ["plain=hello env=hello", "token=*** env=[]"]
    assert not any("s3cr3t-Value" in line for line in r.listener.lines())


def test_task_complete_and_logissue(tmp_path: Path) -> None:
    r = run(
        """
        steps:
        - checkout: none
        - bash: |
            echo "##vso[task.logissue type=warning]careful"
            echo "##vso[task.complete result=SucceededWithIssues;]done"
        - bash: |
            echo "##vso[task.logissue type=error]broken"
            echo "##vso[task.complete result=Failed]"
          condition: always()
        - bash: echo "##vso[build.addbuildtag]x"
          condition: always()
        """,
        tmp_path,
    )
    assert r.record(step_id(1)).result == "succeededWithIssues"
    assert r.record(step_id(1)).issues == ["warning: careful"]
    assert r.record(step_id(2)).result == "failed"
    assert r.record(step_id(2)).issues == ["error: broken"]
    assert any("'build.addbuildtag' is not supported" in line for line in r.log(step_id(3)))


# ---------------------------------------------------------------- timeouts and cancelation


def test_step_timeout_kills_the_process_group_quickly(tmp_path: Path) -> None:
    started = time.monotonic()
    r = run(
        """
        steps:
        - checkout: none
        - script: |
            sleep 30 &
            sleep 30
          timeoutInMinutes: 0.01
        - script: echo after
        - script: echo cleanup
          condition: always()
        """,
        tmp_path,
    )
    assert time.monotonic() - started < 5
    assert r.record(step_id(1)).result == "failed"
    assert "##[error]The task has timed out." in r.log(step_id(1))
    assert [r.record(step_id(i)).result for i in (2, 3)] == ["skipped", "succeeded"]
    assert r.result == "failed"


def test_job_timeout_cancels_the_job(tmp_path: Path) -> None:
    started = time.monotonic()
    r = run(
        """
        jobs:
        - job: Slow
          timeoutInMinutes: 0.01
          steps:
          - checkout: none
          - script: sleep 30
          - script: echo never
            condition: always()
        """,
        tmp_path,
    )
    assert time.monotonic() - started < 5
    assert [r.record(step_id(i, job="Slow")).result for i in (1, 2)] == ["canceled", "canceled"]
    assert r.record(f"job:{IMPLICIT_STAGE}.Slow").result == "canceled"
    assert any(
        "ran longer than the maximum time of 0.01 minutes" in line for line in r.log(f"job:{IMPLICIT_STAGE}.Slow")
    )
    assert r.result == "canceled"


def test_cancel_event_kills_the_step_and_cancels_the_rest(tmp_path: Path) -> None:
    cancel = threading.Event()
    timer = threading.Timer(0.5, cancel.set)
    timer.start()
    started = time.monotonic()
    try:
        r = run(
            """
            stages:
            - stage: A
              jobs:
              - job: J
                steps:
                - checkout: none
                - script: echo started; sleep 30
                - script: echo never
                  condition: always()
            - stage: B
              jobs: [{job: J, steps: [{script: echo never}]}]
            """,
            tmp_path,
            cancel=cancel,
        )
    finally:
        timer.cancel()
    assert time.monotonic() - started < 5
    assert r.result == "canceled"
    assert [r.record(f"step:A.J.{i}").result for i in (1, 2)] == ["canceled", "canceled"]
    assert "started" in r.log("step:A.J.1")
    assert r.record("stage:B").result == "canceled" and r.record("job:B.J").result == "canceled"


# ---------------------------------------------------------------- checkout


def test_checkout_self_copies_sources_without_git(tmp_path: Path) -> None:
    sources = tmp_path / "repo"
    (sources / ".git").mkdir(parents=True)
    (sources / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (sources / "src").mkdir()
    (sources / "src" / "app.txt").write_text("content\n")
    r = run(
        """
        jobs:
        - job: Implicit
          steps: [{script: cat src/app.txt; ls -a}]
        - job: Explicit
          steps: [{script: echo first}, {checkout: self}]
        """,
        tmp_path,
        sources=sources,
    )
    assert r.record(step_id(1, job="Implicit")).name == "Checkout"
    assert r.output(step_id(2, job="Implicit")) == ["content", ".", "..", "src"]
    assert [x.name for x in r.outcome.records if x.parent_id == f"job:{IMPLICIT_STAGE}.Explicit"] == [
        "CmdLine",
        "Checkout",
    ]


def test_checkout_none_leaves_sources_empty(tmp_path: Path) -> None:
    sources = tmp_path / "repo"
    sources.mkdir()
    (sources / "file.txt").write_text("x")
    r = run("steps: [{checkout: none}, {script: ls -A | wc -l}]", tmp_path, sources=sources)
    assert [x.name for x in r.outcome.records if x.type == "Task"] == ["CmdLine"]
    assert r.output(step_id(1)) == ["0"]


# ---------------------------------------------------------------- normalize and helpers


def test_normalize_implicit_stage_and_job() -> None:
    plan = normalize({"steps": [{"script": "a"}, {"script": "b", "name": "CmdLine2"}, {"bash": "c"}]})
    (stage,) = plan.stages
    (job,) = stage.jobs
    assert (stage.name, job.name) == (IMPLICIT_STAGE, IMPLICIT_JOB)
    assert [(s.index, s.name, s.kind) for s in job.steps] == [
        (1, "Checkout", "checkout"),
        (2, "CmdLine", "cmdline"),
        (3, "CmdLine2", "cmdline"),
        (4, "Bash", "bash"),
    ]
    assert job.steps[0].implicit


@pytest.mark.parametrize(
    ("pipeline", "message"),
    [
        ({}, "needs 'stages', 'jobs' or 'steps'"),
        ({"steps": [{"script": "a"}], "jobs": []}, "both 'jobs' and 'steps'"),
        ({"steps": []}, "'steps' must be a non-empty list"),
        ({"jobs": [{"job": "A", "steps": [{"script": "a"}]}, {"job": "A", "steps": [{"script": "b"}]}]}, "two jobs"),
        ({"jobs": [{"job": "bad-name", "steps": [{"script": "a"}]}]}, "job name 'bad-name' is invalid"),
        ({"jobs": [{"job": "A", "strategy": {"matrix": {}}, "steps": [{"script": "a"}]}]}, "matrix"),
        ({"steps": [{"script": "a", "timeoutInMinutes": -1}]}, "timeoutInMinutes"),
        ({"steps": [{"script": "a", "retryCountOnTaskFailure": 11}]}, "retryCountOnTaskFailure"),
        ({"steps": [{"script": "a", "name": "x"}, {"bash": "b", "name": "X"}]}, "two steps are named"),
        ({"jobs": [{"template": "jobs.yml"}]}, "was not expanded"),
        ({"steps": [{"script": "a"}], "variables": "nope"}, "'variables' must be a mapping or a list"),
    ],
)
def test_normalize_rejects(pipeline: dict[str, Any], message: str) -> None:
    with pytest.raises(PipelineError, match=message):
        normalize(pipeline)


def test_worst_result() -> None:
    assert worst_result(["succeeded", "skipped", "succeededWithIssues"]) == "succeededWithIssues"
    assert worst_result(["failed", "canceled", "succeeded"]) == "canceled"
    assert worst_result(["skipped", None]) is None


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for a container's init to reap it counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_background_processes_do_not_hold_the_step_and_die_with_the_job(tmp_path: Path) -> None:
    started = time.monotonic()
    r = run(
        """
        steps:
        - checkout: none
        - script: |
            sleep 60 &
            echo $! > "$AGENT_TEMPDIRECTORY/pid"
            echo started
        - script: echo next
        """,
        tmp_path,
    )
    assert time.monotonic() - started < 5  # the inherited stdout pipe is not waited for
    assert r.result == "succeeded"
    assert r.output(step_id(2)) == ["next"]
    pid = int((tmp_path / "ws" / "_temp" / "pid").read_text())
    deadline = time.monotonic() + 3  # SIGKILL is delivered asynchronously
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(pid)
