"""Writes the small real CIFAR-10 sample that ships in tests/data (the graded tests' real images).

    python tools/make_sample.py ARCHIVE

Takes the first 100 records of each of the archive's five training files and of its test file, in
the official record format, into tests/data/cifar-10-batches-bin/ (600 images, 1.8 MB). ARCHIVE is
any CIFAR-10 binary archive, such as the course's mini archive or the official one.
"""

import sys
import tarfile
from pathlib import Path

RECORD_BYTES = 3073
PER_FILE = 100
OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "cifar-10-batches-bin"
FILES = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    with tarfile.open(argv[0]) as tar:
        members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
        for name in FILES:
            records = tar.extractfile(members[name]).read(PER_FILE * RECORD_BYTES)
            assert len(records) == PER_FILE * RECORD_BYTES, (
                f"{name} has fewer than {PER_FILE} records"
            )
            (OUT / name).write_bytes(records)
    print(f"wrote {len(FILES)} files of {PER_FILE} records to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
