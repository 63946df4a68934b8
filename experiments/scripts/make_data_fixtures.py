#!/usr/bin/env python3
"""Writes tiny parquet datasets as test fixtures for the data loaders.

The files mimic the published Hugging Face datasets (written by pyarrow, as the
hub's files are): UltraFeedback-binarized splits with `chosen`/`rejected`/`messages`
as list<struct<content, role>> columns, and the AlpacaFarm `sft` split. Run once
with pyarrow installed (pip install pyarrow):
  python3 scripts/make_data_fixtures.py tests/fixtures/data
"""
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq

MESSAGE = pa.struct([("content", pa.string()), ("role", pa.string())])
CONVERSATION = pa.list_(MESSAGE)


def conversation(prompt, response):
    return [
        {"content": prompt, "role": "user"},
        {"content": response, "role": "assistant"},
    ]


def ultrafeedback_table(rows, drop=()):
    columns = {
        "prompt": pa.array([r[0] for r in rows], pa.string()),
        "prompt_id": pa.array([f"id{i}" for i in range(len(rows))], pa.string()),
        "chosen": pa.array([conversation(r[0], r[1]) for r in rows], CONVERSATION),
        "rejected": pa.array([conversation(r[0], r[2]) for r in rows], CONVERSATION),
        "messages": pa.array([conversation(r[0], r[1]) for r in rows], CONVERSATION),
        "score_chosen": pa.array([r[3] for r in rows], pa.float64()),
        "score_rejected": pa.array([r[4] for r in rows], pa.float64()),
    }
    return pa.table({k: v for k, v in columns.items() if k not in drop})


UF_ROWS = [
    ("What is 2+2?", "2+2 equals 4.", "It is 5.", 9.0, 2.0),
    ("Name a colour.", "Blue.", "Dog.", 8.5, 1.0),
    ("Say hello in French.", "Bonjour !", "Hola.", 7.0, 3.5),
]


def main(out):
    os.makedirs(out, exist_ok=True)
    pq.write_table(ultrafeedback_table(UF_ROWS), os.path.join(out, "uf_train_prefs.parquet"),
                   compression="snappy")
    pq.write_table(ultrafeedback_table(UF_ROWS[:2]), os.path.join(out, "uf_test_prefs_zstd.parquet"),
                   compression="zstd")
    pq.write_table(ultrafeedback_table(UF_ROWS, drop=("rejected",)),
                   os.path.join(out, "uf_missing_rejected.parquet"), compression="snappy")
    alpaca = pa.table({
        "instruction": ["Add the numbers.", "Say hi."],
        "input": ["2 and 3", ""],
        "output": ["5", "Hi!"],
    })
    pq.write_table(alpaca, os.path.join(out, "alpaca_sft.parquet"), compression="snappy")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/data")
