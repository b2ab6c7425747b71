"""Build a running emulator from its config file: registry, secrets, executor, HTTP app.

Kept apart from the CLI so tests, the demo and ``kiosk emulator`` start the emulator the same way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI

from kiosk.config.secrets import resolve_secret
from kiosk.emulator.access import AccessPolicy
from kiosk.emulator.app import create_emulator_app
from kiosk.emulator.config import EmulatorConfig
from kiosk.emulator.executor import RunExecutor
from kiosk.emulator.hooks import ServiceHooks
from kiosk.emulator.service import Emulator, EmulatorOptions
from kiosk.errors import ConfigError
from kiosk.pipelines.variables import Variable

__all__ = ["EmulatorServer", "build_emulator"]


@dataclass
class EmulatorServer:
    emulator: Emulator
    app: FastAPI
    executor: RunExecutor | None
    work_dir: Path


def build_emulator(
    config: EmulatorConfig,
    *,
    config_dir: Path,
    base_url: str,
    work_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    execute_runs: bool | None = None,
) -> EmulatorServer:
    """Everything ``config`` declares, ready to serve at ``base_url``.

    Secrets are resolved here (a missing variable or file stops the start with a ConfigError
    naming the reference), PATs included; an emulator without any org (hence without any PAT)
    refuses to start unless ``settings.allowAnonymous`` says so. ``execute_runs`` overrides the
    config's ``executeRuns``.
    """
    environ = os.environ if env is None else env
    settings = config.settings
    emulator = Emulator(
        EmulatorOptions(
            base_url=base_url.rstrip("/"),
            accept_sha1_prefix=settings.accept_sha1_prefix,
            case_insensitive_filters=settings.case_insensitive_filters,
            retain_runs=settings.retain_runs,
            retain_triggers=settings.retain_triggers,
        )
    )
    tokens: dict[str, list[str]] = {}
    for org in config.orgs:
        tokens[org.name] = [
            resolve_secret(ref, base_dir=config_dir, env=environ).reveal() for ref in org.personal_access_tokens
        ]
        emulator.add_org(org.name)
        for project in org.projects:
            emulator.add_project(org.name, project.name)
            for connection in project.connections:
                secret = (
                    resolve_secret(connection.secret, base_dir=config_dir, env=environ).reveal()
                    if connection.secret is not None
                    else None
                )
                emulator.add_connection(
                    org.name,
                    project.name,
                    name=connection.name,
                    webhook_name=connection.webhook_name,
                    secret=secret,
                    header=connection.header,
                )
            for spec in project.pipelines:
                variables = {name: Variable(value) for name, value in spec.variables.items()}
                for name, ref in spec.secret_variables.items():
                    variables[name] = Variable(resolve_secret(ref, base_dir=config_dir, env=environ).reveal(), True)
                emulator.add_pipeline(
                    org.name,
                    project.name,
                    name=spec.name,
                    repository=(config_dir / spec.repository),
                    path=spec.path,
                    folder=spec.folder,
                    default_branch=spec.default_branch,
                    repository_name=spec.repository_name,
                    variables=variables,
                )
    if work_dir is None:  # an absolute workDir replaces config_dir in the join
        work_dir = config_dir / (settings.work_dir or ".kiosk-emulator")
    execute = settings.execute_runs if execute_runs is None else execute_runs
    executor = RunExecutor(emulator, work_dir, settings.run_workers) if execute else None
    if not config.orgs and not settings.allow_anonymous:
        raise ConfigError(
            "the emulator serves no org, so no personal access token could open its REST API: declare orgs "
            "with personalAccessTokens in its config (--config), or set settings.allowAnonymous: true"
        )
    policy = AccessPolicy(tokens, allow_anonymous=settings.allow_anonymous)
    hooks = ServiceHooks(emulator.options.base_url)
    emulator.subscribe(hooks.run_changed)
    app = create_emulator_app(
        emulator,
        work_dir=work_dir,
        executor=executor,
        hooks=hooks,
        max_body_bytes=settings.max_body_bytes,
        policy=policy,
    )
    return EmulatorServer(emulator, app, executor, work_dir)
