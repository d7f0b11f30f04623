"""The schedules and sensors that keep the platform checked (`automation:`), and the
move of their keys out of `smoke:`. No Dagster imports."""

import warnings
from typing import Any

from pydantic import Field

from mlops_assets.catalog.schema.fields import _Strict


class Automation(_Strict):
    """The schedules and sensors that keep the platform checked (light checks, nightly
    validation, node and orphan sensors, smoke re-runs when a container changes) start
    RUNNING, so scheduled checks happen without anyone switching them on in the UI; one key
    turns them all off (each can still be toggled in the UI)."""

    running: bool = True
    light_checks_cron: str = Field(
        default="*/15 * * * *", description="schedule of the light checks"
    )
    full_validation_cron: str = Field(default="0 2 * * *", description="nightly full validation")


#: Keys that moved from `smoke:` to `automation:` with the cross-domain schedules
#: (defs/automation); a catalog that still writes them under `smoke:` loads, with a warning.
MOVED_TO_AUTOMATION = ("light_checks_cron", "full_validation_cron")


def _move_crons(data: Any) -> Any:
    """`smoke.<cron>` (the old place) becomes `automation.<cron>`, with a FutureWarning that
    names the new key; both places set to different values is an error, not a guess."""
    if not isinstance(data, dict) or not isinstance(data.get("smoke"), dict):
        return data
    old = {k: data["smoke"][k] for k in MOVED_TO_AUTOMATION if k in data["smoke"]}
    if not old:
        return data
    automation = data.get("automation")
    automation = dict(automation) if isinstance(automation, dict) else {}
    clash = [k for k, v in old.items() if k in automation and automation[k] != v]
    if clash:
        raise ValueError(
            f"{', '.join(f'smoke.{k}' for k in clash)} and automation.{clash[0]} disagree: "
            "the schedules moved to automation:, keep only that one"
        )
    warnings.warn(
        f"catalog: {', '.join(f'smoke.{k}' for k in old)} moved to "
        f"{', '.join(f'automation.{k}' for k in old)}; the old keys still work but are deprecated",
        FutureWarning,
        stacklevel=2,
    )
    smoke = {k: v for k, v in data["smoke"].items() if k not in old}
    return {**data, "smoke": smoke, "automation": {**old, **automation}}
