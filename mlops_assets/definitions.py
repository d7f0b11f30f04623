"""The one Definitions object: every domain under defs/, plus the resources the catalog
implies. Heavy libraries stay unimported until a check or asset runs."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from mlops_assets.platform import active, build_resources


@dg.definitions
def defs() -> dg.Definitions:
    loaded = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
    return dg.Definitions.merge(loaded, dg.Definitions(resources=build_resources(active().catalog)))
