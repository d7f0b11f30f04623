"""How the orchestrator reaches the platform: commands here or over SSH (`hostexec`), HTTP with
hard timeouts (`http`). No verdicts: callers judge what comes back."""
