from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from c360.connectors.files import FileSource
from c360.connectors.mapping import ColumnMapping, load_mapping
from c360.connectors.synthetic import Dataset, generate
from c360.graph.embedded import EmbeddedConfig, EmbeddedStore
from c360.graph.errors import InvalidInputError
from c360.resolution.linker import Linker

FEBRL_MAPPING = """
key: rec_id
fields:
  first_name: given_name
  last_name: surname
  date_of_birth: {column: date_of_birth, format: "%Y%m%d"}
  address_line1: [street_number, address_1]
  city: suburb
  email: email
  national_id: {column: soc_sec_id, kind: ssn}
"""

CSV = """rec_id,given_name,surname,street_number,address_1,suburb,date_of_birth,email,soc_sec_id,extra
rec-1-org,michaela,neumann,8,stanley street,miami,19151111,mn@x.com,5304218,vip
rec-1-dup-0,michaela,neumann,8,stanley st,miami,19151111,MN@X.COM,5304218,
,nokey,row,1,x st,y,19900101,,,
rec-2-org,courtney,painter,12,pinkerton circuit,bega,19130919,no-at-sign,4066625,
rec-3-org,charles,green,38,salkauskas crescent,kela,1913xx19,cg@x.com,4365168
rec-4-org,vanessa,parr,905,macquoid place,south grafton,19710130,vp@x.com,9239102,
"""


