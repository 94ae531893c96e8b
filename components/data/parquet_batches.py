"""Read a parquet file record batch by record batch, holding one row group at most.

pyarrow's `ParquetFile.iter_batches` over a whole file keeps memory as it goes (measured
with pyarrow 25: 94 MiB allocated by the end of a 99 MB, 14-row-group file, against 12 MiB
when the same batches are read one row group at a time). Streaming readers use this instead.

    >>> import pyarrow as pa, pyarrow.parquet as pq, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "t.parquet")
    >>> pq.write_table(pa.table({"text": ["a", "b", "c"]}), path, row_group_size=2)
    >>> [b.num_rows for b in parquet_batches(path, ["text"], batch_size=10)]
    [2, 1]
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence


def parquet_batches(path: str | Path, columns: Sequence[str], batch_size: int) -> Iterator:
    """pyarrow RecordBatches of `columns`, in file order, at most `batch_size` rows each."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    for group in range(pf.num_row_groups):
        yield from pf.iter_batches(batch_size=batch_size, columns=list(columns), row_groups=[group])
