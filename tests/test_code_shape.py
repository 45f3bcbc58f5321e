"""The shape of the code that ARCHITECTURE.md promises: small units, and every exception named with its reason.

No function over 50 lines, no class over 150 lines, no module over 400 lines in ``src/kbench``, unless
ARCHITECTURE.md's table of exceptions names the unit (``kbench/path.py`` or ``kbench/path.py::Name``) and says why.
A listed exception that no longer needs listing is an error too, so the table stays true. (The import layers are
checked by import-linter, `lint-imports`, not here.)
"""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
LIMITS = {"module": 400, "class": 150, "function": 50}


def oversized(src: Path = SRC) -> dict[str, tuple[str, int]]:
    """Every unit over its limit: ``{"kbench/x.py::Name": (kind, lines)}``."""
    found = {}
    for path in sorted(src.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(src).as_posix()
        lines = len(text.splitlines())
        if lines > LIMITS["module"]:
            found[rel] = ("module", lines)
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                kind = "class" if isinstance(node, ast.ClassDef) else "function"
                n = node.end_lineno - node.lineno + 1
                if n > LIMITS[kind]:
                    found[f"{rel}::{node.name}"] = (kind, n)
    return found


def listed_exceptions(text: str) -> dict[str, str]:
    """The rows of the exceptions table: ``| `kbench/x.py::Name` | lines | reason |`` -> {unit: reason}."""
    section = text.split("## Exceptions to the size limits", 1)
    rows = re.findall(r"^\|\s*`([^`]+)`\s*\|[^|]*\|\s*([^|]*?)\s*\|\s*$", section[1] if len(section) > 1 else "", re.M)
    return {unit: reason for unit, reason in rows}


def test_every_oversized_unit_is_a_named_exception_with_a_reason():
    listed = listed_exceptions((ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8"))
    found = oversized()
    unlisted = {u: v for u, v in found.items() if u not in listed}
    assert not unlisted, f"over the limits {LIMITS} and not in ARCHITECTURE.md's exceptions: {unlisted}"
    assert all(len(reason) >= 20 for reason in listed.values()), "each exception needs its reason"
    stale = sorted(set(listed) - set(found))
    assert not stale, f"listed as exceptions in ARCHITECTURE.md but within the limits now (remove them): {stale}"


def test_the_checker_finds_a_long_function_and_reads_the_table(tmp_path):
    pkg = tmp_path / "kbench"
    pkg.mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(51))
    (pkg / "long.py").write_text(f"def f():\n{body}\n\n\ndef g():\n    return 1\n")
    assert oversized(tmp_path) == {"kbench/long.py::f": ("function", 52)}
    table = "## Exceptions to the size limits\n\n| unit | lines | why |\n|---|---|---|\n" \
            "| `kbench/long.py::f` | 52 | a table of constants that reads best whole |\n"
    assert listed_exceptions(table) == {"kbench/long.py::f": "a table of constants that reads best whole"}
