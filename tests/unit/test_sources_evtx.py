"""read_evtx on damaged input: every record is either a document or an error that says where it was
and why; nothing the file declares disappears without a trace."""

from __future__ import annotations

import re
import shutil
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authml.sources import SourceRecord, read_records
from authml.sources.evtx import CHUNK_SIZE, FILE_HEADER_SIZE, MAX_RECORDS_PER_CHUNK, read_evtx

PARSER_SAMPLES = "parser-samples"


def _split(records: list[SourceRecord]) -> tuple[list[SourceRecord], list[SourceRecord]]:
    good = [record for record in records if record.document is not None]
    bad = [record for record in records if record.error is not None]
    assert len(good) + len(bad) == len(records), "a record with neither document nor error"
    assert not [r for r in records if r.document is not None and r.error is not None]
    return good, bad


def _declared_ids(path: Path) -> set[int]:
    """The record ids the file's chunk headers declare, read independently of the reader."""
    data = path.read_bytes()
    ids: set[int] = set()
    for offset in range(FILE_HEADER_SIZE, len(data), CHUNK_SIZE):
        if data[offset : offset + 8] == b"ElfChnk\x00":
            first, last = struct.unpack_from("<QQ", data, offset + 24)
            if first <= last < first + MAX_RECORDS_PER_CHUNK:  # a corrupt header declares nothing usable
                ids.update(range(first, last + 1))
    return ids


def _accounted_ids(records: list[SourceRecord]) -> set[int]:
    """Ids that a record names: positions 'record N' and 'chunk C, records A to B', and a chunk
    error's '(records A to B are lost)'."""
    ids: set[int] = set()
    for record in records:
        position = record.position.replace(",", "").split()
        if "record" in position:
            ids.add(int(position[position.index("record") + 1]))
        if "records" in position:
            start = position.index("records")
            ids.update(range(int(position[start + 1]), int(position[start + 3]) + 1))
        lost = re.search(r"\(records (\d+) to (\d+) are lost\)", record.error or "")
        if lost:
            ids.update(range(int(lost.group(1)), int(lost.group(2)) + 1))
    return ids


def test_clean_file_has_no_errors_and_every_record(evtx_samples: Path) -> None:
    path = evtx_samples / "attack-samples/kerberos_pwd_spray_4771.evtx"
    good, bad = _split(list(read_evtx(path)))
    assert bad == []
    assert [r.position for r in good] == [f"record {n}" for n in range(1, 13)]
    assert all(r.raw and r.raw.startswith('{"Event"') for r in good)
    assert all(r.document["event"]["original"] == r.raw for r in good)


def test_bad_chunk_magic_is_dead_lettered_and_reading_goes_on(evtx_samples: Path) -> None:
    path = evtx_samples / PARSER_SAMPLES / "sample_with_a_bad_chunk_magic.evtx"
    records = list(read_evtx(path))
    good, bad = _split(records)
    assert len(good) == 269
    chunk_errors = [r for r in bad if r.position in ("chunk 6", "chunk 10")]
    assert len(chunk_errors) == 2 and all("chunk header magic" in r.error for r in chunk_errors)
    # Records after the chunk errors were still read (chunk 8 holds 45691..45819).
    assert any(r.position == "record 45819" for r in good)
    # Chunks 0, 7 and 9 end early without any parser error: their missing records are named.
    silent = {r.position for r in bad if "without an error" in r.error}
    assert silent == {
        "chunk 0, records 46742 to 46857",
        "chunk 7, records 47641 to 47705",
        "chunk 9, records 45934 to 45949",
    }
    assert _declared_ids(path) <= _accounted_ids(records)


def test_record_without_timestamp_is_an_error(evtx_samples: Path) -> None:
    path = evtx_samples / PARSER_SAMPLES / "sample_with_a_bad_chunk_magic.evtx"
    record = next(r for r in read_evtx(path) if r.position == "record 46741")
    assert record.document is None
    assert "TimeCreated" in record.error
    assert record.raw is not None  # the parser's JSON goes to the dead-letter file


def test_zero_data_size_record_loses_only_the_rest_of_its_chunk(evtx_samples: Path) -> None:
    path = evtx_samples / PARSER_SAMPLES / "sample-with-zero-data-size-event.evtx"
    records = list(read_evtx(path))
    good, bad = _split(records)
    assert len(good) == 335
    assert len(bad) == 1
    assert bad[0].position == "chunk 0, records 3 to 117"
    assert "data size" in bad[0].error
    assert {"record 2", "record 118", "record 450"} <= {r.position for r in good}
    assert _declared_ids(path) <= _accounted_ids(records)


def _record_offset(data: bytes, chunk_start: int, index: int) -> int:
    """File offset of the index-th record (0-based) of the chunk starting at chunk_start."""
    offset = chunk_start + 512
    for _ in range(index):
        offset += struct.unpack_from("<I", data, offset + 4)[0]
    return offset


