"""Conformance table modelled on the examples of Microsoft's "Template expressions", "Templates"
and "Template usage reference" pages: pipeline text (+ template files) + parameters → the
expanded structure Azure produces, or the error it reports."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any

import pytest

from kiosk.pipelines.errors import PipelineError
from kiosk.pipelines.expand import ExpansionError, ParameterError, expand_pipeline
from kiosk.pipelines.yaml_source import dict_loader


@dataclass(frozen=True)
class Case:
    id: str
    pipeline: str
    expected: dict[str, Any] | None = None
    files: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)
    error: type[PipelineError] | None = None
    error_line: int | None = None


def d(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


CASES = [
    Case(
        "if-else-steps",
        d("""
            parameters:
            - name: experimentalTemplate
              displayName: 'Use experimental build process?'
              type: boolean
              default: false
            steps:
            - ${{ if eq(parameters.experimentalTemplate, true) }}:
              - script: echo experimental
            - ${{ if not(eq(parameters.experimentalTemplate, true)) }}:
              - script: echo stable
        """),
        {"steps": [{"script": "echo experimental"}]},
        parameters={"experimentalTemplate": "true"},
    ),
    Case(
        "if-elseif-else-variables",
        d("""
            variables:
              ${{ if eq(variables['Build.SourceBranchName'], 'main') }}:
                stageName: prod
              ${{ elseif eq(variables['Build.SourceBranchName'], 'test') }}:
                stageName: test
              ${{ else }}:
                stageName: dev
            steps:
            - script: echo ${{ variables.stageName }}
        """),
        {"variables": {"stageName": "test"}, "steps": [{"script": "echo test"}]},
        variables={"Build.SourceBranchName": "test"},
    ),
    Case(
        "each-over-steplist-parameter",
        d("""
            parameters:
            - name: steps
              type: stepList
              default: []
            steps:
            - ${{ each step in parameters.steps }}:
              - ${{ each pair in step }}:
                  ${{ pair.key }}: ${{ pair.value }}
        """),
        {"steps": [{"script": "echo one", "displayName": "One"}, {"bash": "echo two"}]},
        parameters={"steps": [{"script": "echo one", "displayName": "One"}, {"bash": "echo two"}]},
    ),
    Case(
        "each-injects-step-before-every-task",
        d("""
            parameters:
            - name: steps
              type: stepList
              default: []
            steps:
            - ${{ each step in parameters.steps }}:
              - ${{ if startsWith(step.task, 'CmdLine') }}:
                - script: echo Running ${{ step.displayName }}
              - ${{ step }}
        """),
        {
            "steps": [
                {"script": "echo Running Hello"},
                {"task": "CmdLine@2", "displayName": "Hello", "inputs": {"script": "echo hi"}},
                {"script": "echo plain"},
            ]
        },
        parameters={
            "steps": [
                {"task": "CmdLine@2", "displayName": "Hello", "inputs": {"script": "echo hi"}},
                {"script": "echo plain"},
            ]
        },
    ),
    Case(
        "each-creates-jobs",
        d("""
            parameters:
            - name: jobs
              type: jobList
              default: []
            jobs:
            - ${{ each job in parameters.jobs }}:
              - ${{ each pair in job }}:
                  ${{ if ne(pair.key, 'steps') }}:
                    ${{ pair.key }}: ${{ pair.value }}
                steps:
                - task: SetupMyBuildTools@1
                - ${{ job.steps }}
        """),
        {
            "jobs": [
                {"job": "A", "steps": [{"task": "SetupMyBuildTools@1"}, {"script": "a"}]},
                {"job": "B", "pool": "p", "steps": [{"task": "SetupMyBuildTools@1"}]},
            ]
        },
        parameters={"jobs": [{"job": "A", "steps": [{"script": "a"}]}, {"job": "B", "pool": "p", "steps": []}]},
    ),
    Case(
        "insert-variables",
        d("""
            parameters:
            - name: additionalVariables
              type: object
              default: {}
            variables:
              ${{ insert }}: ${{ parameters.additionalVariables }}
              fixed: yes
        """),
        {"variables": {"foo": "bar", "baz": 1, "fixed": "yes"}},
        parameters={"additionalVariables": {"foo": "bar", "baz": 1}},
    ),
    Case(
        "insert-into-job-from-object",
        d("""
            parameters:
            - name: pool
              type: object
              default: {vmImage: ubuntu-latest}
            jobs:
            - job: build
              pool:
                ${{ insert }}: ${{ parameters.pool }}
              steps: []
        """),
        {"jobs": [{"job": "build", "pool": {"vmImage": "ubuntu-latest"}, "steps": []}]},
    ),
    Case(
        "steps-template-with-parameters",
        d("""
            jobs:
            - job: Linux
              pool:
                vmImage: 'ubuntu-latest'
              steps:
              - template: templates/include-npm-steps.yml
                parameters:
                  runTests: false
            - job: Windows
              steps:
              - template: templates/include-npm-steps.yml
        """),
        {
            "jobs": [
                {
                    "job": "Linux",
                    "pool": {"vmImage": "ubuntu-latest"},
                    "steps": [{"script": "npm install"}],
                },
                {"job": "Windows", "steps": [{"script": "npm install"}, {"script": "npm test"}]},
            ]
        },
        files={
            "templates/include-npm-steps.yml": d("""
                parameters:
                - name: runTests
                  type: boolean
                  default: true
                steps:
                - script: npm install
                - ${{ if eq(parameters.runTests, true) }}:
                  - script: npm test
            """)
        },
    ),
    Case(
        "jobs-template-with-name-parameter",
        d("""
            jobs:
            - template: jobs/build.yml
              parameters:
                name: macOS
                pool:
                  vmImage: macOS-latest
            - template: jobs/build.yml
              parameters:
                name: Linux
                pool:
                  vmImage: ubuntu-latest
                sign: true
        """),
        {
            "jobs": [
                {"job": "macOS", "pool": {"vmImage": "macOS-latest"}, "steps": [{"script": "npm install"}]},
                {
                    "job": "Linux",
                    "pool": {"vmImage": "ubuntu-latest"},
                    "steps": [{"script": "npm install"}, {"script": "sign"}],
                },
            ]
        },
        files={
            "jobs/build.yml": d("""
                parameters:
                - name: name
                  type: string
                - name: pool
                  type: object
                - name: sign
                  type: boolean
                  default: false
                jobs:
                - job: ${{ parameters.name }}
                  pool: ${{ parameters.pool }}
                  steps:
                  - script: npm install
                  - ${{ if parameters.sign }}:
                    - script: sign
            """)
        },
    ),
    Case(
        "stages-template",
        d("""
            stages:
            - template: stages/test.yml
              parameters:
                name: Mini
                testFile: tests/miniSuite.js
        """),
        {
            "stages": [
                {"stage": "Test_Mini", "jobs": [{"job": "Test", "steps": [{"script": "node tests/miniSuite.js"}]}]}
            ]
        },
        files={
            "stages/test.yml": d("""
                parameters:
                - name: name
                  default: ''
                - name: testFile
                  default: ''
                stages:
                - stage: Test_${{ parameters.name }}
                  jobs:
                  - job: Test
                    steps:
                    - script: node ${{ parameters.testFile }}
            """)
        },
    ),
    Case(
        "variables-template",
        d("""
            variables:
            - template: vars.yml
            - name: local
              value: here
            steps:
            - script: echo ${{ variables.favoriteVeggie }} $(local)
        """),
        {
            "variables": [{"name": "favoriteVeggie", "value": "brussels sprouts"}, {"name": "local", "value": "here"}],
            "steps": [{"script": "echo brussels sprouts $(local)"}],
        },
        files={"vars.yml": "variables:\n  favoriteVeggie: 'brussels sprouts'\n"},
    ),
    Case(
        "extends-template",
        d("""
            trigger:
            - main
            extends:
              template: start.yml
              parameters:
                buildSteps:
                  - bash: echo Test
                    displayName: succeed
                  - script: echo "Script Test"
                    displayName: Fail
        """),
        {
            "trigger": ["main"],
            "pool": {"vmImage": "windows-latest"},
            "jobs": [
                {
                    "job": "secure_buildjob",
                    "steps": [
                        {"script": "echo This happens before code", "displayName": "Base: Pre-build"},
                        {"bash": "echo Test", "displayName": "succeed"},
                        {"displayName": "Fail"},  # the filtered step keeps its other keys
                        {"script": "echo This runs after the user's steps", "displayName": "Base: Signing"},
                    ],
                }
            ],
        },
        files={
            "start.yml": d("""
                parameters:
                - name: buildSteps
                  type: stepList
                  default: []
                pool:
                  vmImage: windows-latest
                jobs:
                - job: secure_buildjob
                  steps:
                  - script: echo This happens before code
                    displayName: 'Base: Pre-build'
                  - ${{ each step in parameters.buildSteps }}:
                    - ${{ each pair in step }}:
                        ${{ if ne(pair.value, 'echo "Script Test"') }}:
                          ${{ pair.key }}: ${{ pair.value }}
                  - script: echo This runs after the user's steps
                    displayName: 'Base: Signing'
            """)
        },
    ),
    Case(
        "extends-rejects-unknown-parameter",
        "extends:\n  template: start.yml\n  parameters:\n    nope: 1\n",
        files={"start.yml": "parameters:\n- name: buildSteps\n  type: stepList\n  default: []\nsteps: []\n"},
        error=ParameterError,
        error_line=1,
    ),
    Case(
        "values-restricts-choices",
        d("""
            parameters:
            - name: image
              displayName: Pool Image
              type: string
              default: ubuntu-latest
              values:
              - windows-latest
              - ubuntu-latest
              - macOS-latest
            pool:
              vmImage: ${{ parameters.image }}
        """),
        parameters={"image": "debian"},
        error=ParameterError,
        error_line=2,
    ),
    Case(
        "required-template-parameter",
        "steps:\n- template: t.yml\n",
        files={"t.yml": "parameters:\n- name: userInput\n  type: string\nsteps:\n- script: x\n"},
        error=ParameterError,
        error_line=2,
    ),
    Case(
        "else-without-if",
        "steps:\n- script: a\n- ${{ else }}:\n  - script: b\n",
        error=ExpansionError,
        error_line=3,
    ),
    Case(
        "coalesce-and-format-in-template",
        d("""
            steps:
            - template: t.yml
              parameters:
                name: ''
        """),
        {"steps": [{"script": "echo Hello anonymous (v1)"}]},
        files={
            "t.yml": d("""
                parameters:
                - name: name
                  type: string
                  default: ''
                steps:
                - script: ${{ format('echo Hello {0} ({1})', coalesce(parameters.name, 'anonymous'), 'v1') }}
            """)
        },
    ),
    # A variables block is evaluated entry by entry: ${{ variables.x }} in an entry sees the
    # entries before it in the same block (Microsoft's "Define variables": template expression
    # variables are processed at compile time, in order), never the ones after it.
    Case(
        "variables-same-block-mapping-form",
        d("""
            variables:
              basePath: /srv
              servicePath: ${{ variables.basePath }}/service
              early: before-${{ variables.later }}
              later: x
            steps:
            - script: echo ${{ variables.servicePath }} ${{ variables['early'] }}
        """),
        {
            "variables": {"basePath": "/srv", "servicePath": "/srv/service", "early": "before-", "later": "x"},
            "steps": [{"script": "echo /srv/service before-"}],
        },
    ),
    Case(
        "variables-same-block-list-form-directive-and-template",
        d("""
            variables:
            - template: vars.yml
            - name: backupPath
              value: ${{ variables.basePath }}/backups
            - ${{ if eq(variables.backupPath, '/srv/backups') }}:
              - name: checked
                value: ${{ variables['backupPath'] }}
            - name: last
              value: ${{ variables.checked }}
            steps:
            - script: echo ${{ variables.last }}
        """),
        {
            "variables": [
                {"name": "basePath", "value": "/srv"},
                {"name": "backupPath", "value": "/srv/backups"},
                {"name": "checked", "value": "/srv/backups"},
                {"name": "last", "value": "/srv/backups"},
            ],
            "steps": [{"script": "echo /srv/backups"}],
        },
        files={"vars.yml": "variables:\n  basePath: /srv\n"},
    ),
    Case(
        "variables-same-block-at-stage-and-job-level",
        d("""
            variables:
              root: r
            stages:
            - stage: build
              variables:
                a: ${{ variables.root }}-a
                ${{ if eq(variables.a, 'r-a') }}:
                  b: ${{ variables.a }}-b
              jobs:
              - job: one
                variables:
                - name: c
                  value: ${{ variables.root }}-c
                - name: d
                  value: ${{ variables.c }}-d
                steps:
                - script: echo $(d)
        """),
        {
            "variables": {"root": "r"},
            "stages": [
                {
                    "stage": "build",
                    "variables": {"a": "r-a", "b": "r-a-b"},
                    "jobs": [
                        {
                            "job": "one",
                            "variables": [{"name": "c", "value": "r-c"}, {"name": "d", "value": "r-c-d"}],
                            "steps": [{"script": "echo $(d)"}],
                        }
                    ],
                }
            ],
        },
    ),
    Case(
        "variables-same-block-runtime-syntax-left-to-run-time",
        d("""
            variables:
              a: one
              b: $(a)
              c: $[ variables.a ]
            steps:
            - script: echo ${{ variables.b }} ${{ variables.c }}
        """),
        {
            "variables": {"a": "one", "b": "$(a)", "c": "$[ variables.a ]"},
            "steps": [{"script": "echo $(a) $[ variables.a ]"}],
        },
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_conformance(case: Case) -> None:
    def run() -> dict[str, Any]:
        return expand_pipeline(
            case.pipeline,
            parameters=case.parameters,
            variables=case.variables,
            load=dict_loader(case.files),
        )

    if case.error is not None:
        with pytest.raises(case.error) as info:
            run()
        if case.error_line is not None:
            assert info.value.line == case.error_line
        return
    assert run() == case.expected
