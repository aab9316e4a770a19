"""Generate the Python protobuf and gRPC modules from proto/**/*.proto.

The generated modules are committed so a checkout imports without grpcio-tools;
`python -m proto.generate --check` fails when they are stale (the test suite runs it).
"""

import argparse
import filecmp
import pathlib
import shutil
import sys
import tempfile

import grpc_tools
from grpc_tools import protoc

PROTO_DIR = pathlib.Path(__file__).resolve().parent
REPO_ROOT = PROTO_DIR.parent


def proto_files() -> list[pathlib.Path]:
    return sorted(PROTO_DIR.rglob("*.proto"))


def generate(out_dir: pathlib.Path) -> None:
    """Compile every .proto under proto/ into out_dir, mirroring the repo layout (proto/flow/...)."""
    include = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    files = [str(p.relative_to(REPO_ROOT)) for p in proto_files()]
    args = ["protoc", f"-I{REPO_ROOT}", f"-I{include}", f"--python_out={out_dir}",
            f"--pyi_out={out_dir}", f"--grpc_python_out={out_dir}", *files]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed on {files}")
    for package_dir in {out_dir / pathlib.Path(f).parent for f in files}:
        (package_dir / "__init__.py").touch()


def generated_files(root: pathlib.Path) -> list[pathlib.Path]:
    # .py and .pyi: the checkout's compiled __pycache__/*.pyc are not generated code
    return sorted(p.relative_to(root) for p in root.rglob("*_pb2*.py*") if p.suffix in (".py", ".pyi"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the committed code is stale")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_root = pathlib.Path(tmp)
        generate(tmp_root)
        fresh = generated_files(tmp_root / "proto")
        if args.check:
            current = generated_files(PROTO_DIR)
            stale = [str(f) for f in fresh
                     if not (PROTO_DIR / f).exists()
                     or not filecmp.cmp(tmp_root / "proto" / f, PROTO_DIR / f, shallow=False)]
            extra = sorted(set(map(str, current)) - set(map(str, fresh)))
            if stale or extra:
                print(f"generated protobuf code is stale: {stale + extra}; "
                      "run `python -m proto.generate`", file=sys.stderr)
                return 1
            return 0
        for f in fresh:
            shutil.copyfile(tmp_root / "proto" / f, PROTO_DIR / f)
    print(f"generated {len(fresh)} files under {PROTO_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