def test_unbuildable_string_cache_and_a_silent_stop_get_their_own_reasons(
    evtx_samples: Path, tmp_path: Path
) -> None:
    data = bytearray(
        (evtx_samples / PARSER_SAMPLES / "post-Security.evtx").read_bytes()[
            : FILE_HEADER_SIZE + 2 * CHUNK_SIZE
        ]
    )
    chunk0, chunk1 = FILE_HEADER_SIZE, FILE_HEADER_SIZE + CHUNK_SIZE
    struct.pack_into("<I", data, _record_offset(data, chunk0, 50), 0)  # record 51's magic: a silent stop
    struct.pack_into("<I", data, chunk1 + 128, 0xFFFF)  # a string-table offset past the chunk's end
    path = tmp_path / "damaged.evtx"
    path.write_bytes(bytes(data))
    records = list(read_evtx(path))
    good, bad = _split(records)
    assert len(good) == 50
    reasons = {r.position: r.error for r in bad}
    assert "without an error" in reasons["chunk 0, records 51 to 102"]
    assert "string cache" in reasons["chunk 1, records 103 to 126"]
    assert _declared_ids(path) <= _accounted_ids(records)


def test_bad_string_cache_sample_reads_completely(evtx_samples: Path) -> None:
    # This parser version recovers this sample: every declared record comes back as a document.
    path = evtx_samples / PARSER_SAMPLES / "security_bad_string_cache.evtx"
    good, bad = _split(list(read_evtx(path)))
    assert bad == []
    assert {int(r.position.split()[1]) for r in good} == _declared_ids(path)


def test_missing_crc32_flag_is_not_an_error(evtx_samples: Path) -> None:
    good, bad = _split(list(read_evtx(evtx_samples / PARSER_SAMPLES / "Application_no_crc32.evtx")))
    assert len(good) == 17 and bad == []


@pytest.mark.parametrize(
    ("cut", "good_count", "lost"),
    [
        (200_000, 260, None),  # the cut falls in chunk 2's slack: the padded re-read recovers all of it
        (40_000, 48, "chunk 0, records 49 to 91"),  # the cut falls among chunk 0's records
        (5_000, 0, "chunk 0, records 2 to 91"),
    ],
)
def test_truncated_file(
    evtx_samples: Path, tmp_path: Path, cut: int, good_count: int, lost: str | None
) -> None:
    source = evtx_samples / PARSER_SAMPLES / "security_bad_string_cache.evtx"
    path = tmp_path / "cut.evtx"
    path.write_bytes(source.read_bytes()[:cut])
    records = list(read_evtx(path))
    good, bad = _split(records)
    assert len(good) == good_count
    positions = {r.position for r in bad}
    assert "end of file" in positions
    end = next(r for r in bad if r.position == "end of file")
    assert "declares 26 chunks" in end.error
    if lost:
        gap = next(r for r in bad if r.position == lost)
        assert "the file ends" in gap.error


def test_header_only_file_reports_the_missing_chunks(evtx_samples: Path, tmp_path: Path) -> None:
    path = tmp_path / "header.evtx"
    path.write_bytes(
        (evtx_samples / PARSER_SAMPLES / "security_bad_string_cache.evtx").read_bytes()[:FILE_HEADER_SIZE]
    )
    records = list(read_evtx(path))
    assert [r.position for r in records] == ["end of file"]
    assert "chunks 0 to 25" in records[0].error


@pytest.mark.parametrize("content", [b"", b"hello, not a log\n", b"ElfFile\x00short"])
def test_not_an_evtx_file_is_one_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "renamed.evtx"
    path.write_bytes(content)
    records = list(read_records(path, "evtx"))
    assert len(records) == 1
    assert records[0].document is None
    assert records[0].position == "file header"
    assert "EVTX" in records[0].error


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    records = list(read_evtx(tmp_path / "absent.evtx"))
    assert len(records) == 1 and "cannot be read" in records[0].error


def test_copy_of_a_good_file_reads_the_same(evtx_samples: Path, tmp_path: Path) -> None:
    source = evtx_samples / "attack-samples/LM_WMIC_4648_rpcss.evtx"
    copy = tmp_path / "copy.evtx"
    shutil.copyfile(source, copy)
    assert [r.document for r in read_evtx(copy)] == [r.document for r in read_evtx(source)]


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    damage=st.lists(
        st.tuples(st.integers(0, 2 * CHUNK_SIZE - 1), st.integers(0, 255)),
        min_size=1,
        max_size=40,
    )
)
def test_random_damage_never_stops_the_file_nor_hides_a_record(
    evtx_samples: Path, tmp_path_factory: pytest.TempPathFactory, damage: list[tuple[int, int]]
) -> None:
    source = (evtx_samples / PARSER_SAMPLES / "post-Security.evtx").read_bytes()[
        : FILE_HEADER_SIZE + 2 * CHUNK_SIZE
    ]
    data = bytearray(source)
    for offset, value in damage:
        data[FILE_HEADER_SIZE + offset] = value
    path = tmp_path_factory.mktemp("damaged") / "damaged.evtx"
    path.write_bytes(bytes(data))
    records = list(read_evtx(path))
    _split(records)
    assert _declared_ids(path) <= _accounted_ids(records)
