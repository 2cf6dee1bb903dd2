"""The Textual app that watches a run archive (`evolve tui RUN.db`); it never writes the archive."""
