import click
from click.testing import CliRunner

from afscope.cli import main
from afscope.errors import DataError


def test_afscope_errors_exit_2_with_the_message_verbatim():
    @click.command("boom")
    def boom() -> None:
        raise DataError("bench:train: record 3: field 'text' [empty] :smile:")

    main.add_command(boom)
    try:
        result = CliRunner().invoke(main, ["boom"])
    finally:
        main.commands.pop("boom")
    assert result.exit_code == 2
    assert "bench:train: record 3: field 'text' [empty] :smile:" in result.stderr
    assert "Traceback" not in result.output


def test_help_lists_the_components():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in ("data", "models", "extract", "demo"):
        assert name in result.output
