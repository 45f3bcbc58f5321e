"""The documentation site: it builds with no broken link, and its generated pages are what the code says today."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer

ROOT = Path(__file__).resolve().parents[1]
GEN = ROOT / "docs" / "gen"


def _script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(GEN / name), *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)  # fmt: skip


@pytest.mark.parametrize("name", ["cli_page.py", "schema_page.py", "layers_page.py"])
def test_the_committed_generated_page_is_up_to_date(name):
    done = _script(name, "--check")
    assert done.returncode == 0, done.stderr


def test_the_cli_page_generator_refuses_an_undocumented_option(monkeypatch):
    monkeypatch.syspath_prepend(str(GEN))
    import cli_page

    tiny = typer.Typer(help="A tiny app.")

    @tiny.command()
    def go(documented: int = typer.Option(1, help="Has help."), bare: int = typer.Option(2)) -> None:
        """A command."""

    @tiny.command()
    def other() -> None:
        """Another command, so the app is a group."""

    missing: list[str] = []
    cli_page._walk(typer.main.get_command(tiny), ["tiny"], None, missing)
    assert missing == ["`tiny go` option --bare has no help text"]


def test_every_option_of_every_command_is_on_the_cli_page():
    from kbench.cli.app import app

    page = (ROOT / "docs" / "reference" / "cli.md").read_text(encoding="utf-8")
    group = typer.main.get_command(app)
    ctx = typer.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert f"## kbench {name}" in page
        for param in command.params:
            for opt in param.opts if param.param_type_name == "option" else ():
                assert f"`{opt}`" in page, f"kbench {name} {opt} is not on the CLI page"


@pytest.mark.skipif(shutil.which("mkdocs") is None, reason="mkdocs is not installed (pip install '.[test]')")
def test_the_site_builds_strictly(tmp_path):
    done = subprocess.run(["mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "cli" / "index.html").exists()


def test_the_layers_page_lists_every_registered_twin_and_refuses_one_without_a_docstring(monkeypatch):
    monkeypatch.syspath_prepend(str(GEN))
    import layers_page

    from kbench.model.twins import registry

    text, problems = layers_page.render()
    assert problems == ()
    for name in registry.LAYERS:
        assert f"| `{name}` |" in text, name
    monkeypatch.setitem(registry.LAYERS, "Mystery", lambda call: None)
    _, problems = layers_page.render()
    assert any("Mystery" in p and "no docstring" in p for p in problems)
