"""Pipeline files are validated at load time with errors naming file, line, field and fix."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from etl_platform.errors import SpecError
from etl_platform.spec import PipelineRegistry, PipelineSpec, load_pipeline_file
from etl_platform.spec.ml import TimeWindow
from etl_platform.spec.quality import Rule
from etl_platform.spec.sources import Incremental
from etl_platform.spec.steps import CastStep, FilterStep

VALID = """\
id: orders
group: sales
owner: team:data
source: {type: csv, path: "orders/*.csv"}
transforms:
  - cast: {amount: float}
  - filter: "amount > 0"
destination: {dataset: analytics.orders, write: merge, primary_key: [order_id]}
schedule: {cron: "0 2 * * *", timezone: Europe/Berlin}
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def errors_of(folder: Path) -> str:
    with pytest.raises(SpecError) as caught:
        PipelineRegistry.from_folder(folder)
    return str(caught.value)


def test_valid_file_loads_with_ordered_transforms(tmp_path: Path) -> None:
    spec = load_pipeline_file(write(tmp_path, "orders.yaml", VALID))
    assert spec.id == "orders"
    assert [type(t) for t in spec.transforms] == [CastStep, FilterStep]
    assert spec.destination.primary_key == ["order_id"]
    assert spec.schedule.timezone == "Europe/Berlin"
    assert spec.file == tmp_path / "orders.yaml"


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "broken.yaml", "id: x\nsource: {type: csv\ndestination: {}\n")
    message = errors_of(tmp_path)
    assert "broken.yaml:3: invalid YAML" in message


def test_unknown_key_names_line_and_allowed_keys(tmp_path: Path) -> None:
    write(tmp_path, "p.yaml", VALID.replace("source: {type: csv,", "source: {type: csv, delimeter: ';',"))
    message = errors_of(tmp_path)
    assert "p.yaml:4: source.delimeter: unknown key 'delimeter'" in message
    assert "delimiter" in message.split("allowed keys:")[1]


def test_wrong_type_and_unknown_transform(tmp_path: Path) -> None:
    text = VALID.replace("cast: {amount: float}", "cast: {amount: floaty}").replace('filter: "amount > 0"', "filtr: x")
    write(tmp_path, "p.yaml", text)
    message = errors_of(tmp_path)
    assert "p.yaml:6: transforms[0].cast: unknown type 'floaty'; allowed: string, int, float" in message
    assert "p.yaml:7: transforms[1]: unknown transform 'filtr'" in message


def test_invalid_sql_expression_is_a_load_time_error(tmp_path: Path) -> None:
    write(tmp_path, "p.yaml", VALID.replace('"amount > 0"', '"amount > > 0"'))
    assert "transforms[1].filter: not a valid SQL expression" in errors_of(tmp_path)


def test_merge_without_primary_key_and_bad_cron(tmp_path: Path) -> None:
    text = VALID.replace(", primary_key: [order_id]", "").replace("0 2 * * *", "0 2 * *")
    write(tmp_path, "p.yaml", text)
    message = errors_of(tmp_path)
    assert "write: merge needs `primary_key" in message
    assert "not a 5-field cron expression" in message


def test_unknown_dependency_names_known_pipelines(tmp_path: Path) -> None:
    write(tmp_path, "orders.yaml", VALID + "dependencies: [custmers]\n")
    message = errors_of(tmp_path)
    assert "orders.yaml: dependencies: unknown pipeline 'custmers'; known pipelines: orders" in message


def test_dependency_cycle_is_named(tmp_path: Path) -> None:
    base = "source: {{type: csv, path: x.csv}}\ndestination: {{dataset: a.{id}}}\ndependencies: [{dep}]\n"
    write(tmp_path, "a.yaml", "id: a\n" + base.format(id="a", dep="b"))
    write(tmp_path, "b.yaml", "id: b\n" + base.format(id="b", dep="a"))
    message = errors_of(tmp_path)
    assert "dependency cycle:" in message
    assert "a -> b -> a" in message or "b -> a -> b" in message


