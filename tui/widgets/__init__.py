"""The TUI's widgets; each reads a typed reactive attribute and never the archive."""
