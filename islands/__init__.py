"""The programs database: islands, clusters, Boltzmann sampling and resets.

    db = ProgramsDatabase(IslandsConfig(), np.random.default_rng(seed))
    db.register(seed_id, scores, len(seed_source), island=None)  # every island
    sample = db.sample()                       # parents, worst first
    db.register(child_id, child_scores, len(child_source), sample.island)
    resets = db.note_samples(samples_drawn)    # after each batch

Pure Python and numpy: no files, no SQLite; persist `members()` and
`state()` and rebuild with `ProgramsDatabase.restore`.
"""

from islands.cluster import ProgramId, Signature, softmax
from islands.config import ClusterScore, IslandsConfig
from islands.database import (
    EmptyDatabaseError,
    IslandSummary,
    Member,
    ProgramsDatabase,
    Reset,
    RestoreError,
    Sample,
    Scores,
)
from islands.island import EmptyIslandError

__all__ = [
    "ClusterScore",
    "EmptyDatabaseError",
    "EmptyIslandError",
    "IslandSummary",
    "IslandsConfig",
    "Member",
    "ProgramId",
    "ProgramsDatabase",
    "Reset",
    "RestoreError",
    "Sample",
    "Scores",
    "Signature",
    "softmax",
]
