"""One settings object for the whole service (environment variables ``LUDUS_*`` and an optional ``.env``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError
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
    delivery_limit: int = Field(c.DELIVERY_LIMIT, ge=1)
    max_concurrent_jobs: int = Field(1, ge=1)
    job_lease_s: float = Field(120.0, gt=0, description="a running job's lease; renewed by its heartbeat")
    shutdown_grace_s: float = Field(60.0, ge=0)
    progress_min_interval_s: float = Field(0.5, ge=0, description="rate limit of progress events per job")

    # --- http ---
    http_host: str = "0.0.0.0"
    http_port: int = Field(c.DEFAULT_HTTP_PORT, ge=0, le=65535, description="0 = any free port")

    # --- lifecycle: retention and the scheduler (`ludus models prune`, `ludus schedule`) ---
    retention_models_days: float = Field(90.0, ge=0, description="prune inactive model versions older than this")
    retention_studies_days: float = Field(30.0, ge=0, description="prune finished jobs' Optuna studies older than "
                                                                 "this")
    schedule_file: Path | None = Field(None, description="the schedule (default: schedule.yaml of trials/)")
    schedule_enabled: bool = Field(False, description="`ludus head`/`ludus worker` also run the scheduler")
    schedule_catchup_s: float = Field(6 * 3600.0, ge=0, description="slots missed (downtime) within this "
                                                                      "window still fire")

    # --- autoscaling (queue depth -> Ray resource requests) ---
    autoscale_enabled: bool = False
    autoscale_jobs_per_gpu: float = Field(1.0, gt=0)
    autoscale_min_gpus: int = Field(0, ge=0)
    autoscale_max_gpus: int = Field(8, ge=0)
    autoscale_cooldown_s: float = Field(60.0, ge=0)

    def masked(self) -> dict[str, Any]:
        """Settings as a dict with every password replaced by ***."""
        out = self.model_dump(mode="json")
        for key in ("database_url", "amqp_url"):
            out[key] = mask_url(out[key])
        return out


def mask_url(url: str) -> str:
    """Hide the password of a URL (``scheme://user:***@host``)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user, has_pw, _ = creds.partition(":")
    return f"{scheme}://{user}{':***' if has_pw else ''}@{host}"


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
