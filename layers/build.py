"""Build the Lambda layers reproducibly and check every function against Lambda's size limit.

    python layers/build.py                 # build every layer, then check the budget
    python layers/build.py --layer ml      # build one layer
    python layers/build.py --check-only    # only check the budget of what is already built
    python layers/build.py --compile-package build/package/deployment.zip
                                           # add .pyc to the app's package (make package does)

Each layer is `pip install`ed from python3.12 manylinux x86_64 wheels (never from source,
whatever the build machine is), trimmed of what no import needs (tests, headers, stubs, the
symbol tables of extension modules), byte-compiled by python3.12
with unchecked-hash .pyc (so the Lambda runtime never recompiles: a layer without .pyc costs
~2 s more per cold start) and zipped deterministically: sorted entries, fixed timestamps and
permissions, so the same wheels give the same bytes. Output: build/layers/<name>.zip, the
unzipped tree build/layers/<name>/python, and build/layers/<name>.manifest.txt (versions).

Lambda refuses a function whose package plus layers exceed 250 MB unzipped. The budget check
adds, for each function of .chalice/config.json, the unzipped size of its deployment package
(build/package/deployment.zip from `make package` when present, else the wheels of
requirements.txt plus chalicelib/ and app.py) and of each layer it uses, and fails when any
function is over.

`chalice package` zips app.py, chalicelib/ and the vendored requirements as sources only, and
Lambda's /var/task is read-only, so Python would compile every module a function imports at each
cold start (~65 ms of the worker's first event's own modules, measured on this machine):
`--compile-package` adds the same unchecked-hash .pyc for app.py and chalicelib/.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS_SRC = ROOT / "layers"
BUILD_DIR = ROOT / "build" / "layers"
CHALICE_CONFIG = ROOT / ".chalice" / "config.json"
DEPLOYMENT_ZIP = ROOT / "build" / "package" / "deployment.zip"

# Lambda counts 250 MiB for a function's code plus all its layers, unzipped.
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
PYTHON_VERSION = "3.12"
# Lambda's python3.12 runs on Amazon Linux 2023 (glibc 2.34): every tag up to 2_28 loads there.
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")
# In .chalice/config.json a function names a layer as "pixelake-layer:<name>"; the merge
# template (infra/aws/app-merge.yaml) replaces these markers by the built LayerVersions.
LAYER_MARKER = "pixelake-layer:"
ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)

# What no import needs. Data files (.txt, .rst, .xml, .onnx: sklearn's dataset descriptions, the
# face detector's networks) stay: some of them are read at run time.
TRIM_DIR_NAMES = {"tests", "__pycache__"}
TRIM_SUFFIXES = (".pyi", ".pxd", ".pxi", ".pyx", ".c", ".cpp", ".h", ".hpp", ".f", ".f90", ".a")
TRIM_PATHS = (
    "bin",  # console scripts with the build machine's interpreter in #!
    "numpy/_core/include",  # C headers for building extensions
    "numpy/_core/lib",  # static npymath and pkg-config files, for building only
)


def layer_names() -> list[str]:
    return sorted(p.parent.name for p in LAYERS_SRC.glob("*/requirements.txt"))


def python312() -> str:
    """The interpreter that byte-compiles and import-tests: .pyc are version-specific."""
    if sys.version_info[:2] == (3, 12):
        return getattr(sys, "_base_executable", sys.executable)
    for candidate in [shutil.which("python3.12"), *sorted(Path.home().glob(".pyenv/versions/3.12*/bin/python3.12"))]:
        if (
            candidate
            and subprocess.run([str(candidate), "-c", "pass"], capture_output=True, check=False).returncode == 0
        ):
            return str(candidate)
    raise SystemExit("python3.12 is needed to byte-compile the layers for Lambda's python3.12 runtime")


def pip_install_platform_wheels(requirements: Path, target: Path) -> None:
    platform_args = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",
            "--only-binary=:all:",
            *platform_args,
            "--python-version",
            PYTHON_VERSION,
            "--implementation",
            "cp",
            "--target",
            str(target),
            "-r",
            str(requirements),
        ],
        check=True,
    )


def trim(site: Path) -> int:
    """Delete what no import needs; returns the bytes removed."""
    removed = 0

    def drop(path: Path) -> None:
        nonlocal removed
        if path.is_dir() and not path.is_symlink():
            removed += tree_size(path)
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            removed += path.lstat().st_size
            path.unlink()

    for relative in TRIM_PATHS:
        drop(site / relative)
    for dirpath, dirnames, filenames in os.walk(site, topdown=True):
        for name in [d for d in dirnames if d in TRIM_DIR_NAMES]:
            drop(Path(dirpath) / name)
            dirnames.remove(name)
        for name in filenames:
            if name.endswith(TRIM_SUFFIXES):
                drop(Path(dirpath) / name)
    return removed


def strip_shared_libraries(site: Path) -> int:
    """Drop symbol tables no loader needs from the extension modules (~8 MB a layer); returns
    the bytes saved. Dynamic symbols (PyInit_*) stay. The libraries auditwheel grafted into
    <dist>.libs/ are left alone: patchelf rewrote them, and strip then breaks some (scipy's
    OpenBLAS: "ELF load command address/offset not page-aligned"). Skipped without GNU strip."""
    strip = shutil.which("strip")
    if strip is None or b"GNU" not in subprocess.run([strip, "--version"], capture_output=True, check=False).stdout:
        print("warning: GNU strip not found, shared libraries left unstripped", file=sys.stderr)
        return 0
    libraries = sorted(
        str(p)
        for p in site.rglob("*.so*")
        if p.is_file() and not p.is_symlink() and not any(part.endswith(".libs") for part in p.relative_to(site).parts)
    )
    before = sum(Path(p).stat().st_size for p in libraries)
    for start in range(0, len(libraries), 200):
        subprocess.run([strip, "--strip-unneeded", *libraries[start : start + 200]], check=True)
    return before - sum(Path(p).stat().st_size for p in libraries)


def byte_compile(*paths: Path) -> None:
    # unchecked-hash: the runtime trusts the .pyc without stat()ing the source (the layer is
    # read-only), and the file does not embed a timestamp, so builds stay reproducible.
    subprocess.run(
        [python312(), "-m", "compileall", "-q", "-j0", "--invalidation-mode", "unchecked-hash", *map(str, paths)],
        check=True,
    )


def deterministic_zip(source: Path, archive: Path, prefix: str) -> None:
    """Zip `source` as `prefix/...` (at the top with prefix ""): sorted entries, one timestamp,
    normalised permissions."""
    files = sorted(p for p in source.rglob("*") if p.is_file())
    tmp = archive.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for path in files:
            name = path.relative_to(source).as_posix()
            info = zipfile.ZipInfo(f"{prefix}/{name}" if prefix else name, ZIP_TIMESTAMP)
            executable = path.stat().st_mode & stat.S_IXUSR
            info.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
            info.create_system = 3  # unix, so the permissions above are honoured
            info.compress_type = zipfile.ZIP_DEFLATED
            with path.open("rb") as fh:
                zf.writestr(info, fh.read(), compresslevel=6)
    tmp.replace(archive)


def compile_package(archive: Path) -> int:
    """Byte-compile a deployment package in place (see the module's docstring); the number of
    .pyc files added."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp)
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tree)
        before = sum(1 for _ in tree.rglob("*.pyc"))
        # Our own code only: the vendored requirements' .pyc would add ~11 MB to every function,
        # and the imaging functions have ~7 MB left under the 250 MB limit.
        byte_compile(tree / "app.py", tree / "chalicelib")
        added = sum(1 for _ in tree.rglob("*.pyc")) - before
        deterministic_zip(tree, archive, prefix="")
    return added


def tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def zip_unzipped_size(archive: Path) -> int:
    with zipfile.ZipFile(archive) as zf:
        return sum(info.file_size for info in zf.infolist())


def manifest(site: Path) -> str:
    dists = sorted(p.name[: -len(".dist-info")] for p in site.glob("*.dist-info"))
    return "\n".join(dists) + "\n"


def build_layer(name: str) -> dict:
    requirements = LAYERS_SRC / name / "requirements.txt"
    workdir = BUILD_DIR / name
    site = workdir / "python"  # Lambda puts /opt/python on sys.path
    shutil.rmtree(workdir, ignore_errors=True)
    site.mkdir(parents=True)
    pip_install_platform_wheels(requirements, site)
    installed = tree_size(site)
    trimmed = trim(site) + strip_shared_libraries(site)
    byte_compile(site)
    archive = BUILD_DIR / f"{name}.zip"
    deterministic_zip(site, archive, "python")
    (BUILD_DIR / f"{name}.manifest.txt").write_text(manifest(site))
    sha256 = hashlib.sha256(archive.read_bytes()).hexdigest()
    return {
        "layer": name,
        "installed": installed,
        "trimmed": trimmed,
        "unzipped": zip_unzipped_size(archive),
        "zipped": archive.stat().st_size,
        "sha256": sha256,
    }


