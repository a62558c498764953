"""Logging setup and alert routing (log sink now; Slack later)."""