@pytest.fixture
def febrl(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "febrl.csv"
    data.write_text(CSV, encoding="utf-8")
    mapping = tmp_path / "febrl.yaml"
    mapping.write_text(FEBRL_MAPPING, encoding="utf-8")
    return data, mapping


def test_csv_with_mapping_rejects_and_warnings(febrl: tuple[Path, Path]) -> None:
    data, mapping = febrl
    source = FileSource(data, "febrl", load_mapping(mapping))
    records = list(source)
    assert [r.key for r in records] == ["rec-1-org", "rec-1-dup-0", "rec-2-org", "rec-4-org"]
    first = records[0]
    assert first.address_line1 == "8 stanley street"
    assert first.date_of_birth == date(1915, 11, 11)
    assert first.national_id == "5304218" and first.national_id_kind == "ssn"
    assert first.attributes == {"extra": "vip"}
    assert records[2].email is None  # no '@': left empty, row kept
    report = source.report
    assert report.rows == 6 and report.records == 4
    assert [(r.row, r.reason) for r in report.rejects] == [
        (4, "missing key (rec_id)"),
        (6, "has 9 fields, the header has 10"),
    ]
    assert report.warnings == {"email": 1}


def test_bad_date_left_empty_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text("key,first_name,date_of_birth\n1,Ann,1990-13-45\n2,Bob,1991-02-03\n", encoding="utf-8")
    source = FileSource(path, "s")
    records = list(source)
    assert records[0].date_of_birth is None and records[1].date_of_birth == date(1991, 2, 3)
    assert source.report.warnings == {"date_of_birth": 1}


def test_jsonl_and_parquet(tmp_path: Path) -> None:
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text('{"id": "1", "email": "a@x.com"}\nnot json\n[1,2]\n{"id": "2", "first_name": "Bo"}\n')
    source = FileSource(jsonl, "web")
    assert [r.key for r in source] == ["1", "2"]
    assert [(r.row, r.reason.split(":")[0]) for r in source.report.rejects] == [
        (2, "invalid JSON"),
        (3, "not a JSON object"),
    ]

    parquet = tmp_path / "p.parquet"
    pq.write_table(
        pa.table({"ref": ["x1", None], "dob": [date(1980, 5, 6), date(1981, 1, 1)], "mobile": ["4155550100", ""]}),
        parquet,
    )
    mapping = tmp_path / "m.yaml"
    mapping.write_text("key: ref\nfields: {date_of_birth: dob, phone: mobile}\n")
    psource = FileSource(parquet, "partner", load_mapping(mapping))
    (only,) = list(psource)
    assert only.date_of_birth == date(1980, 5, 6) and only.phone == "4155550100"
    assert psource.report.rejects[0].row == 2


@pytest.mark.parametrize(
    ("mapping_text", "message"),
    [
        ("fields: {first_name: a}\n", "key"),
        ("key: id\nfields: {shoe: a}\n", "unknown canonical field"),
        ("key: [id\n", "not valid YAML"),
        ("- just\n- a list\n", "must be a YAML mapping"),
    ],
)
def test_bad_mapping_is_a_clear_error(tmp_path: Path, mapping_text: str, message: str) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(mapping_text)
    with pytest.raises(InvalidInputError, match=message):
        load_mapping(path)


def test_unreadable_inputs(tmp_path: Path, febrl: tuple[Path, Path]) -> None:
    with pytest.raises(InvalidInputError, match="no such file"):
        FileSource(tmp_path / "missing.csv", "s")
    odd = tmp_path / "x.xlsx"
    odd.write_text("")
    with pytest.raises(InvalidInputError, match="unknown file type"):
        FileSource(odd, "s")
    broken = tmp_path / "b.parquet"
    broken.write_bytes(b"not parquet")
    with pytest.raises(InvalidInputError, match="Parquet"):
        list(FileSource(broken, "s"))
    data, _ = febrl
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("key: rec_id\nfields: {city: town}\n")
    with pytest.raises(InvalidInputError, match="columns missing from the file: town"):
        list(FileSource(data, "febrl", load_mapping(wrong)))
    keyless = tmp_path / "keyless.csv"
    keyless.write_text("name,email\nAnn,a@x.com\n")
    with pytest.raises(InvalidInputError, match="no key column"):
        list(FileSource(keyless, "s"))


def test_generated_dataset_ingests_twice_without_change(tmp_path: Path) -> None:
    ds = generate(150, tmp_path / "data", seed=7)
    assert Dataset.load(tmp_path / "data").records == ds.records
    truth = ds.truth_map()
    assert len(truth) == ds.records and len(set(truth.values())) == 150
    store = EmbeddedStore(EmbeddedConfig(path=tmp_path / "g.db"))
    linker = Linker(store)

    def ingest_all() -> int:
        n = 0
        for sf in ds.sources:
            source = FileSource(sf.path, sf.source, ds.mapping_of(sf))
            result = linker.ingest(source, batch_size=64)
            assert not source.report.rejects
            n += result.inserted + result.updated
        return n

    assert ingest_all() == ds.records
    before = (sorted(store.iter_links()), store.stats())
    assert ingest_all() == 0
    assert (sorted(store.iter_links()), store.stats()) == before
    # Deterministic linking never links two different persons here.
    by_customer: dict[str, set[str]] = {}
    for source, key, cid in store.iter_links():
        by_customer.setdefault(cid, set()).add(truth[(source, key)])
    assert all(len(persons) == 1 for persons in by_customer.values())
    assert len(by_customer) < ds.records  # and it does link duplicates
    store.close()


def test_generator_is_reproducible(tmp_path: Path) -> None:
    a = generate(50, tmp_path / "a", seed=3)
    b = generate(50, tmp_path / "b", seed=3)
    for sa, sb in zip(a.sources, b.sources, strict=True):
        assert sa.path.read_bytes() == sb.path.read_bytes() or sa.path.suffix == ".parquet"
    assert (tmp_path / "a" / "truth.csv").read_text() == (tmp_path / "b" / "truth.csv").read_text()
    manifest = json.loads((tmp_path / "a" / "dataset.json").read_text())
    assert {s["source"] for s in manifest["sources"]} == {"crm", "webshop", "partner"}


def test_duplicate_keys_bad_bytes_and_multiline_rows(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes(
        b'id,first_name,address_line1\n1,Ann,"12 High St\nFlat 2"\n2,J\xe9r\xf4me,x\n'
        b'1,Ann again,y\n3,Bo,"a\nb",extra\n4,Cy,z\n'
    )
    source = FileSource(path, "s")
    assert [(r.key, r.first_name) for r in source] == [("1", "Ann"), ("4", "Cy")]
    assert [(r.row, r.reason) for r in source.report.rejects] == [
        (4, "not valid UTF-8"),
        (5, "duplicate key '1' (first at row 2)"),
        (6, "has 4 fields, the header has 3"),
    ]


def test_jsonl_without_mapping_takes_fields_from_any_row_and_flags_unseen_columns(tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl"
    path.write_text('{"id": "1", "first_name": "Ann"}\n{"id": "2", "email": "bob@x.com", "phone": "2125550100"}\n')
    records = list(FileSource(path, "web"))
    assert (records[1].email, records[1].phone) == ("bob@x.com", "2125550100")
    mapping = tmp_path / "m.yaml"
    mapping.write_text("key: id\nfields: {email: emial}\n")
    source = FileSource(path, "web", load_mapping(mapping))
    list(source)
    assert source.report.unseen_columns == ["emial"]


def test_a_date_of_birth_out_of_range_is_left_empty_and_counted(tmp_path: Path) -> None:
    """Like a date that does not parse: the row is still used (a birth date before 1900 or after today)."""
    path = tmp_path / "people.csv"
    path.write_text("id,first,dob\n1,ann,1899-12-31\n2,ben,2999-01-01\n3,cy,1984-03-12\n", encoding="utf-8")
    mapping = ColumnMapping.model_validate({"key": "id", "fields": {"first_name": "first", "date_of_birth": "dob"}})
    source = FileSource(path, "crm", mapping)
    records = list(source)
    assert [r.date_of_birth for r in records] == [None, None, date(1984, 3, 12)]
    assert source.report.warnings["date_of_birth"] == 2 and not source.report.rejects
