"""docs/schema.md stays true to the schema (no database needed).

* Every marketdb object a mapping table names as a target exists: ``table.column``
  in ``marketdb.store.schema.metadata`` (or a column of the ``ticks`` view /
  Alembic's ``alembic_version``), a bare name as a table, index or constraint,
  ``DEFAULT_POLICIES["t"].field`` as a time-series policy setting.
* The mermaid ER diagram has every table of the metadata, no other, the primary
  and foreign key columns of each with the right markers, and exactly one
  relationship line per foreign key (cardinality and identifying-ness included).
* When the seed design documents are at hand (``MARKETDB_SEEDS``, default
  ``../shared/seeds`` beside the repository), every table and column they define has a mapping row
  in that document's section.

The format these tests parse is described at the top of docs/schema.md.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from marketdb.store.migrations.helpers import TICKS_VIEW
from marketdb.store.schema import metadata
from marketdb.store.timeseries import DEFAULT_POLICIES, Policy

DOC = Path(__file__).resolve().parents[2] / "docs" / "schema.md"
#: The seed documents live in the shared folder beside the repository (override: MARKETDB_SEEDS).
SEEDS = Path(os.environ.get("MARKETDB_SEEDS", Path(__file__).resolve().parents[3] / "shared" / "seeds"))
SEED_DOCS = ("000", "001", "002", "003", "004")
TARGET_HEADER = "marketdb target"

IDENT = re.compile(r"[a-z_][a-z0-9_]*")
QUALIFIED = re.compile(r"([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)")
POLICY = re.compile(r'DEFAULT_POLICIES\["([a-z_]+)"\]\.([a-z_]+)')
CODE = re.compile(r"`([^`]+)`")
CELL_SPLIT = re.compile(r"(?<!\\)\|")


# ------------------------------------------------------------------ the schema
def _view_columns(view_sql: str) -> set[str]:
    """Output column names of a simple ``CREATE VIEW .. AS SELECT .. FROM`` statement."""
    select = view_sql.split("SELECT", 1)[1].split("\nFROM", 1)[0]
    names = set()
    for item in select.split(","):
        item = item.strip()
        alias = re.search(r"\bAS\s+(\w+)$", item)
        names.add(alias.group(1) if alias else item.rsplit(".", 1)[-1])
    return names


#: Objects outside the SQLAlchemy metadata that the document may name as targets.
EXTERNAL: dict[str, set[str]] = {
    "ticks": _view_columns(TICKS_VIEW),  # the stable SQL view over trades (migration 0001)
    "alembic_version": {"version_num"},  # Alembic's own bookkeeping table
}


def _schema_names() -> set[str]:
    """Tables, indexes and named constraints of the metadata."""
    names: set[str] = set(metadata.tables)
    for table in metadata.tables.values():
        names.update(str(ix.name) for ix in table.indexes if ix.name)
        names.update(str(c.name) for c in table.constraints if c.name)
    return names


def _check_target(span: str, names: set[str]) -> str | None:
    """Why ``span`` (a code span of a target cell) is not a real marketdb object, or None."""
    if m := QUALIFIED.fullmatch(span):
        table, column = m.groups()
        if table in metadata.tables:
            return None if column in metadata.tables[table].c else f"no column {span}"
        if table in EXTERNAL:
            return None if column in EXTERNAL[table] else f"no column {span}"
        return f"no table {table!r} (in {span})"
    if IDENT.fullmatch(span):
        return None if span in names or span in EXTERNAL else f"no table, index or constraint {span!r}"
    if m := POLICY.fullmatch(span):
        table, field = m.groups()
        if table not in DEFAULT_POLICIES:
            return f"no default policy for {table!r}"
        return None if field in Policy.__dataclass_fields__ else f"Policy has no field {field!r}"
    return None  # free text: values ('1d'), expressions, paths, planned names


# ------------------------------------------------------------ the document
@dataclass(frozen=True)
class Row:
    document: str | None  # "000".."004" inside a "## Document NNN" section, else None
    line: int
    seed: str
    target: str


def _cells(line: str) -> list[str]:
    return [c.strip() for c in CELL_SPLIT.split(line.strip().strip("|"))]


def mapping_rows(text: str) -> list[Row]:
    """Rows of every markdown table whose second header cell is ``marketdb target``."""
    rows: list[Row] = []
    document: str | None = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            m = re.match(r"## Document (\d{3})\b", line)
            document = m.group(1) if m else None
        if line.lstrip().startswith("|") and i + 1 < len(lines):
            header = _cells(line)
            if len(header) >= 2 and header[1].lower() == TARGET_HEADER:
                i += 2  # header and separator
                while i < len(lines) and lines[i].lstrip().startswith("|"):
                    cells = _cells(lines[i])
                    assert len(cells) == len(header), f"docs/schema.md:{i + 1}: {len(cells)} cells"
                    rows.append(Row(document, i + 1, cells[0], cells[1]))
                    i += 1
                continue
        i += 1
    return rows


def seed_key(cell: str) -> str | None:
    """``table`` or ``table.column`` when the seed cell starts with one in backticks."""
    m = re.match(r"`([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)`", cell)
    return m.group(1) if m else None


def mermaid_er(text: str) -> str:
    blocks = re.findall(r"```mermaid\n(.*?)```", text, flags=re.DOTALL)
    er = [b for b in blocks if b.lstrip().startswith("erDiagram")]
    assert len(er) == 1, "docs/schema.md needs exactly one mermaid erDiagram"
    return er[0]


ENTITY = re.compile(r"^\s*([a-z_][a-z0-9_]*)\s*\{\s*$")
ATTRIBUTE = re.compile(r'^\s*(\w+)\s+(\w+)(?:\s+((?:PK|FK|UK)(?:\s*,\s*(?:PK|FK|UK))*))?(?:\s+"[^"]*")?\s*$')
RELATION = re.compile(r'^\s*(\w+)\s+(\|\||\|o)(--|\.\.)o\{\s+(\w+)\s*:\s*"?(\w+)"?\s*$')


def parse_er(block: str) -> tuple[dict[str, dict[str, set[str]]], set[tuple[str, str, str, str, str]]]:
    """Entities (table -> column -> key markers) and relationships of an erDiagram."""
    entities: dict[str, dict[str, set[str]]] = {}
    relations: set[tuple[str, str, str, str, str]] = set()
    current: str | None = None
    for n, line in enumerate(block.splitlines(), 1):
        if not line.strip() or line.strip() in ("erDiagram",) or line.strip().startswith("%%"):
            continue
        if current is not None:
            if line.strip() == "}":
                current = None
                continue
            m = ATTRIBUTE.match(line)
            assert m, f"erDiagram line {n}: not an attribute: {line!r}"
            keys = {k.strip() for k in m.group(3).split(",")} if m.group(3) else set()
            entities[current][m.group(2)] = keys
        elif m := ENTITY.match(line):
            current = m.group(1)
            assert current not in entities, f"entity {current} defined twice"
            entities[current] = {}
        elif m := RELATION.match(line):
            parent, card, style, child, label = m.groups()
            relations.add((parent, child, label, card, style))
        else:
            raise AssertionError(f"erDiagram line {n}: unrecognised: {line!r}")
    return entities, relations


# ------------------------------------------------------------ the seeds
def seed_inventory(text: str) -> dict[str, list[str]]:
    """Tables (and views) and their columns defined by one seed document.

    Understands SQL ``CREATE TABLE`` / ``CREATE MATERIALIZED VIEW`` and markdown
    tables whose header starts with ``Column`` or ``Field`` under a heading that
    names the table (``## 1. assets Table``, ``#### users``, ``### Table: ohlcv``).
    """
    tables: dict[str, list[str]] = {}
    for m in re.finditer(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+)\s*\((.*?)\n\s*\);", text, re.DOTALL):
        columns = []
        for raw in m.group(2).splitlines():
            line = raw.split("--", 1)[0].strip()
            word = line.split(maxsplit=1)[0] if line else ""
            if not word or word.upper() in ("CONSTRAINT", "PRIMARY", "UNIQUE", "FOREIGN", "CHECK"):
                continue
            if col := re.match(r"(\w+)\s+\S", line):
                columns.append(col.group(1))
        tables[m.group(1)] = columns
    for m in re.finditer(r"CREATE MATERIALIZED VIEW (\w+).*?SELECT\n(.*?)\nFROM", text, re.DOTALL):
        columns = []
        for item in m.group(2).splitlines():
            item = item.strip().rstrip(",")
            alias = re.search(r"\bAS\s+(\w+)$", item)
            columns.append(alias.group(1) if alias else item)
        tables[m.group(1)] = columns
    heading: str | None = None
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("#"):
            name = re.sub(r"^#+\s*", "", line).strip()
            name = re.sub(r"^\d+\.\s*", "", name)
            name = re.sub(r"^Table:\s*", "", name)
            name = re.sub(r"\s+Table$", "", name)
            heading = name if re.fullmatch(r"\w+", name) else None
            continue
        cells = _cells(line) if line.lstrip().startswith("|") else []
        if heading and cells and cells[0] in ("Column", "Field") and i + 1 < len(lines):
            columns = []
            for row in lines[i + 2 :]:
                if not row.lstrip().startswith("|"):
                    break
                columns.append(_cells(row)[0])
            tables[heading] = columns
    return tables


def seed_files() -> dict[str, Path]:
    return {p.name[:3]: p for p in sorted(SEEDS.glob("[0-9][0-9][0-9]_*.txt"))}


# ------------------------------------------------------------------ tests
@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def rows(doc: str) -> list[Row]:
    return mapping_rows(doc)


def test_every_seed_document_has_a_mapping_section(rows: list[Row]) -> None:
    per_doc: dict[str | None, int] = defaultdict(int)
    for r in rows:
        if r.document and seed_key(r.seed) and "." in (seed_key(r.seed) or ""):
            per_doc[r.document] += 1
    for document in SEED_DOCS:
        assert per_doc[document] > 0, f"no column mapping rows under '## Document {document}'"


def test_every_mapping_target_exists_in_the_schema(rows: list[Row]) -> None:
    names = _schema_names()
    problems = []
    checked = 0
    for r in rows:
        for span in CODE.findall(r.target):
            checked += 1
            if why := _check_target(span, names):
                problems.append(f"docs/schema.md:{r.line}: {why}")
    assert checked > 200, "suspiciously few targets: has the mapping table format changed?"
    assert not problems, "\n".join(problems)


def test_target_checker_rejects_what_does_not_exist() -> None:
    names = _schema_names()
    assert _check_target("candles.open", names) is None
    assert _check_target("ticks.symbol", names) is None
    assert _check_target("ix_positions_one_open", names) is None
    assert _check_target('DEFAULT_POLICIES["trades"].compress_after', names) is None
    assert _check_target("candles.open_price", names)
    assert _check_target("ohlcv.open", names)
    assert _check_target("ix_tick_data_price", names)
    assert _check_target('DEFAULT_POLICIES["signals"].retain_for', names)
    assert _check_target("interval = '1d'", names) is None  # free text


def test_er_diagram_covers_every_table_and_foreign_key(doc: str) -> None:
    entities, relations = parse_er(mermaid_er(doc))
    assert set(entities) == set(metadata.tables), (
        f"missing from the diagram: {sorted(set(metadata.tables) - set(entities))}; "
        f"not tables: {sorted(set(entities) - set(metadata.tables))}"
    )
    expected_relations = set()
    for name, table in metadata.tables.items():
        attrs = entities[name]
        pk = {c.name for c in table.primary_key.columns}
        fk = {f.parent.name for f in table.foreign_keys}
        for col, keys in attrs.items():
            assert col in table.c, f"diagram: {name}.{col} is not a column"
            assert ("PK" in keys) == (col in pk), f"diagram: PK marker of {name}.{col}"
            assert ("FK" in keys) == (col in fk), f"diagram: FK marker of {name}.{col}"
        assert pk | fk <= set(attrs), f"diagram: {name} lacks key columns {sorted((pk | fk) - set(attrs))}"
        for f in table.foreign_keys:
            col = f.parent
            card = "|o" if col.nullable else "||"
            style = "--" if col.primary_key else ".."
            expected_relations.add((f.column.table.name, name, col.name, card, style))
    missing, extra = sorted(expected_relations - relations), sorted(relations - expected_relations)
    assert relations == expected_relations, f"missing: {missing}; wrong or extra: {extra}"


def test_unique_markers_in_the_diagram_are_unique(doc: str) -> None:
    entities, _ = parse_er(mermaid_er(doc))
    for name, attrs in entities.items():
        table = metadata.tables[name]
        unique_cols: set[str] = set()
        for c in table.constraints:
            if isinstance(c, sa.UniqueConstraint) and len(c.columns) == 1:
                unique_cols.update(col.name for col in c.columns)
        for ix in table.indexes:
            if ix.unique and len(ix.expressions) == 1:
                expression = str(ix.expressions[0])
                unique_cols.update(c.name for c in table.c if re.search(rf"\b{c.name}\b", expression))
        for col, keys in attrs.items():
            if "UK" in keys:
                assert col in unique_cols, f"diagram: {name}.{col} is marked UK but is not unique on its own"


@pytest.mark.skipif(not SEEDS.is_dir(), reason=f"seed documents not found at {SEEDS} (set MARKETDB_SEEDS)")
def test_every_seed_table_and_column_is_mapped(rows: list[Row]) -> None:
    files = seed_files()
    assert set(SEED_DOCS) <= set(files), f"expected seed documents {SEED_DOCS} in {SEEDS}"
    mapped: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        if r.document and (key := seed_key(r.seed)):
            mapped[r.document].add(key)
    missing = []
    total = 0
    for document in SEED_DOCS:
        inventory = seed_inventory(files[document].read_text(encoding="utf-8"))
        assert inventory, f"no tables found in seed document {document}"
        for table, columns in inventory.items():
            assert columns, f"seed {document}: no columns parsed for {table}"
            for key in (table, *(f"{table}.{c}" for c in columns)):
                total += 1
                if key not in mapped[document]:
                    missing.append(f"{document}: {key}")
    assert not missing, "seed tables/columns without a mapping row:\n" + "\n".join(missing)
    assert total > 300
