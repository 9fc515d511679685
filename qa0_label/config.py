"""Settings from the environment (and Streamlit secrets when running inside the app)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATABASE_URL = "sqlite:///db/qa0.sqlite"


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not a number") from None


@dataclass(frozen=True)
class Settings:
    """Tunable behaviour of the labelling workflow; defaults are README's settings table."""

    database_url: str = DEFAULT_DATABASE_URL
    model_dir: Path = Path("db/models")
    lease_minutes: float = 15.0
    overlap_share: float = 0.10
    random_share: float = 0.10
    gold_share: float = 0.02
    auto_retrain_every: int = 20
    min_labels_to_train: int = 20
    extra: dict[str, str] = field(default_factory=dict)


def database_url(cli_value: str | None = None) -> str:
    """The database URL: explicit value, else QA0_DATABASE_URL, else the embedded SQLite file."""
    if cli_value:
        return cli_value
    return os.environ.get("QA0_DATABASE_URL") or DEFAULT_DATABASE_URL


def load_settings(cli_db: str | None = None) -> Settings:
    """Read settings from the environment; unset values keep their defaults."""
    url = database_url(cli_db)
    model_dir = Path(os.environ.get("QA0_MODEL_DIR") or _default_model_dir(url))
    return Settings(
        database_url=url,
        model_dir=model_dir,
        lease_minutes=_env_float("QA0_LEASE_MINUTES", 15.0),
        overlap_share=_env_float("QA0_OVERLAP_SHARE", 0.10),
        random_share=_env_float("QA0_RANDOM_SHARE", 0.10),
        gold_share=_env_float("QA0_GOLD_SHARE", 0.02),
        auto_retrain_every=int(_env_float("QA0_AUTO_RETRAIN_EVERY", 20)),
        min_labels_to_train=int(_env_float("QA0_MIN_LABELS", 20)),
    )


def _default_model_dir(url: str) -> Path:
    # Keep model artifacts beside a SQLite file so that a temporary database gets temporary models.
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return Path(url[len("sqlite:///") :]).parent / "models"
    return Path("db/models")
