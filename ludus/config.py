"""One settings object for the whole service (environment variables ``LUDUS_*`` and an optional ``.env``)."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, unquote

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ludus import constants as c
from ludus.errors import InputError


class Settings(BaseSettings):
    """Effective configuration. Secrets (passwords inside URLs) are masked by :meth:`masked`."""

    model_config = SettingsConfigDict(env_prefix="LUDUS_", env_file=".env", extra="ignore")

    # --- storage ---
    database_url: str = Field("sqlite:///ludus.db", description="SQLAlchemy URL of the Ludus database")
    data_dir: Path = Field(Path(".ludus"), description="artifacts: ONNX models, study exports")
    trials_dir: Path | None = Field(None, description="declarative strategy spaces and example jobs (trials/)")

    # --- compute ---
    ray_address: str | None = Field(None, description="address of an existing Ray cluster; unset = local Ray")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    gpus_per_trial: float = Field(0.25, ge=0, description="fractional GPUs each trial actor asks Ray for")
    cpus_per_actor: float = Field(1.0, gt=0)
    max_actors: int = Field(8, ge=1, description="upper bound of trial actors per job")

    # --- broker ---
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
    jobs_exchange: str = c.JOBS_EXCHANGE
    jobs_queue: str = c.JOBS_QUEUE
    dead_letter_exchange: str = c.DEAD_LETTER_EXCHANGE
    dead_letter_queue: str = c.DEAD_LETTER_QUEUE
    events_exchange: str = c.EVENTS_EXCHANGE
    results_queue: str | None = Field(
        None,
        description="durable queue holding every result message (default: "
        "ludus.results; <events exchange>.results for another "
        "events exchange)",
    )
    results_queue_max_length: int = Field(c.RESULTS_QUEUE_MAX_LENGTH, ge=1)
    delivery_limit: int = Field(c.DELIVERY_LIMIT, ge=1)
    max_concurrent_jobs: int = Field(1, ge=1)
    job_lease_s: float = Field(120.0, gt=0, description="a running job's lease; renewed by its heartbeat")
    shutdown_grace_s: float = Field(60.0, ge=0)
    progress_min_interval_s: float = Field(0.5, ge=0, description="rate limit of progress events per job")

    # --- logging ---
    log_format: Literal[c.LOG_FORMATS] = Field(  # type: ignore[valid-type]  # a Literal of the names' tuple
        "text", description="text lines or one JSON object per line"
    )
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING, ERROR or CRITICAL")

    # --- http ---
    http_host: str = "0.0.0.0"
    http_port: int = Field(c.DEFAULT_HTTP_PORT, ge=0, le=65535, description="0 = any free port")

    # --- lifecycle: retention and the scheduler (`ludus models prune`, `ludus schedule`) ---
    retention_models_days: float = Field(90.0, ge=0, description="prune inactive model versions older than this")
    retention_studies_days: float = Field(30.0, ge=0, description="prune finished jobs' Optuna studies older than this")
    schedule_file: Path | None = Field(None, description="the schedule (default: schedule.yaml of trials/)")
    schedule_enabled: bool = Field(False, description="`ludus head`/`ludus worker` also run the scheduler")
    schedule_catchup_s: float = Field(
        6 * 3600.0, ge=0, description="slots missed (downtime) within this window still fire"
    )

    # --- autoscaling (queue depth -> Ray resource requests) ---
    autoscale_enabled: bool = False
    autoscale_jobs_per_gpu: float = Field(1.0, gt=0)
    autoscale_min_gpus: int = Field(0, ge=0)
    autoscale_max_gpus: int = Field(8, ge=0)
    autoscale_cooldown_s: float = Field(60.0, ge=0)

    @field_validator("log_level", mode="before")
    @classmethod
    def _known_level(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().upper() in c.LOG_LEVELS:
            return value.strip().upper()
        raise ValueError(f"must be one of {', '.join(c.LOG_LEVELS)}")

    def masked(self) -> dict[str, Any]:
        """Settings as a dict with every credential inside a URL replaced by ***."""
        out = self.model_dump(mode="json")
        for key, value in out.items():
            if isinstance(value, str) and "://" in value:
                out[key] = mask_url(value)
        return out


MASK = "***"
# Query parameters that carry a credential (libpq's password/sslpassword, ODBC's PWD, tokens, keys).
_SECRET_NAME = re.compile(
    r"pass|pwd|secret|token|api_?key|access_?key|private_?key|credential|signature", re.IGNORECASE
)
# key=value pairs nested inside a parameter's value, e.g. odbc_connect=DRIVER=...;UID=u;PWD=secret
_NESTED_SECRET = re.compile(r"(?P<key>[^;&=\s]+)=(?P<value>[^;&]*)")


def mask_url(url: str) -> str:
    """The URL with every credential hidden: the password of the userinfo and the value of every query
    parameter that carries one (``?password=``, ``sslpassword``, ``odbc_connect=...;PWD=...``, tokens).

    Only the secrets are rewritten; the rest of the URL stays byte for byte as given."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _mask_pairs(url)
    authority, slash, tail = rest.partition("/")
    if not slash and "?" in authority:
        authority, tail = authority.split("?", 1)
        tail = "?" + tail
        slash = ""
    if "@" in authority:
        creds, _, host = authority.rpartition("@")
        user, has_pw, _ = creds.partition(":")
        authority = f"{user}{':' + MASK if has_pw else ''}@{host}"
    path, qmark, query = tail.partition("?")
    if qmark:
        query, hash_, fragment = query.partition("#")
        query = "&".join(_mask_param(item) for item in query.split("&")) + hash_ + fragment
    return f"{scheme}://{authority}{slash}{path}{qmark}{query}"


def _mask_param(item: str) -> str:
    key, eq, value = item.partition("=")
    if not eq:
        return item
    if _SECRET_NAME.search(unquote(key)):
        return f"{key}={MASK}"
    return f"{key}={_mask_pairs(value)}"


def _mask_pairs(text: str) -> str:
    decoded = unquote(text)

    def one(m: re.Match) -> str:
        return f"{m['key']}={MASK}" if _SECRET_NAME.search(m["key"]) else m.group(0)

    masked = _NESTED_SECRET.sub(one, decoded)
    return quote(masked, safe="=;{} :/@+,*") if masked != decoded else text


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once); a bad value is an InputError naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        raise settings_error(exc) from None


def settings_error(exc: ValidationError) -> InputError:
    """The first broken setting as ``LUDUS_NAME=value: rule``."""
    err = exc.errors()[0]
    name = "LUDUS_" + "_".join(str(p) for p in err.get("loc", ())).upper()
    value = err.get("input")
    if "database_url" in name.lower() or "amqp_url" in name.lower():
        value = mask_url(str(value))
    rule = str(err.get("msg", "invalid")).replace("Input should be", "must be")
    return InputError(name, value, rule)
