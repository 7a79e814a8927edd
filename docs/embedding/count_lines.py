"""Counts the lines of the side-by-side examples in docs/embedding.md: code lines (not blank,
not a comment, not a docstring); for C, the lines that call the library; for Python, the
lines of the test's body (after its `def` line, helpers it calls not included). Run from the
repository's root: python3 docs/embedding/count_lines.py"""
import re
import sys
from pathlib import Path

FILES: dict[str, "str | None"] = {
    "examples/c/workers.c": r"\bgosuv_\w+\(",
    "docs/embedding/task_reproc.c": r"\breproc_\w+\(",
    "docs/embedding/test_gosuv.py": None,
    "docs/embedding/test_mirakuru.py": None,
    "docs/embedding/test_xprocess.py": None,
}


def code_lines(path: Path) -> list[str]:
    text = path.read_text()
    if path.suffix == ".c":
        text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
        lines = [l.split("//")[0] for l in text.splitlines()]
    else:
        text = re.sub(r'""".*?"""', "", text, flags=re.S)
        lines = [l for l in text.splitlines() if not l.strip().startswith("#")]
    return [l for l in lines if l.strip()]


def main() -> int:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".")
    print(f"{'file':34} {'code lines':>10} {'calls (C) / test body (Python)':>31}")
    for name, calls in FILES.items():
        lines = code_lines(root / name)
        if calls is not None:
            counted = sum(1 for l in lines if re.search(calls, l))
        else:
            start = next(i for i, l in enumerate(lines) if l.startswith("def test_"))
            body = lines[start + 1 :]
            counted = sum(1 for l in body if l.startswith(" "))
        print(f"{name:34} {len(lines):>10} {counted:>31}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