def test_duplicate_id_and_duplicate_dataset(tmp_path: Path) -> None:
    write(tmp_path, "one.yaml", VALID)
    write(tmp_path, "two.yaml", VALID)
    message = errors_of(tmp_path)
    assert "duplicate pipeline id 'orders'" in message and "one.yaml" in message and "two.yaml" in message


def test_file_destination_rejects_merge_and_unknown_compression() -> None:
    document = {"id": "x", "source": {"type": "parquet", "path": "a.parquet"}}
    with pytest.raises(ValueError, match="merge needs a warehouse table"):
        PipelineSpec.model_validate(
            {**document, "destination": {"dataset": "a.b", "format": "csv", "write": "merge", "primary_key": ["id"]}}
        )
    with pytest.raises(ValueError, match="compression 'lz4' is not available for csv"):
        PipelineSpec.model_validate({**document, "destination": {"dataset": "a.b", "format": "csv", "compression": "lz4"}})


def test_plain_password_in_sql_url_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\$\{MY_DB_URL\}"):
        PipelineSpec.model_validate(
            {
                "id": "x",
                "source": {"type": "sql", "url": "postgresql://u:secret@h/db", "table": "t"},
                "destination": {"dataset": "a.b"},
            }
        )


def test_python_declared_pipelines_join_the_folder(tmp_path: Path) -> None:
    write(tmp_path, "orders.yaml", VALID)
    report = PipelineSpec(
        id="report",
        source={"type": "sql", "query": "SELECT count(*) AS n FROM analytics.orders"},
        destination={"dataset": "analytics.report", "write": "replace"},
    )
    registry = PipelineRegistry.from_folder(tmp_path, [report])
    # The SQL source reads analytics.orders, so the dependency is found without `dependencies:`.
    assert [p.id for p in registry.upstream("report")] == ["orders"]
    assert registry.levels() == [["orders"], ["report"]]
    assert report.origin == "pipeline 'report' (declared in Python)"


def test_levels_of_the_demo_pipelines() -> None:
    registry = PipelineRegistry.from_folder(Path(__file__).parents[1] / "assets" / "pipelines")
    assert registry.levels() == [["customers", "products", "reviews"], ["orders"], ["customer_value"]]
    assert set(registry.frames) == {"customer_value"}


def test_tags_follow_dagster_rules(tmp_path: Path) -> None:
    write(tmp_path, "p.yaml", VALID + "tags: {domain: sales, cost center: x}\n")
    assert "p.yaml:10: tags.cost center" in errors_of(tmp_path)


def test_frame_source_belongs_to_python_pipelines(tmp_path: Path) -> None:
    write(tmp_path, "p.yaml", "id: p\nsource: {type: frame}\ndestination: {dataset: a.b}\n")
    message = errors_of(tmp_path)
    assert "source type `frame` is for pipelines declared in Python" in message
    assert "@frame_pipeline" in message  # what declares one today


def test_an_expression_cannot_close_itself_and_add_a_query() -> None:
    from tests.conftest import pipeline

    with pytest.raises(SpecError, match="not a valid SQL expression"):
        pipeline(transforms=[{"filter": "amount > 0 UNION ALL SELECT 1"}])


def test_lookbacks_windows_and_freshness_share_one_duration_syntax() -> None:
    week = datetime.timedelta(weeks=1)
    assert Incremental(cursor="at", lookback="1w").lookback_value == week
    assert TimeWindow(column="at", size="1w", every="1d").size_seconds == week.total_seconds()
    assert Rule(rule="Freshness", field="at", max_age="1w").age() == week
    for build in (
        lambda: Incremental(cursor="at", lookback="2 hours"),
        lambda: TimeWindow(column="at", size="1y"),
        lambda: Rule(rule="Freshness", field="at", max_age="soon"),
    ):
        with pytest.raises(ValueError, match="is not a duration such as '90s', '15m', '6h', '2d' or '1w'"):
            build()


def test_rules_with_one_bound_are_described_in_words() -> None:
    from etl_platform.spec.quality import Rule

    assert Rule(rule="RowCount", min=100).describe() == "row count is at least 100"
    assert Rule(rule="Range", field="amount", max=5).describe() == "amount is at most 5"
    assert Rule(rule="Length", field="name", args=[3, 120]).describe() == "name has length between 3 and 120"
