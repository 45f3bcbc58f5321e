"""What both page generators share: write a generated page, or check that the committed one is what they would write."""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if (ROOT / "src" / "kbench").is_dir():  # document the checkout, not whatever kbench is installed
    sys.path.insert(0, str(ROOT / "src"))


def main(page: Path, text: str, script: str, problems: tuple[str, ...] = ()) -> int:
    """``script [--check]``: write ``text`` to ``page``, or with ``--check`` exit 1 (with a diff) when the committed
    page differs. Either way exit 1 when the generator reported ``problems`` (e.g. an option without help text)."""
    ap = argparse.ArgumentParser(prog=script)
    ap.add_argument("--check", action="store_true", help="compare with the committed page instead of writing it")
    args = ap.parse_args()
    rel = page.relative_to(ROOT)
    for p in problems:
        print(f"{script}: {p}", file=sys.stderr)
    if not args.check:
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(text, encoding="utf-8")
        print(f"wrote {rel}")
        return 1 if problems else 0
    old = page.read_text(encoding="utf-8") if page.exists() else ""
    if old != text:
        diff = list(difflib.unified_diff(old.splitlines(), text.splitlines(), f"{rel} (committed)",
                                         f"{rel} (generated)", lineterm="", n=1))  # fmt: skip
        print("\n".join(diff[:60]) + ("\n..." if len(diff) > 60 else ""), file=sys.stderr)
        print(f"{script}: {rel} is out of date; run `python docs/gen/{script}` and commit it", file=sys.stderr)
        return 1
    print(f"{rel} is up to date")
    return 1 if problems else 0
