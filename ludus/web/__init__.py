"""The read-only web view over Ludus' database (top layer, beside the CLI and the worker)."""
