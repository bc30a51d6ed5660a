"""Checks what `sam build` produced: every function's handler imports from its built package alone, and nothing
test-only was packaged. Run by `make build` after `sam build`:

    .venv/bin/python tests/packaging/check_build.py --python /path/to/python3.13

For each AWS::Serverless::Function in .aws-sam/build/template.yaml it
- refuses test-only distributions (moto, pytest, ruff, ...) in the built directory;
- checks every compiled distribution was built for the function's architecture and Python;
- imports the handler in a fresh Python 3.13 run with `-I -S -B` (no site-packages, no environment, no bytecode
  written) and only the built directory on sys.path, and checks the handler is callable;
- checks every module of the package (``assets_attach``) has a `.pyc` for Python 3.13 compiled with checked-hash
  invalidation from its own source (Lambda's /var/task is read-only, and `sam deploy` dates every file
  1980-01-01: timestamp-based bytecode would be stale there), and counts the dependencies' modules without one;
- prints the package's size, unzipped and zipped.

The functions run on arm64 while a build machine is often x86_64: the built directory then holds aarch64 binaries
that this machine cannot load. For the import only, the same versions of those few compiled distributions are
installed for this machine into a scratch directory placed before the build directory; everything else, including
every pure-Python dependency and the package itself, still comes from the build.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.built_package import HostBinaries, distributions_in, foreign_binaries
from devstack.cfn_yaml import load_template

BUILD_DIR = Path(".aws-sam/build")
# Distributions that only the tests and tools use; none may reach a Lambda package.
TEST_ONLY = {"moto", "pytest", "ruff", "mypy", "werkzeug", "flask", "psutil", "responses", "pytest-socket"}
# Lambda's limit is 250 MB unzipped. The package is about 50 MiB, most of it botocore; a jump past this budget
# means something that does not belong was packaged.
SIZE_BUDGET_MIB = 80
ARCH_TAGS = {"arm64": "aarch64", "x86_64": "x86_64"}
MIB = 1024 * 1024


@dataclass(frozen=True)
class Function:
    name: str
    code_dir: Path
    handler: str
    architecture: str


def functions_in(template: dict[str, Any], build_dir: Path) -> list[Function]:
    defaults = template.get("Globals", {}).get("Function", {})
    found = []
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = {**defaults, **resource["Properties"]}
        (architecture,) = props.get("Architectures", ["x86_64"])
        found.append(Function(name, build_dir / props["CodeUri"], props["Handler"], architecture))
    return found


def normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def size_of(code_dir: Path) -> tuple[int, int]:
    files = [p for p in sorted(code_dir.rglob("*")) if p.is_file()]
    unzipped = sum(p.stat().st_size for p in files)
    with tempfile.TemporaryDirectory() as scratch:
        archive = Path(scratch) / "package.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
            for path in files:
                bundle.write(path, path.relative_to(code_dir))
        zipped = archive.stat().st_size
    return unzipped, zipped


_IMPORT_PROBE = """
import importlib, json, sys
paths = json.loads(sys.argv[1])
sys.path[:0] = paths
module_name, attribute = sys.argv[2], sys.argv[3]
module = importlib.import_module(module_name)
handler = getattr(module, attribute, None)
outside = sorted(
    name for name, m in list(sys.modules.items())
    if getattr(m, "__file__", None)
    and not m.__file__.startswith(sys.base_prefix)
    and not any(m.__file__.startswith(p) for p in paths)
)
print(json.dumps({"file": module.__file__, "callable": callable(handler), "outside": outside}))
"""


# Run by the functions' Python: each .py's .pyc header against that Python's magic number, the checked-hash flags
# (hash-based 0b01 | check the source 0b10) and the hash of the source beside it.
_BYTECODE_PROBE = """
import importlib.util, json, sys
from pathlib import Path
from typing import Any
root, package = Path(sys.argv[1]), sys.argv[2]
stale, missing = [], []
for source in sorted(root.rglob("*.py")):
    pyc = Path(importlib.util.cache_from_source(str(source)))
    rel = str(source.relative_to(root))
    if not pyc.exists():
        missing.append(rel)
        continue
    head = pyc.read_bytes()[:16]
    expected = importlib.util.MAGIC_NUMBER + (3).to_bytes(4, "little") + importlib.util.source_hash(source.read_bytes())
    if head != expected:
        stale.append(rel)
