"""JSON Schema validators compiled to Python when the Lambda artifact is built.

``fastjsonschema`` turns a schema into Python source and executes it: about 70 ms for the
suite schema, on every cold start, in the worker that loads the suites. The build
(``make lambda-artifact``) runs this module, which writes each schema's
validator to ``hooks/_validators/v_<digest>.py`` beside the package; ``compileall`` then
makes it bytecode like every other module. At run time :func:`built_validator` finds a
validator by the digest of the schema it is asked for (the schema's content and
fastjsonschema's version), so a schema edited after the build, or a checkout that was
never built, is compiled at run time instead — never validated by a stale one.

    PYTHONPATH=ARTIFACT python -m hooks.core.validators DEST SCHEMA.json [SCHEMA.json ...]

It needs only ``fastjsonschema``: the artifact's C extensions may be built for another
platform than the one running the build.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["PACKAGE", "built_validator", "main", "schema_digest", "write_validators"]

#: The package the build writes the compiled validators to.
PACKAGE = "hooks._validators"


def schema_digest(schema: Any) -> str:
    """What identifies a compiled validator: the schema's content and fastjsonschema's version."""
    from fastjsonschema import VERSION

    canonical = json.dumps([VERSION, schema], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


def built_validator(schema: Any) -> Callable[[Any], Any] | None:
    """The validator the build compiled for exactly ``schema``, or None."""
    try:
        module = importlib.import_module(f"{PACKAGE}.v_{schema_digest(schema)}")
    except ImportError:
        return None
    validator: Callable[[Any], Any] = module.validate
    return validator


def write_validators(schemas: Sequence[Path], dest: Path) -> list[Path]:
    """Compile each schema file to a module in ``dest``, named by :func:`schema_digest`."""
    import fastjsonschema

    dest.mkdir(parents=True, exist_ok=True)
    (dest / "__init__.py").write_text('"""Validators compiled from the JSON Schemas at build."""\n')
    written = []
    for path in schemas:
        schema = json.loads(path.read_text(encoding="utf-8"))
        code = fastjsonschema.compile_to_code(schema)
        found = re.search(r"^def (\w+)\(data", code, re.MULTILINE)
        if found is None:  # pragma: no cover - fastjsonschema always defines one
            raise RuntimeError(f"no validation function was compiled from {path}")
        module = dest / f"v_{schema_digest(schema)}.py"
        module.write_text(f"# Compiled from {path.name} by hooks.core.validators.\n{code}\n\n")
        with module.open("a") as out:
            out.write(f"validate = {found[1]}\n")
        written.append(module)
    return written


def main(argv: Sequence[str]) -> int:
    if len(argv) < 2:
        print(__doc__.split("\n\n")[2].strip(), file=sys.stderr)
        return 2
    for module in write_validators([Path(a) for a in argv[1:]], Path(argv[0])):
        print(module)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
