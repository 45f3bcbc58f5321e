"""The `kbench` app itself: --version, the panels of --help, shell completion."""

from typer.testing import CliRunner

from kbench.cli.app import PANELS, app
from kbench.core.version import __version__

runner = CliRunner()


def test_version_prints_the_package_version_and_exits_0():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"kbench {__version__}"


def test_help_lists_every_command_once_under_its_panel():
    text = runner.invoke(app, ["--help"], terminal_width=100).output
    sections = [line.rstrip(":") for line in text.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert sections[-len(PANELS):] == list(PANELS)
    listed = [line.split()[0] for line in text.split("Measure:", 1)[1].splitlines() if line.startswith("  ")]
    assert sorted(listed) == sorted(n for names in PANELS.values() for n in names)


def test_shell_completion_is_offered():
    text = runner.invoke(app, ["--help"]).output
    assert "--install-completion" in text and "--show-completion" in text
