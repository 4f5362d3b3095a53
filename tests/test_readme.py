"""The README's driver example runs exactly as written, and prints what its comments say."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def _driver_example() -> str:
    section = README.read_text().split("## Writing a driver", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "the README's 'Writing a driver' section has no python code block"
    return blocks[0]


def test_the_readme_driver_example_runs_as_written(tmp_path: Path) -> None:
    code = _driver_example()
    # the comments after the print(...) calls say what each prints; a parenthesis after it is a remark
    expected = [c.split(" (")[0] for c in re.findall(r"^\s*print\(.*\)\s+# (.*)$", code, flags=re.M)]
    assert expected == ["My SR", "[]", "Vdi_does_not_exist", "My SR"]
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == expected
