"""Self-service in a real browser (Debian's chromium through Playwright): open the hub, fill an
action form whose second field appears once the first is chosen (a jq rule evaluated on the
server, swapped in by htmx), submit, land on the run's page and watch a log line the pipeline
reports through the API arrive — with axe-core on the hub, the form and the run page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.browser import chromium, serious_violations
from tests.support.live_kiosk import LiveServer, start_configured_server
from tests.support.receiver import Receiver
from tests.support.servers import serving
from tests.support.ui import PASSWORD

from kiosk.auth.users import create_user

pytestmark = pytest.mark.browser


def config(hooks: str) -> str:
    return f"""
egress: {{allowLoopback: true}}
blueprints:
  - {{identifier: service, title: Service, schema: {{properties: {{}}}}}}
actions:
  - identifier: create_service
    title: Create service
    description: Scaffold a new service from a template
    trigger:
      type: self-service
      operation: CREATE
      blueprintIdentifier: service
      userInputs:
        order: [name, language, framework]
        properties:
          name: {{type: string, title: Name, minLength: 3}}
          language: {{type: string, title: Language, enum: [python, go]}}
          framework:
            type: string
            title: Framework
            dependsOn: [language]
            visible: {{jqQuery: '.form.language != null'}}
            enum: {{jqQuery: 'if .form.language == "go" then ["gin", "echo"] else ["django", "flask"] end'}}
        required: [name, language]
    invocationMethod: {{type: WEBHOOK, url: "{hooks}/create"}}
"""


@pytest.fixture
def hooks() -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver()
    with serving(receiver) as base:
        yield receiver, base


@pytest.fixture
def live(tmp_path: Path, hooks: tuple[Receiver, str]) -> Iterator[LiveServer]:
    yield from start_configured_server(tmp_path, f"sqlite:///{tmp_path}/k.db", config(hooks[1]))


def test_fill_an_action_form_and_watch_the_run(live: LiveServer, hooks: tuple[Receiver, str]) -> None:
    create_user(live.app.state.db, "max@example.com", "member", PASSWORD, name="Max Member")
    with chromium() as browser:
        context = browser.new_context(bypass_csp=True)  # axe is injected as a script the CSP refuses
        page = context.new_page()
        page.goto(live.base_url + "/ui/self-service")
        page.get_by_label("Email").fill("max@example.com")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_label("Password").press("Enter")
        page.wait_for_url(live.base_url + "/ui/self-service")
        assert page.get_by_role("heading", level=1).inner_text() == "Self-service"
        assert serious_violations(page) == []

        page.get_by_role("link", name="Create service").click()
        page.wait_for_url(live.base_url + "/ui/self-service/create_service")
        assert page.get_by_label("Framework").count() == 0  # no language yet: the rule hides it
        assert serious_violations(page) == []
        page.get_by_label("Name").fill("payments")
        page.get_by_label("Language").select_option(label="go")
        framework = page.get_by_label("Framework")
        framework.wait_for()  # htmx posted the change; the server's rules drew the field
        assert framework.locator("option").all_inner_texts() == ["—", "gin", "echo"]
        framework.select_option(label="echo")
        assert serious_violations(page) == []

        page.get_by_role("button", name="Run action").click()
        page.wait_for_url(re.compile(re.escape(live.base_url) + r"/ui/runs/r_[0-9a-f]+$"))
        run_id = page.url.rsplit("/", 1)[1]
        assert "IN_PROGRESS" in page.locator("#run-status + p").inner_text()
        assert page.get_by_text("No log lines yet.").is_visible()
        assert serious_violations(page) == []
        [delivered] = hooks[0].wait(1)
        assert b'"framework":"echo"' in delivered.body and b'"name":"payments"' in delivered.body

        # The pipeline reports through the API; the page, polling while the run is in progress, shows it.
        answer = live.admin.post(f"/v1/actions/runs/{run_id}/logs", json={"message": "Scaffolded payments (echo)"})
        assert answer.status_code == 201, answer.text
        page.get_by_text("Scaffolded payments (echo)").wait_for(timeout=10_000)
        answer = live.admin.post(
            f"/v1/actions/runs/{run_id}/logs", json={"message": "Done", "terminationStatus": "SUCCESS"}
        )
        assert answer.status_code == 201, answer.text
        page.locator(".status-success").wait_for(timeout=10_000)
        assert serious_violations(page) == []

        run = live.app.state.runs.get_run(run_id)
        assert run["createdBy"] == "max@example.com" and run["source"] == "UI"
        context.close()
