"""kiosk.yaml documents declared as data: a test states only what its config holds that differs.

Most tests that run an action need the same self-service action on the ``service`` blueprint and
differ only in its inputs and where it is delivered; :func:`self_service_action` builds that action
and :func:`kiosk_yaml` dumps a whole document; :func:`watch` and :func:`run_action` declare the
watches that react to image pushes. A test about parsing YAML text itself (line numbers
in errors, quoting) keeps its literal instead: there the text is the subject.
"""

from __future__ import annotations

from typing import Any

import yaml


def self_service_action(
    identifier: str,
    *,
    invocation: dict[str, Any],
    title: str | None = None,
    blueprint: str = "service",
    operation: str = "DAY-2",
    inputs: dict[str, Any] | None = None,
    required: list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A self-service action on ``blueprint``: ``inputs`` are its user inputs' properties (all
    optional but ``required``), ``invocation`` its ``invocationMethod``; ``extra`` keys are added as
    they are (``publish``, ``approvalNotification``...)."""
    trigger: dict[str, Any] = {"type": "self-service", "operation": operation, "blueprintIdentifier": blueprint}
    if inputs is not None:
        trigger["userInputs"] = (
            {"properties": inputs} if required is None else {"properties": inputs, "required": required}
        )
    action: dict[str, Any] = {"identifier": identifier}
    if title is not None:
        action["title"] = title
    return {**action, "trigger": trigger, "invocationMethod": invocation, **extra}


def watch(name: str, image: str, tags: list[str], *reactions: dict[str, Any]) -> dict[str, Any]:
    """A watch on ``image``'s pushes of ``tags`` (globs) that fires ``reactions`` in order."""
    return {"name": name, "subscriptions": [{"image": image, "tags": tags}], "reactions": list(reactions)}


def run_action(action: str, entity: str, properties: dict[str, Any]) -> dict[str, Any]:
    """A watch reaction running ``action`` on ``entity`` with ``properties`` (jq templates allowed)."""
    return {"runAction": {"action": action, "entity": entity, "properties": properties}}


def kiosk_yaml(**sections: Any) -> str:
    """A kiosk.yaml document of ``sections`` (``egress``, ``blueprints``, ``actions``...) in the order given."""
    return yaml.safe_dump(sections, sort_keys=False)
