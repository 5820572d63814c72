"""Print the field names of vLLM's `EngineArgs` dataclass from an installed vLLM's source (no import, no GPU), for
the frozen lists in evalkit/model_adapters/vllm_engine_args.py.

    /work/side/vllm/bin/python scripts/freeze_vllm_engine_args.py   # or: python ... path/to/vllm
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import sys
from pathlib import Path


def engine_arg_fields(arg_utils: Path) -> list[str]:
    """Annotated class-level names of `class EngineArgs` in vllm/engine/arg_utils.py."""
    tree = ast.parse(arg_utils.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "EngineArgs":
            return sorted(
                item.target.id
                for item in node.body
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
            )
    raise SystemExit(f"{arg_utils}: no class EngineArgs")


def main() -> None:
    if len(sys.argv) > 1:
        package = Path(sys.argv[1])
    else:
        spec = importlib.util.find_spec("vllm")
        if spec is None or spec.origin is None:
            raise SystemExit("vLLM is not installed in this Python; pass the vllm package folder")
        package = Path(spec.origin).parent
    version_file = package / "_version.py"
    text = version_file.read_text(encoding="utf-8") if version_file.is_file() else ""
    found = re.search(r"__version__\s*=\s*(?:version\s*=\s*)?['\"]([^'\"]+)['\"]", text)
    version = found.group(1) if found else "?"
    print(json.dumps({"vllm": version, "fields": engine_arg_fields(package / "engine" / "arg_utils.py")}))


if __name__ == "__main__":
    main()
