"""The application: configuration, CLI and (later) the live node."""
