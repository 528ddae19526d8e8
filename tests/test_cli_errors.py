"""No raw tracebacks: an unexpected failure is one line plus the path of a log that holds the
traceback (in the failing run's directory), ``-v`` prints it; a missing optional package names the
extra; ``afscope doctor`` lists what is missing for which command and exits non-zero."""

from __future__ import annotations

import importlib.metadata
import json

import click
import pytest
from click.testing import CliRunner

from afscope.cli import main


def invoke_raising(exc: BaseException):
    """Run ``afscope boom``, a command that raises ``exc``, through the real CLI group."""

    @click.command("boom")
    def boom() -> None:
        raise exc

    main.add_command(boom)
    try:
        return CliRunner().invoke(main, ["boom"])
    finally:
        main.commands.pop("boom")


def _boom(*args, **kwargs):
    raise RuntimeError("disk on fire\nsecond line of detail")


@pytest.fixture
def synth_fails(monkeypatch):
    import afscope.data.synth as synth

    monkeypatch.setattr(synth, "generate_corpus", _boom)


def test_unexpected_error_is_one_line_with_the_log_in_the_run_dir(tmp_path, synth_fails):
    out = tmp_path / "run" / "corpus.jsonl"
    result = CliRunner().invoke(main, ["data", "synth", "--n", "30", "--out", str(out)])
    assert result.exit_code == 1
    log = tmp_path / "run" / "error.log"
    assert "Traceback" not in result.output
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert lines[-1].startswith("error: RuntimeError: disk on fire (unexpected; traceback in ")
    assert "".join(result.stderr.split()).endswith(f"{log};-vprintsit)".replace(" ", ""))
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "second line of detail" in text
    assert "_boom" in text  # the frame that raised
    manifest = json.loads((tmp_path / "run" / "corpus.manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["error_log"] == "error.log"


def test_verbose_prints_the_traceback(tmp_path, synth_fails):
    out = tmp_path / "run" / "corpus.jsonl"
    result = CliRunner().invoke(main, ["-v", "data", "synth", "--n", "30", "--out", str(out)])
    assert result.exit_code == 1
    assert "Traceback" in result.stderr and "_boom" in result.stderr


def test_failure_before_any_run_dir_logs_under_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AFSCOPE_CACHE", str(tmp_path / "cache"))

    result = invoke_raising(KeyError("no run dir yet"))
    assert result.exit_code == 1
    logs = list((tmp_path / "cache" / "logs").glob("error-*.log"))
    assert len(logs) == 1 and "KeyError: 'no run dir yet'" in logs[0].read_text()
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("module", "expected"), [
    ("sae_lens", "pip install 'afscope[saelens]'"),
    ("peft.tuners", "the module 'peft' is not installed in"),
])
def test_a_missing_package_is_named(module, expected):
    result = invoke_raising(ModuleNotFoundError(f"No module named {module!r}", name=module))
    assert result.exit_code == 2
    assert expected in " ".join(result.stderr.split())
    assert "Traceback" not in result.output


def test_doctor_json_reports_versions_devices_disk_models_browser_backends(tmp_path, monkeypatch):
    monkeypatch.setenv("AFSCOPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value-123")
    result = CliRunner().invoke(main, ["doctor", "--json", "--runs", str(tmp_path / "runs")])
    assert "sk-secret-value-123" not in result.output
    report = json.loads(result.stdout)
    assert result.exit_code == (0 if report["ok"] else 1)
    by_name = {(c["group"], c["name"]): c for c in report["checks"]}
    for name in ("torch", "transformers", "peft"):
        assert by_name[("package", name)]["found"] == importlib.metadata.version(name)
    assert by_name[("device", "cpu")]["status"] == "ok"
    assert {("disk", "model cache"), ("disk", "run directory")} <= set(by_name)
    assert by_name[("model", "smollm2-135m-instruct")]["found"] == "not converted yet"
    assert ("browser", "chromium") in by_name
    assert by_name[("llm", "openai")]["found"] == "$OPENAI_API_KEY set"


def test_doctor_exits_1_naming_what_is_missing_for_which_command(tmp_path, monkeypatch):
    import afscope.doctor as doctor

    real = importlib.metadata.version

    def version(name: str) -> str:
        if name == "peft":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(doctor.importlib.metadata, "version", version)
    result = CliRunner().invoke(main, ["doctor", "--runs", str(tmp_path)])
    assert result.exit_code == 1
    text = " ".join(result.stderr.split())
    assert "missing: peft (not installed) -> organism train, explain train, lab, demo" in text
