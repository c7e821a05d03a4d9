"""Write (or check) `crds/*.yaml` from the models: `python -m trail_operator.crds.generate`.

The YAML is committed so users can `kubectl apply -f crds/` without Python,
which makes drift possible; `--check` (run by `make test`) fails when the files
on disk are not exactly what the models generate. Output is deterministic:
same models, same bytes.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final

import yaml

from trail_operator.crds import ALL_KINDS
from trail_operator.crds.eventdatastore import termination_protection_policy
from trail_operator.crds.schema import build_crd

HEADER: Final = "# generated from src/trail_operator/crds — do not edit; run make crds\n"
TERMINATION_PROTECTION_FILE: Final = "eventdatastore-termination-protection.yaml"
_MAX_DIFF_LINES: Final = 80


def render_yaml(documents: Iterable[dict[str, Any]]) -> str:
    """Documents as one multi-document YAML text, with the generated-file header."""
    bodies = [
        yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100) for doc in documents
    ]
    return HEADER + "---\n".join(bodies)


def render_manifests() -> dict[str, str]:
    """File name -> content of every file this generator owns in `crds/`."""
    files = {f"{kind.plural}.yaml": render_yaml([build_crd(kind)]) for kind in ALL_KINDS}
    files[TERMINATION_PROTECTION_FILE] = render_yaml(termination_protection_policy())
    return dict(sorted(files.items()))


def write_manifests(out: Path) -> list[Path]:
    """Write the files into `out` (created if missing); return the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_manifests().items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale_manifests(out: Path) -> dict[str, str]:
    """File name -> unified diff (on disk -> generated) for each file that differs."""
    stale = {}
    for name, expected in render_manifests().items():
        path = out / name
        actual = path.read_text(encoding="utf-8") if path.exists() else ""
        if actual != expected:
            diff = difflib.unified_diff(
                actual.splitlines(keepends=True),
                expected.splitlines(keepends=True),
                fromfile=f"{path} (on disk)" if path.exists() else f"{path} (missing)",
                tofile=f"{path} (generated)",
            )
            lines = list(diff)
            if len(lines) > _MAX_DIFF_LINES:
                more = len(lines) - _MAX_DIFF_LINES
                lines = [*lines[:_MAX_DIFF_LINES], f"... ({more} more diff lines)\n"]
            stale[name] = "".join(lines)
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trail_operator.crds.generate",
        description="Generate the CRDs and the termination-protection policy from the models.",
    )
    parser.add_argument("--out", type=Path, default=Path("crds"), help="output directory")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if the files are out of date"
    )
    args = parser.parse_args(argv)
    out: Path = args.out
    if args.check:
        stale = stale_manifests(out)
        for diff in stale.values():
            sys.stdout.write(diff)
        if stale:
            print(
                f"{len(stale)} file(s) in {out}/ differ from what src/trail_operator/crds "
                f"generates: {', '.join(stale)}; run `make crds` and commit the result",
                file=sys.stderr,
            )
            return 1
        print(f"{out}/ is up to date")
        return 0
    for path in write_manifests(out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
