"""The entity tables as other tools read them: DuckDB, Polars and Spark from the documented table
roots, the Spark and Polars examples, the DuckDB join and the identifier queries of
docs/entity-tables.md as they stand, and the Athena DDL there checked by parsing against the
Parquet schema the job writes; the articles table's statuses and its reconciliation with the other
two over a baseline, a newer version, a retraction and a PMC version taken down.

The output is made without Ray (the library calls the job's driver makes per shard) and tagged by a
word list rather than a model: these tests are about the tables, not the tagger. The tools are
real; Spark runs one local session for the module and is skipped only where Java is missing.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import shutil
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from adabiobert import storage
from adabiobert.annotation.tables import (
    ARTICLE_SCHEMA,
    ARTICLE_STATUSES,
    ARTICLES,
    ENTITIES,
    ENTITY_SCHEMA,
    REJECTION_SCHEMA,
    REJECTIONS,
    TABLES,
)
from adabiobert.model.tagger import WordTagging
from adabiobert.pmc.shards import list_shards
from tests.annotation_data import annotate_without_ray, article, bad_articles, doc_blocks, write_shard

pytestmark = pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
RUN_DATE = "2026-11-25"
MENTION = ("pmcid", "start_offset", "end_offset", "label", "mention")


class WordListTagger:
    """Tags every word of :attr:`DISEASES` B-Disease, and ``mellitus`` after one I-Disease."""

    DISEASES = {"cancer", "diabetes", "asthma", "thalassemia"}
    model_id = "word-list@test"

    def tag_words(self, sentences):
        taggings = []
        for words in sentences:
            tags = []
            for word in words:
                if word.lower() in self.DISEASES:
                    tags.append("B-Disease")
                elif word.lower() == "mellitus" and tags and tags[-1] != "O":
                    tags.append("I-Disease")
                else:
                    tags.append("O")
            taggings.append(WordTagging(tuple(tags), tuple(0.9 for _ in tags)))
        return taggings


def good_articles() -> dict[str, list[dict]]:
    """Two shards, one in a subfolder; characters outside ASCII and the BMP before mentions, an
    article without a title, an empty section between two others."""
    return {
        "part-00000.parquet": [
            article("PMC100", "Breast cancer in Ünterwalden", "Patients with colon cancer were treated . Diabetes was common .",
                    [("Methods", "The 𝛼 subunit and thalassemia were studied ."), ("Empty", ""),
                     ("Results", "Cancer and asthma rose .")]),
            article("PMC101", None, "Asthma and cancer .", [("Discussion", "Diabetes mellitus risk rose .")]),
        ],
        "2026/part-00001.parquet": [
            article("PMC200", "Diabetes mellitus in Zürich", "No disease here .", [("Body", "Lung cancer ; 😀 asthma .")]),
        ],
    }


def write_shards(root: Path, shards: dict[str, list[dict]]) -> Path:
    for name, rows in shards.items():
        write_shard(str(root / name), rows)
    return root


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> dict:
    """An output whose run rejected nothing."""
    root = tmp_path_factory.mktemp("tables-clean")
    shards = write_shards(root / "shards", good_articles())
    annotate_without_ray(shards, root / "annotations", WordListTagger(), run_date=RUN_DATE)
    return {"shards": str(shards), "out": str(root / "annotations")}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> dict:
    """An output with mentions and rejections of several reasons (a null pmcid among them)."""
    root = tmp_path_factory.mktemp("tables-mixed")
    shards = write_shards(root / "shards", {**good_articles(), "part-00002.parquet": bad_articles("PMC3")})
    annotate_without_ray(shards, root / "annotations", WordListTagger(), run_date=RUN_DATE)
    return {"shards": str(shards), "out": str(root / "annotations")}


@pytest.fixture(scope="module")
def checkout(tmp_path_factory, mixed) -> Path:
    """A folder standing for the checkout after the quick start: the quick start's annotation
    output (scripts/demo.sh's) is there, a link to the ``mixed`` output, so that the doc's examples
    run exactly as pasted from it."""
    folder = tmp_path_factory.mktemp("checkout")
    path = folder / quick_start_annotations()
    path.parent.mkdir(parents=True)
    path.symlink_to(Path(mixed["out"]).resolve(), target_is_directory=True)
    return folder


@contextlib.contextmanager
def working_directory(folder: Path):
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


@pytest.fixture(scope="module")
def spark(tmp_path_factory, checkout):
    """One local Spark session (1 core, small heap, no UI) for the module, its JVM started in
    :func:`checkout` (Spark resolves a relative path against the JVM's working directory). Reserved
    keywords are enforced, so SQL over the tables shows that no column needs quoting even in Spark's
    strictest mode."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("no Java on this machine (neither `java` on PATH nor JAVA_HOME): Spark needs a JVM, 17 or later")
    from pyspark.sql import SparkSession

    with working_directory(checkout):
        session = (
            SparkSession.builder.master("local[1]").appName("adabiobert-tests")
            .config("spark.driver.memory", "512m")
            # a short-lived JVM on few cores: C1 only and one GC thread start faster than the defaults
            .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
            .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", "1")
            .config("spark.sql.warehouse.dir", str(tmp_path_factory.mktemp("spark-warehouse")))
            .config("spark.sql.ansi.enabled", "true").config("spark.sql.ansi.enforceReservedKeywords", "true")
            .getOrCreate()
        )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


# ---- the three readers, from the documented table roots ----------------------------------------
def plain(row) -> tuple:
    """A row with each timestamp as milliseconds since the epoch: each tool gives its own Python
    form (DuckDB and Polars zone-aware datetimes, Spark naive ones in local time), all one instant."""
    return tuple(round(v.timestamp() * 1000) if isinstance(v, datetime.datetime) else v for v in row)


def duckdb_rows(output: str, table: str, columns) -> list[tuple]:
    import duckdb

    query = f"SELECT {', '.join(columns)} FROM read_parquet('{output}/{table}/*/*.parquet', hive_partitioning = true)"
    return [plain(row) for row in duckdb.connect().execute(query).fetchall()]


def polars_rows(output: str, table: str, columns) -> list[tuple]:
    import polars as pl

    return [plain(row) for row in pl.scan_parquet(f"{output}/{table}/").select(list(columns)).collect().rows()]


def spark_rows(spark, output: str, table: str, columns) -> list[tuple]:
    return [plain(row) for row in spark.read.parquet(f"{output}/{table}").select(*columns).collect()]


def file_rows(output: str, table: str, columns) -> list[tuple]:
    """The rows as written, file by file with pyarrow, ``run_date`` from each file's folder."""
    rows = []
    for info in storage.list_files(storage.join(output, table), (".parquet",)):
        run_date = datetime.date.fromisoformat(re.search(r"run_date=([0-9-]+)", info.uri).group(1))
        for row in pq.ParquetFile(info.uri).read().to_pylist():
            rows.append(plain(run_date if c == "run_date" else row[c] for c in columns))
    return rows


ARTICLE_COLUMNS = (*ARTICLE_SCHEMA.names, "run_date")
TABLE_COLUMNS = pytest.mark.parametrize(("table", "columns"), [
    (ENTITIES, (*MENTION, "section_index", "sentence_index", "shard", "run_date")),
    (REJECTIONS, ("shard", "row_index", "pmcid", "reason", "run_date")),
    (ARTICLES, ARTICLE_COLUMNS),
])
WRITTEN = {ENTITIES: 12, REJECTIONS: 4, ARTICLES: 7}
"""Rows of the ``mixed`` output: the word list's mentions; the four bad articles; the seven shard rows."""


def written_rows(output: str, table: str, columns) -> list[tuple]:
    rows = sorted(file_rows(output, table, columns), key=repr)
    assert len(rows) == WRITTEN[table]
    return rows


@TABLE_COLUMNS
def test_duckdb_and_polars_read_the_rows_as_written_from_the_table_roots(mixed, table, columns):
    written = written_rows(mixed["out"], table, columns)
    assert sorted(duckdb_rows(mixed["out"], table, columns), key=repr) == written  # run_date a date, as in each
    assert sorted(polars_rows(mixed["out"], table, columns), key=repr) == written


@TABLE_COLUMNS
def test_spark_reads_the_rows_as_written_from_the_table_roots(mixed, spark, table, columns):
    assert sorted(spark_rows(spark, mixed["out"], table, columns), key=repr) == written_rows(mixed["out"], table, columns)


def test_spark_refuses_the_output_root_so_the_docs_name_the_table_roots(mixed, spark):
    from pyspark.errors import SparkRuntimeException

    with pytest.raises(SparkRuntimeException, match="CONFLICTING_DIRECTORY_STRUCTURES"):
        spark.read.parquet(mixed["out"]).count()


REJECTION_COLUMNS = [*REJECTION_SCHEMA.names, "run_date"]


def test_a_run_without_rejections_leaves_an_empty_rejections_table(clean):
    import duckdb
    import polars as pl

    assert storage.list_files(storage.join(clean["out"], REJECTIONS), (".parquet",))  # one empty file per shard
    assert duckdb_rows(clean["out"], REJECTIONS, REJECTION_COLUMNS) == []
    assert polars_rows(clean["out"], REJECTIONS, REJECTION_COLUMNS) == []
    assert pl.scan_parquet(f"{clean['out']}/rejections/").collect_schema().names() == REJECTION_COLUMNS
    (why,) = [q for q in doc_blocks("Queries (DuckDB)", "sql") if "rejections/" in q]
    con = duckdb.connect()
    con.execute(f"SET file_search_path = '{clean['out']}'")
    assert con.execute(why).fetchall() == []  # the docs' "why were articles not tagged" query


def test_spark_reads_the_empty_rejections_table(clean, spark):
    assert spark.read.parquet(f"{clean['out']}/rejections").columns == REJECTION_COLUMNS
    assert spark_rows(spark, clean["out"], REJECTIONS, REJECTION_COLUMNS) == []


def test_shard_is_the_uri_each_row_was_read_from(mixed):
    listed = {shard.uri: shard for shard in list_shards(mixed["shards"])}
    assert {s.name for s in listed.values()} == {"part-00000.parquet", "2026/part-00001.parquet", "part-00002.parquet"}
    for table in TABLES:
        for shard, pmcid in {row[:2] for row in file_rows(mixed["out"], table, ("shard", "pmcid"))}:
            assert shard in listed and os.path.isabs(shard)
            if pmcid is not None:
                assert pmcid in pq.read_table(shard, columns=["pmcid"]).column("pmcid").to_pylist()
    entity_shards = {row[0] for row in file_rows(mixed["out"], ENTITIES, ("shard",))}
    assert entity_shards == {uri for uri, s in listed.items() if s.name != "part-00002.parquet"}


def test_the_documented_join_finds_every_mention_in_the_article_text(mixed):
    import duckdb

    (join,) = [q for q in doc_blocks("Queries (DuckDB)", "sql") if "getvariable('shards')" in q]
    con = duckdb.connect()
    con.execute(f"SET file_search_path = '{mixed['out']}'")
    rows = con.execute(join).fetchall()  # (pmcid, section, label, mention, text_at_offsets)
    assert len(rows) == len(file_rows(mixed["out"], ENTITIES, MENTION))
    assert all(mention == text for *_, mention, text in rows)
    assert {"thalassemia", "asthma", "Diabetes mellitus"} <= {row[3] for row in rows}  # after 𝛼, after 😀, two words


# ---- the examples of the doc, run as they stand ------------------------------------------------
REPO = Path(__file__).resolve().parents[1]


def quick_start_annotations() -> str:
    """Where the README's quick start (scripts/demo.sh) writes the annotation output, relative
    to the checkout: ``$OUT/annotations`` with ``OUT``'s default."""
    demo = (REPO / "scripts" / "demo.sh").read_text()
    out = re.search(r"^OUT=\$\{DEMO_OUTPUT:-([^}]+)\}$", demo, re.M).group(1)
    assert re.search(r'jobs/annotate\.py .*--output "\$OUT/annotations"', demo), "the demo's annotate step moved"
    return f"{out}/annotations"


def run_doc_example(heading: str, checkout: Path, **names) -> dict:
    """Run the doc's block exactly as pasted, from :func:`checkout`."""
    (code,) = doc_blocks(heading, "python")
    assert f'output = "{quick_start_annotations()}"' in code, "the example must name the quick start's output"
    namespace = dict(names)
    with working_directory(checkout):
        exec(compile(code, f"docs/entity-tables.md ({heading})", "exec"), namespace)
    return namespace


def test_every_local_path_in_the_docs_is_one_the_quick_start_makes_or_an_output():
    """The doc's commands and examples, pasted after the quick start, find their inputs."""
    text = (REPO / "docs" / "entity-tables.md").read_text(encoding="utf-8")
    paths = set(re.findall(r"(?<![\w/:.])runs/[\w./-]*\w", text))
    inputs = {"runs/demo/pmc-shards", "runs/demo/ncbi-minilm/model", quick_start_annotations()}
    outputs = {"runs/demo/exports", "runs/demo/linking/2026-12", "runs/demo/linking/2027-01"}  # the index builds' --out
    assert paths and paths <= inputs | outputs, sorted(paths - inputs - outputs)


def duckdb_counts(output: str, table: str, column: str) -> dict:
    return Counter(row[0] for row in duckdb_rows(output, table, (column,)))


def status_counts(output: str) -> dict[str, tuple[int, int]]:
    """status -> (article versions, mentions), counted in Python from the rows pyarrow reads."""
    found: dict[str, tuple[int, int]] = {}
    for status, mentions in file_rows(output, ARTICLES, ("status", "mention_count")):
        n, m = found.get(status, (0, 0))
        found[status] = (n + 1, m + mentions)
    return found


def shares(output: str, tagged: int) -> dict[str, float]:
    """label -> the share of the ``tagged`` articles with a mention of it."""
    articles: dict[str, set] = {}
    for label, pmcid in file_rows(output, ENTITIES, ("label", "pmcid")):
        articles.setdefault(label, set()).add(pmcid)
    return {label: len(pmcids) / tagged for label, pmcids in articles.items()}


def test_the_spark_example_in_the_docs_runs_and_agrees_with_duckdb(mixed, spark, checkout):
    example = run_doc_example("Spark", checkout)
    assert example["spark"] is spark  # getOrCreate() found the session
    columns = ("pmcid", "section_index", "start_offset", "end_offset", "label", "mention", "run_date")
    assert sorted(tuple(r) for r in example["mentions"].collect()) == sorted(duckdb_rows(mixed["out"], ENTITIES, columns))
    assert {r["label"]: r["mentions"] for r in example["by_label"].collect()} == duckdb_counts(mixed["out"], ENTITIES, "label")
    assert {r["reason"]: r["articles"] for r in example["why_not_tagged"].collect()} == duckdb_counts(
        mixed["out"], REJECTIONS, "reason")
    assert {r["status"]: (r["articles"], r["mentions"]) for r in example["by_status"].collect()} == status_counts(mixed["out"])
    tagged = status_counts(mixed["out"])["tagged"][0]
    assert {r["label"]: r["share"] for r in example["share_by_label"].collect()} == shares(mixed["out"], tagged)


def test_the_polars_example_in_the_docs_runs_and_agrees_with_duckdb(mixed, checkout):
    example = run_doc_example("Polars", checkout)
    assert dict(example["by_label"].select("label", "mentions").rows()) == duckdb_counts(mixed["out"], ENTITIES, "label")
    assert dict(example["why_not_tagged"].rows()) == duckdb_counts(mixed["out"], REJECTIONS, "reason")
    assert {s: (n, m) for s, n, m in example["by_status"].rows()} == status_counts(mixed["out"])
    tagged = status_counts(mixed["out"])["tagged"][0]
    assert dict(example["share_by_label"].select("label", "share").rows()) == shares(mixed["out"], tagged)


# ---- column names and the Athena DDL -----------------------------------------------------------
ATHENA_DDL_RESERVED = set("""
ALL ALTER AND ARRAY AS AUTHORIZATION BETWEEN BIGINT BINARY BOOLEAN BOTH BY CASE CASHE CAST CHAR COLUMN CONF
CONSTRAINT COMMIT CREATE CROSS CUBE CURRENT CURRENT_DATE CURRENT_TIMESTAMP CURSOR DATABASE DATE DAYOFWEEK DECIMAL
DELETE DESCRIBE DISTINCT DIV DOUBLE DROP ELSE END EXCHANGE EXISTS EXTENDED EXTERNAL EXTRACT FALSE FETCH FLOAT FLOOR
FOLLOWING FOR FOREIGN FROM FULL FUNCTION GRANT GROUP GROUPING HAVING IF IMPORT IN INNER INSERT INT INTEGER INTERSECT
INTERVAL INTO IS JOIN LATERAL LEFT LESS LIKE LOCAL MACRO MAP MORE NONE NOT NULL NUMERIC OF ON ONLY OR ORDER OUT
OUTER OVER PARTIALSCAN PARTITION PERCENT PRECEDING PRECISION PRESERVE PRIMARY PROCEDURE RANGE READS REDUCE REGEXP
REFERENCES REVOKE RIGHT RLIKE ROLLBACK ROLLUP ROW ROWS SELECT SET SMALLINT START TABLE TABLESAMPLE THEN TIME
TIMESTAMP TO TRANSFORM TRIGGER TRUE TRUNCATE UNBOUNDED UNION UNIQUEJOIN UPDATE USER USING UTC_TIMESTAMP VALUES
VARCHAR VIEWS WHEN WHERE WINDOW WITH
""".split())
"""Athena's reserved keywords in DDL statements (docs.aws.amazon.com/athena/latest/ug/reserved-words.html)."""

COLUMN_NAMES = sorted({*ENTITY_SCHEMA.names, *REJECTION_SCHEMA.names, *ARTICLE_SCHEMA.names, "run_date"})


def test_no_column_name_is_reserved_in_duckdb_or_athena_ddl():
    import duckdb

    duckdb_reserved = {k.upper() for (k,) in duckdb.connect().execute(
        "SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category = 'reserved'").fetchall()}
    assert {"END", "START"} <= ATHENA_DDL_RESERVED and "END" in duckdb_reserved  # what version 1 tripped on
    assert [n for n in COLUMN_NAMES if n.upper() in duckdb_reserved | ATHENA_DDL_RESERVED] == []


def test_spark_sql_takes_every_column_unquoted_with_reserved_keywords_enforced(mixed, spark):
    from pyspark.errors import ParseException

    with pytest.raises(ParseException):
        spark.sql("SELECT 1 AS end")  # the session does enforce them
    reserved = {r.keyword for r in spark.sql("SELECT keyword FROM sql_keywords() WHERE reserved").collect()}
    assert [n for n in COLUMN_NAMES if n.upper() in reserved] == []
    for table, schema in ((ENTITIES, ENTITY_SCHEMA), (REJECTIONS, REJECTION_SCHEMA), (ARTICLES, ARTICLE_SCHEMA)):
        spark.read.parquet(f"{mixed['out']}/{table}").createOrReplaceTempView(f"{table}_view")
        assert spark.sql(f"SELECT {', '.join([*schema.names, 'run_date'])} FROM {table}_view LIMIT 1").count() == 1


HIVE_TYPES = {"string": "string", "int32": "int", "int64": "bigint", "float": "float", "double": "double",
              "bool": "boolean", "date32[day]": "date", "timestamp[ms, tz=UTC]": "timestamp"}
"""Arrow type (``str(pa.DataType)``) -> Hive/Athena DDL type."""

DDL = re.compile(
    r"CREATE EXTERNAL TABLE (?:IF NOT EXISTS )?(?P<table>\w+) \((?P<columns>.*?)\)\s*"
    r"PARTITIONED BY \((?P<partitions>.*?)\)\s*STORED AS PARQUET\s*LOCATION '(?P<location>[^']+)'\s*"
    r"TBLPROPERTIES \((?P<properties>.*?)\);\s*$", re.S | re.I)


def parse_columns(text: str) -> list[tuple[str, str]]:
    """``name type, ...`` (names optionally in backticks) -> ``[(name, type)]``, types lower case."""
    columns = []
    for item in text.split(","):
        name, kind = item.split()
        columns.append((name.strip("`"), kind.lower()))
    return columns


def parse_ddl(statement: str) -> dict:
    found = DDL.match(statement.strip())
    assert found, f"not a CREATE EXTERNAL TABLE ... STORED AS PARQUET statement:\n{statement}"
    properties = dict(re.findall(r"'([^']+)'\s*=\s*'([^']*)'", found["properties"]))
    return {"table": found["table"], "columns": parse_columns(found["columns"]),
            "partitions": parse_columns(found["partitions"]), "location": found["location"], "properties": properties}


def java_date_format(pattern: str) -> str:
    """The ``strftime`` form of the Java date patterns a daily projection uses."""
    return pattern.replace("yyyy", "%Y").replace("MM", "%m").replace("dd", "%d")


def test_the_athena_ddl_in_the_docs_matches_the_parquet_files_the_job_writes(mixed):
    statements = [parse_ddl(s) for s in doc_blocks("Athena / Glue", "sql")]
    assert sorted(d["table"] for d in statements) == sorted(TABLES)
    for ddl in statements:
        table = ddl["table"]
        files = storage.list_files(storage.join(mixed["out"], table), (".parquet",))
        written = pq.read_schema(files[0].uri)
        assert ddl["columns"] == [(f.name, HIVE_TYPES[str(f.type)]) for f in written], table
        assert ddl["partitions"] == [("run_date", "string")]
        assert all(name.upper() not in ATHENA_DDL_RESERVED for name, _ in ddl["columns"] + ddl["partitions"])
        props = ddl["properties"]
        assert ddl["location"].startswith("s3://") and ddl["location"].endswith(f"/{table}/")
        assert props["storage.location.template"] == ddl["location"] + "run_date=${run_date}/"
        assert (props["projection.enabled"], props["projection.run_date.type"]) == ("true", "date")
        assert (props["projection.run_date.interval"], props["projection.run_date.interval.unit"]) == ("1", "DAYS")
        first, last = props["projection.run_date.range"].split(",")
        pattern = java_date_format(props["projection.run_date.format"])
        assert last == "NOW" and datetime.datetime.strptime(first, pattern)
        for info in files:  # the projection formats each partition folder as the job names it
            folder = re.search(r"run_date=([^/\\\\]+)", info.uri).group(1)
            assert datetime.datetime.strptime(folder, pattern).strftime(pattern) == folder


# ---- identifiers: the queries of the docs' linking section, on a linked output -----------------------
@pytest.fixture(scope="module")
def linked(tmp_path_factory) -> dict:
    """An output of the phrase tagger linked with the small index (tests/linking_data.py), and the
    small gene-disease lexicon beside it."""
    from tests.linking_data import PhraseTagger, linking_for, small_index, write_linked_shards

    root = tmp_path_factory.mktemp("tables-linked")
    index = small_index(root)
    shards = write_linked_shards(root / "shards")
    annotate_without_ray(shards, root / "annotations", PhraseTagger(), run_date=RUN_DATE, linking=linking_for(index))
    return {"out": str(root / "annotations"), "lexicon": str(root / "vocab" / "gene_disease_associations.tsv")}


def identifier_queries(linked) -> list[list[tuple]]:
    """Every SQL block of the docs' linking section, run from the output root (the lexicon's path
    set to the test's), with its result."""
    import duckdb

    queries = doc_blocks("Identifiers: entity linking (issue 23)", "sql")
    assert len(queries) == 3
    con = duckdb.connect()
    con.execute(f"SET file_search_path = '{linked['out']}'")
    shown = "'../shared/lexicon/gene_disease_associations.tsv'"
    assert shown in queries[2]
    return [con.execute(q.replace(shown, repr(linked["lexicon"]))).fetchall() for q in queries]


def test_the_identifier_queries_of_the_docs_count_articles_per_concept_and_join_the_lexicon(linked):
    diseases, per_label, pairs = identifier_queries(linked)
    # by hand from tests/linking_data.py: Li-Fraumeni syndrome in all three articles; Wilson disease
    # (and WD) three times in PMC1; the composite's two parts once each; PMC3's undefined WD unlinked
    assert diseases == [("OMIM:151623", "Li-Fraumeni syndrome", 3, 3),
                        ("MESH:D006527", "Hepatolenticular Degeneration", 1, 4),
                        ("MESH:D001943", "Breast Neoplasms", 1, 1), ("MESH:D010051", "Ovarian Neoplasms", 1, 1)]
    labels = {}  # label -> (mentions, with an ID, abstained), counted from the rows one by one
    rows = duckdb_rows(linked["out"], ENTITIES, ("label", "concept_id", "link_score"))
    for label, concept, score in rows:
        mentions, found, abstained = labels.get(label, (0, 0, 0))
        labels[label] = (mentions + 1, found + (concept is not None), abstained + (concept is None and score is not None))
    assert {label: (n, linked_, abstained) for label, n, linked_, abstained, _ in per_label} == labels
    assert labels["CellLine"] == (1, 0, 0) and labels["Disease"][2] == 3  # HeLa: no vocabulary; Thalassemia, WD twice
    assert pairs == [("TP53", "Li-Fraumeni syndrome", 3)]  # NCBIGene:7157 with OMIM:151623 in PMC1, PMC2, PMC3


# ---- the articles table over versions ----------------------------------------------------------
DAY = {n: datetime.datetime(2024, 6, 18 + n, tzinfo=datetime.timezone.utc) for n in range(3)}


def versioned(pmcid: str, day: int, text: str | None, **fields) -> dict:
    """A shard row of version ``DAY[day]`` whose abstract is ``text`` (None: a tombstone's no text)."""
    return {**article(pmcid, None, text), "version": DAY[day], **fields}


VERSION_STAGES = [
    {  # the baseline: PMC3 has no mention, PMC5 no text; two PMC versions of PMC7, one shard each
        "part-00000.parquet": [versioned("PMC1", 0, "Cancer ."), versioned("PMC2", 0, "Asthma and cancer ."),
                               versioned("PMC3", 0, "Nothing to find here ."), versioned("PMC4", 0, "Diabetes ."),
                               versioned("PMC5", 0, "")],
        "part-00001.parquet": [versioned("PMC7", 0, "Asthma .", pmc_version=1)],
        "part-00002.parquet": [versioned("PMC7", 0, "Asthma and thalassemia .", pmc_version=2)],
    },
    {  # a newer version of PMC2, and a new article
        "batch=2024-06-19/part-00000.parquet": [versioned("PMC2", 1, "Thalassemia ."), versioned("PMC6", 1, "Cancer .")],
    },
    {  # PMC4 retracted, PMC99 retracted unseen; PMC version 2 of PMC7 taken down: version 1 is current again
        "batch=2024-06-20/part-00000.parquet": [versioned("PMC4", 2, "Retraction .", retracted=True),
                                                versioned("PMC99", 2, "Retraction .", retracted=True)],
        "batch=2024-06-20/removed-00000.parquet": [versioned("PMC7", 2, None, pmc_version=2, removed=True)],
    },
]

EXPECTED_STATUSES = [
    {("part-00000.parquet", "PMC1"): "tagged", ("part-00000.parquet", "PMC2"): "tagged",
     ("part-00000.parquet", "PMC3"): "tagged", ("part-00000.parquet", "PMC4"): "tagged",
     ("part-00000.parquet", "PMC5"): "rejected", ("part-00001.parquet", "PMC7"): "superseded",
     ("part-00002.parquet", "PMC7"): "tagged"},
    {("part-00000.parquet", "PMC2"): "superseded",
     ("batch=2024-06-19/part-00000.parquet", "PMC2"): "tagged", ("batch=2024-06-19/part-00000.parquet", "PMC6"): "tagged"},
    {("part-00000.parquet", "PMC4"): "superseded", ("part-00001.parquet", "PMC7"): "tagged",
     ("part-00002.parquet", "PMC7"): "removed",
     ("batch=2024-06-20/part-00000.parquet", "PMC4"): "retracted",
     ("batch=2024-06-20/part-00000.parquet", "PMC99"): "retracted",
     ("batch=2024-06-20/removed-00000.parquet", "PMC7"): "removed"},
]
"""(shard, pmcid) -> status after each stage: what the stage changed over the one before, worked
out by hand from the rules of pmc/versions.py."""


@pytest.fixture(scope="module")
def versions(tmp_path_factory) -> dict:
    """A shard root grown by two batches, annotated after each (one run per stage, without Ray);
    each stage's articles rows and entity rows, and a copy of the output after stage 1."""
    folder = tmp_path_factory.mktemp("versions")
    root, out = folder / "shards", folder / "annotations"
    stages = []
    for stage, shards in enumerate(VERSION_STAGES):
        write_shards(root, shards)
        counts = annotate_without_ray(root, out, WordListTagger(), run_id=f"run{stage}", run_date=f"2026-11-2{4 + stage}")
        stages.append({"counts": counts, "articles": article_rows(str(root), str(out)),
                       "entities": file_rows(str(out), ENTITIES, ("shard", "pmcid"))})
    return {"root": str(root), "out": str(out), "stages": stages}


def article_rows(root: str, out: str) -> list[dict]:
    """The articles rows as written, ``shard`` as the name under ``root``."""
    rows = []
    for info in storage.list_files(storage.join(out, ARTICLES), (".parquet",)):
        for row in pq.read_table(info.uri).to_pylist():
            rows.append({**row, "shard": storage.relative_to(row["shard"], root)})
    return rows


def shard_row_count(root: str) -> int:
    """Rows in every shard of the root: the articles ingested, tombstones included."""
    return sum(pq.read_metadata(shard.uri).num_rows for shard in list_shards(root))


def test_an_article_tagged_with_no_mention_is_in_articles_as_tagged(versions):
    (row,) = [r for r in versions["stages"][0]["articles"] if r["pmcid"] == "PMC3"]
    assert (row["status"], row["mention_count"], row["row_index"], row["shard"]) == ("tagged", 0, 2, "part-00000.parquet")
    assert not any(pmcid == "PMC3" for _, pmcid in versions["stages"][0]["entities"])
    assert row["version"] == DAY[0] and row["pmc_version"] is None


@pytest.mark.parametrize("stage", range(len(VERSION_STAGES)))
def test_each_stage_gives_every_version_its_status_by_hand(versions, stage):
    expected: dict = {}
    for changes in EXPECTED_STATUSES[:stage + 1]:
        expected.update(changes)
    rows = versions["stages"][stage]["articles"]
    assert {(r["shard"], r["pmcid"]): r["status"] for r in rows} == expected
    assert len(rows) == len(expected)  # one row per version


@pytest.mark.parametrize("stage", range(len(VERSION_STAGES)))
def test_articles_reconcile_with_the_shards_and_the_other_tables_after_each_stage(versions, stage):
    rows, entities = versions["stages"][stage]["articles"], versions["stages"][stage]["entities"]
    root = versions["root"]
    ingested = sum(len(r) for shards in VERSION_STAGES[:stage + 1] for r in shards.values())
    assert len(rows) == ingested
    if stage == len(VERSION_STAGES) - 1:
        assert ingested == shard_row_count(root)  # counted again from the shard files
    by_status = Counter(r["status"] for r in rows)
    assert set(by_status) <= set(ARTICLE_STATUSES)
    assert sum(by_status.values()) == len(rows)  # ingested = tagged + rejected + superseded + retracted + removed
    mentions = Counter((storage.relative_to(shard, root), pmcid) for shard, pmcid in entities)
    tagged = {(r["shard"], r["pmcid"]): r["mention_count"] for r in rows if r["status"] == "tagged"}
    assert set(mentions) <= set(tagged)  # every entity row's article version is tagged
    assert all(tagged[key] == mentions.get(key, 0) for key in tagged)
    assert all(r["mention_count"] == 0 for r in rows if r["status"] != "tagged")
    current = Counter(r["pmcid"] for r in rows if r["status"] in ("tagged", "rejected", "retracted"))
    assert max(current.values()) == 1


def test_rejected_articles_are_the_rejections_with_a_row(versions):
    rejections = file_rows(versions["out"], REJECTIONS, ("shard", "row_index", "pmcid", "reason"))
    articles = [(r["shard"], r["row_index"], r["pmcid"]) for r in versions["stages"][-1]["articles"] if r["status"] == "rejected"]
    assert [(storage.relative_to(s, versions["root"]), i, p) for s, i, p, _ in rejections] == articles == [
        ("part-00000.parquet", 4, "PMC5")]


def test_the_run_counts_add_up_to_the_articles_rows(versions):
    first, second, third = (stage["counts"] for stage in versions["stages"])
    assert first.articles_by_status == {"tagged": 5, "rejected": 1, "superseded": 1}
    assert (first.documents_tagged, first.documents_rejected) == (5, 1)
    assert second.articles_by_status == {"tagged": 2} and second.articles_superseded == 1  # PMC2's old row, amended
    assert third.articles_by_status == {"tagged": 1, "retracted": 2, "removed": 1}  # part-00001 tagged again
    assert (third.articles_superseded, third.articles_removed, third.shards_amended) == (1, 2, 2)


def test_the_three_readers_agree_on_the_articles_table_with_versions(versions, spark):
    written = sorted(file_rows(versions["out"], ARTICLES, ARTICLE_COLUMNS), key=repr)
    assert {row[ARTICLE_COLUMNS.index("pmc_version")] for row in written} == {None, 1, 2}
    assert round(DAY[2].timestamp() * 1000) in {row[ARTICLE_COLUMNS.index("version")] for row in written}
    assert sorted(duckdb_rows(versions["out"], ARTICLES, ARTICLE_COLUMNS), key=repr) == written
    assert sorted(polars_rows(versions["out"], ARTICLES, ARTICLE_COLUMNS), key=repr) == written
    assert sorted(spark_rows(spark, versions["out"], ARTICLES, ARTICLE_COLUMNS), key=repr) == written


def test_the_documented_articles_queries_count_and_reconcile(versions):
    import duckdb

    queries = [q for q in doc_blocks("Queries (DuckDB)", "sql") if "articles/" in q]
    by_status, share, reconciliation = queries
    con = duckdb.connect()
    con.execute(f"SET file_search_path = '{versions['out']}'")
    expected = status_counts(versions["out"])
    assert {s: (n, m) for s, n, m, _ in con.execute(by_status).fetchall()} == expected
    assert [z for s, *_, z in con.execute(by_status).fetchall() if s == "tagged"] == [1]  # PMC3
    assert {label: r for label, _, _, r in con.execute(share).fetchall()} == {
        label: round(v, 3) for label, v in shares(versions["out"], expected["tagged"][0]).items()}
    assert con.execute(reconciliation).fetchall() == [(0, 0)]