print(json.dumps({"stale": stale, "missing": missing, "package": package}))
"""


def check_bytecode(function: Function, python: str, package: str = "assets_attach") -> list[str]:
    """Every module of the package compiled (checked-hash, for ``python``); the dependencies' counted."""
    probe = subprocess.run(
        [python, "-I", "-S", "-B", "-c", _BYTECODE_PROBE, str(function.code_dir), package],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(probe.stdout.strip().splitlines()[-1])
    ours = [rel for rel in result["missing"] + result["stale"] if rel.startswith(f"{package}/")]
    print(
        f"  {function.name}: bytecode (checked-hash): {len(result['missing'])} modules without, "
        f"{len(result['stale'])} not matching their source"
    )
    if ours:
        return [f"{function.name}: package modules without checked-hash bytecode of their source: {', '.join(ours)}"]
    return []


def check_function(function: Function, python: str, host_binaries: HostBinaries) -> list[str]:
    problems = []
    if not function.code_dir.is_dir():
        return [f"{function.name}: built code directory {function.code_dir} is missing"]
    dists = distributions_in(function.code_dir)

    test_only = sorted(d.name for d in dists if normalise(d.name) in TEST_ONLY)
    test_only += sorted(p.name for p in function.code_dir.iterdir() if p.is_dir() and normalise(p.name) in TEST_ONLY)
    if test_only:
        problems.append(f"{function.name}: test-only distributions in the package: {', '.join(sorted(set(test_only)))}")

    arch_tag = ARCH_TAGS[function.architecture]
    compiled = [d for d in dists if not d.purelib]
    for dist in compiled:
        if not any(arch_tag in tag and ("cp313" in tag or "abi3" in tag) for tag in dist.tags):
            problems.append(
                f"{function.name}: {dist.name} {dist.version} was built for {', '.join(dist.tags) or 'an unknown'}"
                f" platform, not python3.13 on {function.architecture}"
            )

    paths = [str(function.code_dir.resolve())]
    foreign = foreign_binaries(function.code_dir)
    if foreign:
        paths.insert(0, str(host_binaries.directory_for(foreign)))
        print(
            f"  {function.name}: this machine is {platform.machine()}, the function {function.architecture};"
            f" importing with {platform.machine()} builds of {', '.join(f'{d.name} {d.version}' for d in foreign)}"
        )
    module_name, _, attribute = function.handler.rpartition(".")
    probe = subprocess.run(
        [python, "-I", "-S", "-B", "-c", _IMPORT_PROBE, json.dumps(paths), module_name, attribute],
        capture_output=True,
        text=True,
        # Only a region, as Lambda always sets one: no credentials, no settings. Handlers read nothing at import.
        env={"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"},
        check=False,
    )
    if probe.returncode != 0:
        problems.append(f"{function.name}: importing {module_name} from the build failed:\n{probe.stderr.strip()}")
        return problems
    result = json.loads(probe.stdout.strip().splitlines()[-1])
    if not result["callable"]:
        problems.append(f"{function.name}: {function.handler} is not a callable in the built package")
    if not str(Path(result["file"])).startswith(str(function.code_dir.resolve())):
        problems.append(f"{function.name}: {module_name} was imported from {result['file']}, not from the build")
    if result["outside"]:
        problems.append(f"{function.name}: modules imported from outside the build: {', '.join(result['outside'])}")

    problems += check_bytecode(function, python)
    unzipped, zipped = size_of(function.code_dir)
    print(f"  {function.name}: {function.code_dir} is {unzipped / MIB:.1f} MiB unzipped, {zipped / MIB:.1f} MiB zipped")
    if unzipped > SIZE_BUDGET_MIB * MIB:
        problems.append(f"{function.name}: package is {unzipped / MIB:.1f} MiB, over the {SIZE_BUDGET_MIB} MiB budget")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", required=True, help="a Python 3.13 interpreter (the functions' runtime)")
    parser.add_argument("--build-dir", type=Path, default=BUILD_DIR)
    args = parser.parse_args(argv)

    template_path = args.build_dir / "template.yaml"
    if not template_path.exists():
        print(f"check_build: {template_path} not found; run sam build first", file=sys.stderr)
        return 1
    functions = functions_in(load_template(template_path), args.build_dir)
    if not functions:
        print(f"check_build: no AWS::Serverless::Function in {template_path}", file=sys.stderr)
        return 1

    print(f"check_build: {len(functions)} functions in {template_path}")
    with tempfile.TemporaryDirectory() as scratch:
        host_binaries = HostBinaries(args.python, Path(scratch))
        problems = [problem for f in functions for problem in check_function(f, args.python, host_binaries)]
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    if problems:
        return 1
    print("check_build: every handler imports from its built package; no test-only distribution in it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
