"""Size of the Windows bundle, worked out from a Linux bundle and the Windows wheels.

The frozen bundle is built here on Linux; the users' installer is built on Windows (the
workflow in .github/workflows/windows-installer.yml, which measures it for real). Between
the two, the pure-Python archive and the data files are the same; what differs is the
binary parts. This script takes the Linux bundle's file list and replaces:

* every distribution with compiled files in the bundle (NumPy, SciPy, PySide6, Pillow,
  Matplotlib, astropy, pydantic-core...): each Linux file the bundle holds (extension
  modules, Qt libraries and plug-ins, the ``*.libs`` folders) is replaced by its
  counterpart from the Windows wheel of the same version (``pip download --platform
  win_amd64``); Qt plug-ins by the Windows plug-ins of the same categories; ICU, X11/Wayland
  plug-ins have none (Qt uses Windows' ICU and the ``windows`` platform);
* the Linux system libraries PyInstaller collects beside libpython (X11/xcb, GLib, D-Bus,
  fontconfig, libstdc++...), which Windows has as part of the OS or does not need, by
  the MSVC runtime DLLs the Qt wheels carry (msvcp140, vcruntime140, concrt140).

Everything else (CPython's runtime and standard-library extensions, the archive, data)
is counted at its Linux size: an assumption, stated in the output.

    python benchmarks/bench_bundle_windows.py [--bundle build/dist/rosace] [--wheels DIR]

Needs the package registry once (``pip download``) unless ``--wheels`` holds the wheels.
Prints a few lines, then ONE JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import zipfile
from importlib.metadata import packages_distributions, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "installer"))
from bundle_filters import QT_UNUSED  # noqa: E402 - found through the path set above

_EXT = re.compile(r"\.(cpython-\d+-[^.]+|abi3)\.so$")


def binary_distributions(bundle: Path) -> dict[str, tuple[str, ...]]:
    """{distribution: its folders in the bundle} for every distribution with compiled files there."""
    owners = packages_distributions()
    found: dict[str, set[str]] = {}
    for folder in (bundle / "_internal").iterdir():
        if not folder.is_dir():
            continue
        name = folder.name.removesuffix(".libs")
        dists = owners.get(name) or owners.get({"pillow": "PIL"}.get(name, name)) or []
        if dists and any(p.suffix in (".so", ".pyd") or ".so." in p.name for p in folder.rglob("*")):
            found.setdefault(dists[0], set()).add(folder.name)
    return {dist: tuple(sorted(folders)) for dist, folders in sorted(found.items())}


def _wheel(dist_dir: Path, name: str) -> Path | None:
    stem = re.sub(r"[-.]+", "_", name).lower()
    hits = [p for p in dist_dir.glob("*win_amd64.whl") if p.name.lower().startswith(f"{stem}-{version(name)}-")]
    return hits[0] if hits else None


def download(dist_dir: Path, names) -> dict[str, Path]:
    """Return {distribution: Windows wheel}, downloading the missing ones with pip."""
    dist_dir.mkdir(parents=True, exist_ok=True)
    missing = [f"{name}=={version(name)}" for name in names if _wheel(dist_dir, name) is None]
    if missing:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        "--platform", "win_amd64", "--python-version", f"{sys.version_info.major}.{sys.version_info.minor}",
                        "--dest", str(dist_dir), *missing], check=True)
    wheels = {name: _wheel(dist_dir, name) for name in names}
    lost = [name for name, wheel in wheels.items() if wheel is None]
    if lost:
        raise SystemExit(f"no Windows wheel for {', '.join(lost)} in {dist_dir}")
    return wheels


def windows_name(relative: str) -> list[str]:
    """Candidate Windows paths (inside the wheel) for a Linux bundle file (inside _internal)."""
    if relative.startswith("PySide6/Qt/lib/"):
        lib = re.sub(r"^lib(.+)\.so\.\d+$", r"\1.dll", relative.rsplit("/", 1)[1])
        return [f"PySide6/{lib}"]
    if re.search(r"/lib[^/]+\.so\.[\d.]+$", relative):  # libshiboken6.abi3.so.6.12 -> shiboken6.abi3.dll
        folder, leaf = relative.rsplit("/", 1)
        return [folder + "/" + re.sub(r"^lib(.+)\.so\.[\d.]+$", r"\1.dll", leaf)]
    if relative.startswith("PySide6/Qt/plugins/"):
        return []  # handled by category below
    if _EXT.search(relative):
        stem = _EXT.sub("", relative)
        return [f"{stem}.cp{sys.version_info.major}{sys.version_info.minor}-win_amd64.pyd", f"{stem}.pyd"]
    return [relative]


def estimate(bundle: Path, wheels: dict[str, Path], replaced: dict[str, tuple[str, ...]]) -> dict:
    internal = bundle / "_internal"
    files = {p.relative_to(internal).as_posix(): p.stat().st_size
             for p in internal.rglob("*") if p.is_file() and not p.is_symlink()}
    programs = sum(p.stat().st_size for p in bundle.iterdir() if p.is_file())
    linux_total = programs + sum(files.values())
    replaced_linux = replaced_windows = 0
    unmatched: list[str] = []
    details = {}
    for dist, folders in replaced.items():
        wheel = zipfile.ZipFile(wheels[dist])
        sizes = {info.filename: info.file_size for info in wheel.infolist()}
        ours = {rel: size for rel, size in files.items() if rel.split("/", 1)[0] in folders}
        lin = sum(ours.values())
        win = 0
        for rel, size in ours.items():
            if rel.split("/", 1)[0].endswith(".libs"):
                continue  # the whole Windows .libs folder is added below
            for candidate in windows_name(rel):
                if candidate in sizes:
                    win += sizes[candidate]
                    break
            else:
                if not rel.startswith("PySide6/Qt/") and rel.endswith(".so"):
                    unmatched.append(rel)
                elif not rel.endswith((".so",)) and ".so." not in rel:
                    win += size  # data files: same on both
        for folder in folders:
            if folder.endswith(".libs"):
                win += sum(s for name, s in sizes.items() if name.startswith(folder + "/"))
        if "PySide6" in folders:
            categories = {rel.split("/")[3] for rel in ours if rel.startswith("PySide6/Qt/plugins/")}
            categories |= {"styles"}  # Windows' native style plug-in (none on Linux)
            for name, s in sizes.items():
                parts = name.split("/")
                if (len(parts) == 4 and parts[1] == "plugins" and parts[2] in categories and name.endswith(".dll")
                        and not any(d in name for d in QT_UNUSED)):
                    win += s
        replaced_linux += lin
        replaced_windows += win
        details[dist] = {"linux_mb": round(lin / 1e6, 1), "windows_mb": round(win / 1e6, 1)}
    # Linux system libraries collected at the top of _internal (not CPython's own runtime).
    runtime = re.compile(r"^(libpython|libcrypto|libssl|libsqlite3|libffi|libz\.|libbz2|liblzma|libexpat|libmpdec|libuuid)")
    system = {rel: size for rel, size in files.items() if "/" not in rel and ".so" in rel and not runtime.match(rel)
              and not rel.startswith(("lib-dynload",)) and not _EXT.search(rel)}
    system_linux = sum(system.values())
    # The MSVC runtime DLLs that Qt and shiboken need (PySide6 and shiboken6 wheels carry
    # them; PyInstaller collects each once at the top of _internal). NumPy's and SciPy's
    # own renamed copies are already counted in their .libs folders.
    msvc_dlls: dict[str, int] = {}
    for dist in replaced:
        if dist.lower().startswith(("pyside6", "shiboken6")):
            for info in zipfile.ZipFile(wheels[dist]).infolist():
                leaf = info.filename.rsplit("/", 1)[-1].lower()
                if re.match(r"(msvcp140|vcruntime140|concrt140)", leaf) and leaf.endswith(".dll"):
                    msvc_dlls[leaf] = max(msvc_dlls.get(leaf, 0), info.file_size)
    msvc = sum(msvc_dlls.values())
    windows_total = linux_total - replaced_linux + replaced_windows - system_linux + msvc
    return {
        "linux_bundle_mb": round(linux_total / 1e6, 1),
        "windows_estimate_mb": round(windows_total / 1e6, 1),
        "goal_mb": 250,
        "replaced": details,
        "linux_system_libraries_mb": round(system_linux / 1e6, 1),
        "msvc_runtime_mb": round(msvc / 1e6, 1),
        "unmatched_linux_extensions": unmatched[:20],
        "assumption": "CPython's runtime, the archive and data files counted at their Linux size",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "build" / "dist" / "rosace")
    parser.add_argument("--wheels", type=Path, default=ROOT / "build" / "windows-wheels",
                        help="folder of the Windows wheels (downloaded there when missing)")
    args = parser.parse_args(argv)
    if not (args.bundle / "_internal").is_dir():
        print(f"no bundle at {args.bundle}: build it first (python installer/build.py --no-installer)")
        return 2
    replaced = binary_distributions(args.bundle)
    result = estimate(args.bundle, download(args.wheels, list(replaced)), replaced)
    for dist, d in result["replaced"].items():
        print(f"{dist:20s} Linux {d['linux_mb']:6.1f} MB  Windows {d['windows_mb']:6.1f} MB")
    print(f"Linux system libraries (none on Windows): {result['linux_system_libraries_mb']} MB")
    print(f"Linux bundle {result['linux_bundle_mb']} MB -> Windows estimate {result['windows_estimate_mb']} MB (goal < 250 MB)")
    if result["unmatched_linux_extensions"]:
        print("no Windows counterpart found for:", ", ".join(result["unmatched_linux_extensions"]))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
