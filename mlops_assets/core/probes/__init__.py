"""What asks the platform: each probe takes an injected runner or client and the catalog, runs
read-only commands or requests, and returns a check Outcome. No Dagster imports."""
