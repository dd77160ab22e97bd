"""The README's Quickstart runs exactly as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def quickstart_code() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Quickstart", 1)
    assert len(section) == 2, "README.md has no '## Quickstart' section"
    body = re.split(r"\n## ", section[1], maxsplit=1)[0]
    match = re.search(r"```python\n(.*?)```", body, flags=re.DOTALL)
    assert match is not None, "the Quickstart section has no ```python block"
    return match.group(1)


def test_quickstart_runs(capsys):
    code = quickstart_code()
    assert "cg.integrate" in code and "GRAFFConv" in code
    namespace: dict = {"__name__": "__readme__"}
    exec(compile(code, str(README) + ":Quickstart", "exec"), namespace)
    printed = capsys.readouterr().out
    # The block prints the final shape and solve statistics, and its own assert held.
    assert "torch.Size([4, 8])" in printed
    assert namespace["sol"].stats.nfe_forward > 0
    assert namespace["euler"].stats.steps_accepted == 4
