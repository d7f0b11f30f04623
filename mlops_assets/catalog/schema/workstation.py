"""The orchestrator's own machine (`workstation:`): the Python and the tools it needs.
No Dagster imports."""

from pydantic import Field

from mlops_assets.catalog.schema.fields import Version, _Strict


class Workstation(_Strict):
    python_min: Version
    cli_tools: list[str] = Field(min_length=1)
    optional_cli_tools: list[str] = Field(default_factory=list)
    python_packages: list[str] = Field(default_factory=list)
