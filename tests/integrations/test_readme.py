"""The README's "Use with Lightning / HF Trainer / timm" snippets run as written; descentlab imports
without the frameworks."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from integrations.framework_checks import timm_imports

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Use with Lightning / HF Trainer / timm"


def snippets() -> list[str]:
    text = README.read_text()
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.DOTALL)


def test_the_section_has_one_snippet_per_framework():
    frameworks = [re.search(r"^import (lightning|transformers|timm)", code, re.M) for code in snippets()]
    assert [match.group(1) for match in frameworks if match] == ["lightning", "transformers", "timm"]


@pytest.mark.parametrize("index", range(len(snippets())), ids=["lightning", "huggingface", "timm"])
def test_snippet_runs(index, tmp_path, monkeypatch):
    code = snippets()[index]
    if "import timm" in code and not timm_imports():
        pytest.skip("timm needs a torchvision matching torch: `make test-timm` runs it (see the README)")
    monkeypatch.chdir(tmp_path)  # snippets that write (the Trainer's output_dir) write here
    exec(compile(code, f"README.md snippet {index}", "exec"), {"__name__": "readme_snippet"})


def test_descentlab_imports_without_any_framework():
    code = (
        "import sys, descentlab, descentlab.integrations, descentlab.integrations.timm, "
        "descentlab.integrations.diagnostics; descentlab.create_optimizer; "
        "print(sorted({'lightning', 'transformers', 'accelerate', 'timm'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
