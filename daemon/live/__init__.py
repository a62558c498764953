"""The live node: one asyncio event loop around the same Engine that replays history.

Feeds, broker streams, control and scheduler jobs put events on one bounded queue; one pump task
takes them off in order, journals each, and is the only caller of ``Engine.handle``.
"""
