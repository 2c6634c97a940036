"""Settings: every one documented, and a bad one stops a command at start with its variable's name."""

from __future__ import annotations

import os

import pytest

from dagbridge.cli import main
from dagbridge.settings_docs import DOC_PATH, configuration_markdown
from schemas.settings import Settings, env_var


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in [name for name in os.environ if name.startswith("DAGBRIDGE_")]:
        monkeypatch.delenv(name)
    return monkeypatch


def test_every_setting_is_documented_and_the_reference_is_current() -> None:
    undocumented = [name for name, field in Settings.model_fields.items() if not field.description]
    assert not undocumented, f"settings without a description: {undocumented}"
    assert DOC_PATH.read_text() == configuration_markdown(), "stale: run `python -m dagbridge.settings_docs`"
    for name in Settings.model_fields:
        assert f"`{env_var(name)}`" in DOC_PATH.read_text()


def test_bad_settings_stop_the_command_with_one_line_naming_each_variable(clean_env, capsys) -> None:
    clean_env.setenv("DAGBRIDGE_METRICS_PORT", "70000")
    clean_env.setenv("DAGBRIDGE_TASK_PROCESSES", "many")
    clean_env.setenv("DAGBRIDGE_LOG_FORMAT", "xml")
    assert main(["worker"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith("dagbridge: invalid setting DAGBRIDGE_TASK_PROCESSES: ")
    assert lines[1].startswith("dagbridge: invalid setting DAGBRIDGE_METRICS_PORT: ")
    assert lines[2] == "dagbridge: invalid setting DAGBRIDGE_LOG_FORMAT: Input should be 'text' or 'json'"


def test_a_certificate_that_is_not_there_is_reported_at_start(clean_env, capsys) -> None:
    clean_env.setenv("DAGBRIDGE_TEMPORAL_TLS_CA_PATH", "/nonexistent/ca.pem")
    assert main(["--dags-folder", "dags", "worker"]) == 2
    assert capsys.readouterr().err == (
        "dagbridge: invalid setting DAGBRIDGE_TEMPORAL_TLS_CA_PATH: Path does not point to a file\n"
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"DAGBRIDGE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "DAGBRIDGE_KAFKA_SASL_USERNAME": "bridge"},
            "DAGBRIDGE_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs "
            "DAGBRIDGE_KAFKA_SASL_USERNAME and DAGBRIDGE_KAFKA_SASL_PASSWORD",
        ),
        (
            {"DAGBRIDGE_TEMPORAL_TLS_CERT_PATH": __file__},
            "DAGBRIDGE_TEMPORAL_TLS_CERT_PATH and DAGBRIDGE_TEMPORAL_TLS_KEY_PATH go together",
        ),
    ],
)
def test_incomplete_credentials_are_refused_at_start(clean_env, capsys, env: dict[str, str], message: str) -> None:
    for name, value in env.items():
        clean_env.setenv(name, value)
    assert main(["bridge"]) == 2
    assert capsys.readouterr().err == f"dagbridge: invalid setting settings: {message}\n"


def test_a_misspelt_variable_is_reported_with_the_setting_it_resembles(clean_env, capsys) -> None:
    clean_env.setenv("DAGBRIDGE_METRICS_PROT", "9464")
    clean_env.setenv("DAGBRIDGE_LOG_FORMAT", "bad")  # stop right after the settings are read
    assert main(["worker"]) == 2
    assert capsys.readouterr().err.splitlines()[0] == (
        "dagbridge: warning: DAGBRIDGE_METRICS_PROT is not a setting (did you mean DAGBRIDGE_METRICS_PORT?)"
    )
