"""Enumerate every setting as its environment variable (for docs/configuration.md and its test)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import BaseModel

from lore.config import Settings


@dataclass(frozen=True)
class SettingDoc:
    env: str
    type: str
    default: str
    description: str


def _type_name(annotation: object) -> str:
    if getattr(annotation, "__args__", None):
        text = str(annotation)
    else:
        text = getattr(annotation, "__name__", None) or str(annotation)
    return text.replace("typing.", "").replace("pathlib.", "").replace("NoneType", "None")


def iter_settings(model: type[BaseModel] = Settings, prefix: str = "LORE_") -> Iterator[SettingDoc]:
    """Yield one entry per leaf setting, nested sections joined with ``__``."""
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            yield from iter_settings(ann, f"{prefix}{name.upper()}__")
            continue
        if field.default_factory is not None:
            default = repr(field.default_factory())  # type: ignore[call-arg]
        else:
            default = repr(field.default)
        default = default.replace("PosixPath(", "Path(")
        yield SettingDoc(f"{prefix}{name.upper()}", _type_name(ann), default, field.description or "")


def settings_table() -> str:
    rows = ["| variable | type | default | meaning |", "|---|---|---|---|"]
    for s in iter_settings():
        desc = s.description.replace("|", "\\|")
        default = s.default.replace("|", "\\|")
        rows.append(f"| `{s.env}` | `{s.type}` | `{default}` | {desc} |")
    return "\n".join(rows) + "\n"
