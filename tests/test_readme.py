"""The README's usage example runs as written."""
import pathlib
import re

import torch

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README.md has no python example"
    for code in blocks:
        scope = {}
        exec(compile(code, str(README), "exec"), scope)
    assert scope["coords"].shape == (1, 2, 2) and scope["pred"].grad is not None
    torch.testing.assert_close(scope["coords"], scope["landmarks"], atol=0.02, rtol=0)
