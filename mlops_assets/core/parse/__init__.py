"""Pure parsers, one per tool output: text in, typed records out, no I/O and no Dagster.
Unreadable text raises ValueError naming it, so a garbled answer fails a check loudly."""
