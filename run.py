#!/usr/bin/env python3
"""The README's two commands: ``python3 run.py study`` and ``python3 run.py test`` (ruff, then pytest).

Each creates (or refreshes) the local virtual environment ``.venv`` first,
installing torch as the pip requirement ``$SEQMEM_TORCH`` says (default
``torch==2.13.0``: whatever build pip's configured index serves -- on Linux,
PyPI's default wheel is the CUDA build, several GB) and then seqmem itself in
editable mode with its dev extra.  For the CPU build from PyPI set
``SEQMEM_TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"``.
Only the standard library is used here, so a fresh machine needs nothing but
Python >= 3.11 and pip.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".seqmem-installed"
TORCH = os.environ.get("SEQMEM_TORCH", "torch==2.13.0")


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_environment() -> Path:
    """Create/refresh .venv; reinstall only when pyproject.toml or SEQMEM_TORCH changed."""
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + TORCH.encode()).hexdigest()
    python = venv_python()
    if python.exists() and STAMP.exists() and STAMP.read_text() == wanted:
        return python
    if not python.exists():
        print(f"[seqmem] creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
    print(f"[seqmem] installing {TORCH} and seqmem[dev] (first run takes a few minutes)", flush=True)
    # torch first, as SEQMEM_TORCH asks (its index options apply to it alone): seqmem's own torch
    # requirement is then already met, and pip keeps that build.
    subprocess.run([*pip, *TORCH.split()], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True)
    # pip writes no bytecode where PYTHONDONTWRITEBYTECODE is set, and then every process (each
    # sweep worker, each test subprocess) compiles its imports anew: about 8 s each on 2 cores.
    # A file that does not compile (a package's Python-2 test data) is not our concern: no check.
    site_packages = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    subprocess.run([str(python), "-m", "compileall", "-qq", "-j", "0", site_packages])
    STAMP.write_text(wanted)
    return python


def main(argv: list[str]) -> int:
    # Each command is a list of steps; extra arguments go to the last one (the study or pytest).
    commands = {
        "study": [["-m", "seqmem.cli", "run", "studies/gradient_decay.py", "--preset", "quick"]],
        "test": [["-m", "ruff", "check", "."], ["-m", "ruff", "format", "--check", "."], ["-m", "pytest"]],
    }
    if not argv or argv[0] not in commands:
        print(f"usage: python3 run.py {{{'|'.join(commands)}}} [extra arguments]", file=sys.stderr)
        return 2
    python = ensure_environment()
    env = dict(os.environ, MPLBACKEND="Agg")
    *first, last = commands[argv[0]]
    for step in [*first, [*last, *argv[1:]]]:
        code = subprocess.run([str(python), *step], cwd=ROOT, env=env).returncode
        if code != 0:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
