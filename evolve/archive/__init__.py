"""The run archive: one SQLite file per run, written by the loop alone, read by anyone through this package.

    from evolve.archive import Archive, NewProgram
    archive = Archive.open(Path("runs/demo.db"), readonly=True)
    best = archive.top(1)[0]               # a ProgramRow: best.id, best.score, best.function, ...

The package owns every SQL statement on a run's tables and returns typed,
frozen records (`records.py`). Modules: `schema` (tables, indexes,
migrations of older archives), `records`, `store` (the `Archive` class:
opening, transactions, the loop's writes), `programs` (reading programs),
`queries` (events and the aggregates status and the TUI show), `adapters`
(the LoRA rounds' table).
"""

from evolve.archive.errors import ArchiveError, DiskFull
from evolve.archive.records import (
    AdapterRow,
    ArmFigures,
    BucketBest,
    Counts,
    Event,
    FailureCount,
    FailureRow,
    NewProgram,
    NodeCount,
    OriginCount,
    ProgramBrief,
    ProgramRow,
    RawTable,
    Scores,
    SeedScore,
    TableSizes,
)
from evolve.archive.schema import ADAPTERS_TABLE, SCHEMA_VERSION
from evolve.archive.store import Archive

__all__ = [
    "ADAPTERS_TABLE", "SCHEMA_VERSION", "AdapterRow", "Archive", "ArchiveError", "ArmFigures", "BucketBest", "Counts", "DiskFull", "Event",
    "FailureCount", "FailureRow", "NewProgram", "NodeCount", "OriginCount", "ProgramBrief", "ProgramRow", "RawTable",
    "Scores", "SeedScore", "TableSizes",
]
