"""Structured logs: one JSON object per line, and secrets never reach the output."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from tests.support.logs import logging_restored

from kiosk.config import Secret
from kiosk.logs import configure_logging, redact_text, register_secret


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    with logging_restored():
        yield


def lines(err: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def test_one_json_object_per_line_with_extras(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    log = logging.getLogger("kiosk.test")
    log.info("delivered %s", "run-1", extra={"runId": "r_1", "attempt": 2})
    log.debug("not shown at INFO")
    (line,) = lines(capsys.readouterr().err)
    assert set(line) >= {"ts", "level", "logger", "msg"}
    assert line["level"] == "INFO" and line["logger"] == "kiosk.test"
    assert line["msg"] == "delivered run-1"
    assert line["runId"] == "r_1" and line["attempt"] == 2
    assert str(line["ts"]).endswith("Z")


def test_registered_secret_never_reaches_the_output(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("DEBUG")
    register_secret("zq-registered-secret-9f3")
    log = logging.getLogger("kiosk.test")
    log.warning("signing with zq-registered-secret-9f3 now")
    log.info("args too: %s", "prefix-zq-registered-secret-9f3-suffix")
    log.info(
        "extras too", extra={"note": "value zq-registered-secret-9f3", "nested": {"list": ["zq-registered-secret-9f3"]}}
    )
    try:
        raise RuntimeError("boom zq-registered-secret-9f3")
    except RuntimeError:
        log.exception("failed")
    err = capsys.readouterr().err
    assert "zq-registered-secret-9f3" not in err
    assert err.count("***") >= 5
    assert lines(err)[-1]["exc"]


def test_secret_objects_register_themselves(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    secret = Secret("resolved-from-env-7c1d")
    logging.getLogger("kiosk.test").info("oops %s", secret.reveal())
    assert "resolved-from-env-7c1d" not in capsys.readouterr().err


def test_bearer_and_basic_credentials_are_masked(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    log = logging.getLogger("kiosk.test")
    log.info("calling with Authorization: Bearer eyJhbGciOi.payload.sig")
    log.info("header %s", "Basic dXNlcjpwYXNzd29yZA==")
    err = capsys.readouterr().err
    assert "eyJhbGciOi" not in err and "dXNlcjpwYXNzd29yZA" not in err
    msgs = [line["msg"] for line in lines(err)]
    assert msgs == ["calling with Authorization: Bearer ***", "header Basic ***"]


def test_secret_named_extra_fields_are_masked_anywhere(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    logging.getLogger("kiosk.test").info(
        "request",
        extra={
            "headers": {"Authorization": "abc", "X-Port-Signature": "sig", "Accept": "json"},
            "body": {"clientId": "kc_1", "clientSecret": "cs", "inner": [{"accessToken": "at", "password": "pw"}]},
            "credentials": {"user": "u"},
        },
    )
    (line,) = lines(capsys.readouterr().err)
    assert line["headers"] == {"Authorization": "***", "X-Port-Signature": "***", "Accept": "json"}
    assert line["body"] == {
        "clientId": "kc_1",
        "clientSecret": "***",
        "inner": [{"accessToken": "***", "password": "***"}],
    }
    assert line["credentials"] == "***"


def test_uvicorn_access_lines_go_through_the_same_filter(capsys: pytest.CaptureFixture[str]) -> None:
    access = logging.getLogger("uvicorn.access")
    access.addHandler(logging.StreamHandler())  # what uvicorn's own config would have installed
    configure_logging("INFO")
    access.info(
        "starting", extra={"color_message": "\x1b[36mstarting\x1b[0m"}
    )  # uvicorn's terminal-colour copy of a message is dropped
    access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/hook?token=tok-abc123&x=1", "1.1", 200)
    err = capsys.readouterr().err
    first, line = lines(err)  # uvicorn's handler was removed: only kiosk's JSON lines
    assert "color_message" not in first
    assert line["logger"] == "uvicorn.access"
    assert "tok-abc123" not in err
    assert "token=***&x=1" in str(line["msg"])


def test_text_format_is_redacted_too(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", json=False)
    logging.getLogger("kiosk.test").info("token is Bearer abc.def.ghi", extra={"password": "pw"})
    err = capsys.readouterr().err
    assert "abc.def.ghi" not in err and "pw\n" not in err
    assert "Bearer ***" in err and "password=***" in err


def test_prose_is_left_alone() -> None:
    assert redact_text("invalid token: expired") == "invalid token: expired"
    assert redact_text('{"clientSecret": "x y", "a": 1}') == '{"clientSecret": "***", "a": 1}'


def test_short_values_are_not_registered() -> None:
    register_secret("ab")
    assert redact_text("a b ab abc") == "a b ab abc"
