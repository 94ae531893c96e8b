"""What the tests build: tiny projects, tiny checkpoints, servers. No test lives here.

Importable as `builders` (pyproject's [tool.pytest.ini_options] pythonpath puts tests/
on sys.path; the benchmarks insert it themselves). One builder per kind of thing:

- tiny_pipeline: THE tiny project. Synthetic sentiment (or multi_label / pair) CSV +
  params.yaml, the real stages run in-process (`build`, cached per process by
  `cached_build`); `clone`, `register`, `registry_client`, `save_untrained`.
- flow_project: that project as a user's clone (copied components/ + flows/, git +
  DVC), driven by the real `encoderflow` console script.
- cls_project: a tokenized labelled project one level lower (data/prepared written
  directly, the real tokenize stage), for stage tests of finetune / evaluate / teacher.
- mlm_project: a tokenized corpus with its own tokenizer, for pretraining.
- data: hand-made data/prepared splits and small corpora (tokenize, baselines).
- teacher_model: THE tiny Hugging Face checkpoint (`tiny_bert`) and models/teacher.
- serving / prefect_server / pg_cluster: free ports, `mlflow models serve`, a
  Prefect server, a throwaway PostgreSQL.
- guards: monkeypatches that make a forbidden call (unpickling) fail loudly.

tests/conftest.py turns the shared ones into fixtures (`project`, `cli`, `built`,
`proj`, `tiny`, `mlm_data`, `mlm_project`).
"""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the checkout
