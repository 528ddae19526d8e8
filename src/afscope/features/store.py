"""The autointerp steps' file names; rows go through :class:`afscope.rows.JsonlStore`."""

DESCRIPTIONS = "descriptions.jsonl"
CLASSIFICATIONS = "classifications.jsonl"
SCORES = "scores.jsonl"
