"""Records per second of read_evtx (parse, normalise, account for every record) against the bare
`evtx` parser over the same files, measured in the same run. Prints figures; asserts nothing.

    PYTHONPATH=. python benchmarks/evtx_normalise.py [folder]   (default: ../shared/data/evtx)
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

REPEATS = 3


def bare_parser(files: list[Path]) -> int:
    from evtx import PyEvtxParser

    count = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in files:
            for _record in PyEvtxParser(str(path), indent=False, skip_errors=True).records_json():
                count += 1
    return count


def parser_and_json(files: list[Path]) -> int:
    """The floor for any normaliser in Python: the parser plus decoding its JSON text."""
    import json

    from evtx import PyEvtxParser

    count = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in files:
            for record in PyEvtxParser(str(path), indent=False, skip_errors=True).records_json():
                json.loads(record["data"])
                count += 1
    return count


def authml_reader(files: list[Path]) -> int:
    from authml.sources.evtx import read_evtx

    count = 0
    for path in files:
        for _record in read_evtx(path):
            count += 1
    return count


def best_rate(run, files: list[Path]) -> tuple[int, float]:
    """The best of REPEATS runs, since the machine is shared and the slow runs measure the others."""
    best = 0.0
    count = 0
    for _ in range(REPEATS):
        started = time.perf_counter()
        count = run(files)
        best = max(best, count / (time.perf_counter() - started))
    return count, best


def main() -> None:
    folder = (
        Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared/data/evtx"
    )
    files = sorted(folder.rglob("*.evtx"))
    if not files:
        raise SystemExit(f"no .evtx files under {folder}")
    bare_count, bare_rate = best_rate(bare_parser, files)
    _, floor_rate = best_rate(parser_and_json, files)
    ours_count, ours_rate = best_rate(authml_reader, files)
    print(f"files: {len(files)} under {folder}")
    print(f"bare evtx parser (records_json): {bare_count} records, {bare_rate:,.0f} records/s")
    print(
        f"bare parser + json.loads:        {floor_rate:,.0f} records/s ({floor_rate / bare_rate:.2f} of bare)"
    )
    print(f"authml read_evtx (normalised):   {ours_count} records and errors, {ours_rate:,.0f} records/s")
    print(f"ratio: {ours_rate / bare_rate:.2f} of the bare parser's rate (target 0.50)")


if __name__ == "__main__":
    main()
