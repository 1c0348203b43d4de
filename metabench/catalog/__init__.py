"""The survey catalog: ingest catalog/ into SQLite, then list, search, show, tabulate and export it.

Headless (no rich, typer, textual or torch): the CLI and the TUI's worker threads call these.
Call `ensure_catalog(db)` once per database before the queries.
"""

from __future__ import annotations

from metabench.catalog.exports import FORMATS, export, survey_table_markdown, write_export
from metabench.catalog.ingest import ensure_catalog, ingest
from metabench.catalog.model import (
    FAMILIES,
    FAMILY_LABELS,
    CatalogValidationError,
    Cell,
    FacetCount,
    Facets,
    IngestReport,
    Paper,
    PaperRecord,
    SurveyRow,
    SurveyTable,
    Technique,
    family_heading,
)
from metabench.catalog.queries import (
    application_names,
    closest_cite_key,
    facets,
    get_paper,
    list_cells,
    survey_table,
)
from metabench.catalog.search import search_papers

__all__ = [
    "FAMILIES",
    "FAMILY_LABELS",
    "FORMATS",
    "CatalogValidationError",
    "Cell",
    "FacetCount",
    "Facets",
    "IngestReport",
    "Paper",
    "PaperRecord",
    "SurveyRow",
    "SurveyTable",
    "Technique",
    "application_names",
    "closest_cite_key",
    "ensure_catalog",
    "export",
    "facets",
    "family_heading",
    "get_paper",
    "ingest",
    "list_cells",
    "search_papers",
    "survey_table",
    "survey_table_markdown",
    "write_export",
]
