"""The Dask recipe: 2 local worker processes give the single-process predictions row for row."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tiny_text import (
    one_thread,  # noqa: F401  (autouse fixture)
    tiny_codec,
    tiny_encoder,
    tiny_tokenizer_dir,
    toy_corpus,
)

from emoembed.errors import DataError
from emoembed.model import EmotionModel

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("dask.distributed")
from emoembed.distributed import predict_dask, read_table  # noqa: E402


@pytest.mark.slow
def test_two_local_workers_match_single_process_row_for_row(tmp_path, format_registry):
    tok = tiny_tokenizer_dir(tmp_path / "tok")
    model = EmotionModel(tiny_encoder(tok, dim=16, max_length=24), tiny_codec(format_registry),
                         meta={"trained_formats": ["vad"]}).eval()
    mdir = model.save_pretrained(tmp_path / "model")
    texts = toy_corpus(150, seed=5)[0]
    pd.DataFrame({"id": range(150), "text": texts}).to_csv(tmp_path / "in.csv", index=False)
    single = model.predict(texts, "be6").reset_index()

    frame = read_table(tmp_path / "in.csv", blocksize=1500)  # small blocks: several partitions
    assert frame.npartitions >= 2
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        preds = predict_dask(frame, mdir, "be6", column="text")
        preds.to_parquet(tmp_path / "preds")
        got = preds.compute()
        workers = client.run(lambda: __import__("os").getpid())
    assert len(set(workers.values())) == 2
    got = got.reset_index(drop=True)
    assert list(got.columns) == ["id", *single.columns] and got["text"].tolist() == texts
    assert got["id"].tolist() == [str(i) for i in range(150)]  # the input's other column, as Dask read it (text)
    num = [c for c in single.columns if c != "text"]
    np.testing.assert_allclose(got[num].to_numpy(float), single[num].to_numpy(float), atol=1e-5)
    written = dd.read_parquet(tmp_path / "preds").compute()  # partitions in input order
    assert len(list((tmp_path / "preds").glob("*.parquet"))) == frame.npartitions
    np.testing.assert_allclose(written[num].to_numpy(float), single[num].to_numpy(float), atol=1e-5)
    assert written["id"].tolist() == [str(i) for i in range(150)]
    assert list(predict_dask(frame, mdir, "be6", column="text", keep_columns="none").columns) == list(single.columns)
    with pytest.raises(DataError, match="'joy' would clash"):
        predict_dask(frame.assign(joy="x"), mdir, "be6", column="text")