def function_layers(config_path: Path = CHALICE_CONFIG) -> dict[str, set[str]]:
    """function name → names of the layers it uses, in any stage of .chalice/config.json."""
    config = json.loads(config_path.read_text())
    uses: dict[str, set[str]] = {"api_handler": set()}
    sections = [config, *config.get("stages", {}).values()]
    for section in sections:
        for function, settings in section.get("lambda_functions", {}).items():
            names = {ref[len(LAYER_MARKER) :] for ref in settings.get("layers", []) if ref.startswith(LAYER_MARKER)}
            uses.setdefault(function, set()).update(names)
    return uses


def function_package_size() -> tuple[int, str]:
    """Unzipped size of the code Chalice deploys to every function, and how it was measured."""
    if DEPLOYMENT_ZIP.exists():
        return zip_unzipped_size(DEPLOYMENT_ZIP), str(DEPLOYMENT_ZIP.relative_to(ROOT))
    deps = BUILD_DIR / "_function-deps"
    shutil.rmtree(deps, ignore_errors=True)
    pip_install_platform_wheels(ROOT / "requirements.txt", deps)
    size = tree_size(deps) + tree_size(ROOT / "chalicelib")
    if (ROOT / "app.py").exists():
        size += (ROOT / "app.py").stat().st_size
    shutil.rmtree(deps)
    return size, "requirements.txt wheels + chalicelib/ (run `make package` to measure the real zip)"


def check_budget(layer_sizes: dict[str, int]) -> list[str]:
    """Print each function's unzipped total; return the functions over Lambda's limit."""
    package, measured = function_package_size()
    print(f"function package: {mb(package)} unzipped ({measured})")
    over = []
    for function, layers in sorted(function_layers().items()):
        missing = sorted(layers - layer_sizes.keys())
        if missing:
            raise SystemExit(f"{function} uses layer(s) {missing} that are not built (run `make layers`)")
        total = package + sum(layer_sizes[name] for name in layers)
        verdict = "OK" if total <= LAMBDA_UNZIPPED_LIMIT else "OVER LIMIT"
        print(
            f"{function:<14} package + {sorted(layers) or 'no layer'}: {mb(total)} of {mb(LAMBDA_UNZIPPED_LIMIT)} {verdict}"
        )
        if total > LAMBDA_UNZIPPED_LIMIT:
            over.append(function)
    return over


def mb(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layer", action="append", choices=layer_names(), help="build only this layer (repeatable)")
    parser.add_argument("--check-only", action="store_true", help="build nothing, check the budget of the built zips")
    parser.add_argument("--compile-package", type=Path, metavar="ZIP", help="add .pyc to the app's deployment zip")
    args = parser.parse_args(argv)
    if args.compile_package:
        print(f"{args.compile_package}: {compile_package(args.compile_package)} .pyc added")
        return 0
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    if not args.check_only:
        for name in args.layer or layer_names():
            report = build_layer(name)
            print(
                f"layer {name}: {mb(report['unzipped'])} unzipped, {mb(report['zipped'])} zipped "
                f"({mb(report['trimmed'])} trimmed of {mb(report['installed'])}), sha256 {report['sha256'][:16]}"
            )
    built = {p.stem: zip_unzipped_size(p) for p in sorted(BUILD_DIR.glob("*.zip"))}
    over = check_budget(built)
    if over:
        print(f"FAIL: over Lambda's 250 MB unzipped limit: {', '.join(over)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
