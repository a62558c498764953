"""Streaming features, regime detection and River online learners (pure, no I/O); imports only core."""
