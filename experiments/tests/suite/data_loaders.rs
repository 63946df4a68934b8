//! Dataset loaders: UltraFeedback-binarized and AlpacaFarm from parquet (fixtures
//! written by pyarrow: scripts/make_data_fixtures.py) and JSONL, generic prompt and
//! pair files, and errors that name file, row and column.

use rmteach_experiments::data::{
    alpaca_user_content, load_alpaca_sft, load_pairs, load_prompts, load_ultrafeedback, pair_row,
    read_records, ultrafeedback_row, write_jsonl, DataError, PreferencePair, PromptRecord,
    SftExample,
};
use serde_json::json;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/data")
        .join(name)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The (file, row, column) of a row error.
fn row_error(err: DataError) -> (PathBuf, usize, String, String) {
    let message = err.to_string();
    match err {
        DataError::Row {
            file, row, column, ..
        } => (file, row, column, message),
        other => panic!("expected a row error, got {other}"),
    }
}

#[test]
fn ultrafeedback_parquet_snappy_and_zstd() {
    let train = load_ultrafeedback(&fixture("uf_train_prefs.parquet")).unwrap();
    assert_eq!(train.len(), 3);
    assert_eq!(
        train[0],
        PreferencePair {
            prompt: "What is 2+2?".into(),
            chosen: "2+2 equals 4.".into(),
            rejected: "It is 5.".into(),
            score_chosen: Some(9.0),
            score_rejected: Some(2.0),
        }
    );
    assert_eq!(train[2].chosen, "Bonjour !");
    let test = load_ultrafeedback(&fixture("uf_test_prefs_zstd.parquet")).unwrap();
    assert_eq!(test, train[..2]);
}

#[test]
fn parquet_rows_keep_nested_messages() {
    let record = read_records(&fixture("uf_train_prefs.parquet"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(record.row, 1);
    assert_eq!(
        record.fields["chosen"],
        json!([{"content": "What is 2+2?", "role": "user"},
               {"content": "2+2 equals 4.", "role": "assistant"}])
    );
    let messages = record.view().messages("rejected").unwrap();
    assert_eq!(messages[1].role, "assistant");
    assert_eq!(messages[1].content, "It is 5.");
}

#[test]
fn parquet_missing_column_names_file_row_and_column() {
    let err = load_ultrafeedback(&fixture("uf_missing_rejected.parquet")).unwrap_err();
    let (file, row, column, message) = row_error(err);
    assert!(file.ends_with("uf_missing_rejected.parquet"));
    assert_eq!((row, column.as_str()), (1, "rejected"));
    assert!(message.contains("missing column"), "{message}");
    assert!(
        message.contains("UltraFeedback"),
        "hint names the format: {message}"
    );
}

#[test]
fn alpaca_parquet_and_user_turn_rule() {
    let examples = load_alpaca_sft(&fixture("alpaca_sft.parquet")).unwrap();
    assert_eq!(
        examples,
        vec![
            SftExample {
                prompt: "Add the numbers.\n2 and 3".into(),
                response: "5".into()
            },
            SftExample {
                prompt: "Say hi.".into(),
                response: "Hi!".into()
            },
        ]
    );
    assert_eq!(alpaca_user_content("Do it.", ""), "Do it.");
}

#[test]
fn alpaca_json_array_and_jsonl_with_absent_input() {
    let dir = tempfile::tempdir().unwrap();
    let array = write(
        dir.path(),
        "sft.json",
        r#"[{"instruction": "A", "input": "B", "output": "C"},
            {"instruction": "D", "output": "E"}]"#,
    );
    let jsonl = write(
        dir.path(),
        "sft.jsonl",
        "{\"instruction\": \"A\", \"input\": \"B\", \"output\": \"C\"}\n\n{\"instruction\": \"D\", \"input\": null, \"output\": \"E\"}\n",
    );
    let a = load_alpaca_sft(&array).unwrap();
    assert_eq!(a, load_alpaca_sft(&jsonl).unwrap());
    assert_eq!(a[0].prompt, "A\nB");
    assert_eq!(a[1].prompt, "D");
}

#[test]
fn ultrafeedback_jsonl_round_trips_through_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = vec![
        PreferencePair {
            prompt: "p1".into(),
            chosen: "good".into(),
            rejected: "bad".into(),
            score_chosen: Some(8.0),
            score_rejected: Some(3.0),
        },
        PreferencePair {
            prompt: "p2\nwith newline \"quoted\"".into(),
            chosen: "ok".into(),
            rejected: "worse".into(),
            score_chosen: None,
            score_rejected: None,
        },
    ];
    let path = dir.path().join("nested/train_prefs.jsonl");
    assert_eq!(
        write_jsonl(&path, pairs.iter().map(ultrafeedback_row)).unwrap(),
        2
    );
    assert_eq!(load_ultrafeedback(&path).unwrap(), pairs);
    // The generic pair reader takes the same rows, and its own string form.
    assert_eq!(load_pairs(&path).unwrap(), pairs);
    let flat = dir.path().join("pairs.jsonl");
    write_jsonl(&flat, pairs.iter().map(pair_row)).unwrap();
    assert_eq!(load_pairs(&flat).unwrap(), pairs);
}

#[test]
fn prompts_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "prompts.jsonl",
        "{\"prompt\": \"a\"}\n{\"prompt\": \"b\", \"extra\": 1}\n",
    );
    assert_eq!(
        load_prompts(&path).unwrap(),
        vec![
            PromptRecord { prompt: "a".into() },
            PromptRecord { prompt: "b".into() }
        ]
    );
}

#[test]
fn malformed_jsonl_rows_name_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let good = r#"{"prompt": "p", "chosen": [{"role": "user", "content": "p"}, {"role": "assistant", "content": "c"}], "rejected": "r"}"#;
    let cases: Vec<(String, usize, &str, &str)> = vec![
        (
            format!("{good}\n{{\"prompt\": \"p\", \"chosen\": \"c\"}}\n"),
            2,
            "rejected",
            "missing column",
        ),
        (
            format!("{good}\n\n{{not json\n"),
            3,
            "<row>",
            "invalid JSON",
        ),
        (
            format!("[1, 2]\n{good}\n"),
            1,
            "<row>",
            "expected a JSON object",
        ),
        (
            r#"{"prompt": 3, "chosen": "c", "rejected": "r"}"#.to_string(),
            1,
            "prompt",
            "expected a string, found a number",
        ),
        (
            r#"{"prompt": "p", "chosen": [{"role": "user", "content": "p"}], "rejected": "r"}"#
                .to_string(),
            1,
            "chosen",
            "role `user`",
        ),
        (
            r#"{"prompt": "p", "chosen": [], "rejected": "r"}"#.to_string(),
            1,
            "chosen",
            "empty",
        ),
        (
            r#"{"prompt": "p", "chosen": [{"role": "assistant"}], "rejected": "r"}"#.to_string(),
            1,
            "chosen[0].content",
            "missing",
        ),
        (
            r#"{"prompt": "p", "chosen": {"a": 1}, "rejected": "r"}"#.to_string(),
            1,
            "chosen",
            "found an object",
        ),
        (
            r#"{"prompt": "p", "chosen": "c", "rejected": "r", "score_chosen": "high"}"#
                .to_string(),
            1,
            "score_chosen",
            "a number",
        ),
    ];
    for (text, line, column, fragment) in cases {
        let path = write(dir.path(), "bad.jsonl", &text);
        let (file, row, col, message) = row_error(load_ultrafeedback(&path).unwrap_err());
        assert_eq!(file, path);
        assert_eq!((row, col.as_str()), (line, column), "{message}");
        assert!(message.contains(fragment), "{fragment}: {message}");
        assert!(message.contains(&format!("row {line}")), "{message}");
    }
}

#[test]
fn missing_alpaca_and_prompt_columns_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "sft.jsonl",
        "{\"instruction\": \"A\", \"input\": \"\"}\n",
    );
    let (_, row, column, message) = row_error(load_alpaca_sft(&path).unwrap_err());
    assert_eq!((row, column.as_str()), (1, "output"));
    assert!(
        message.contains("columns [input, instruction]"),
        "{message}"
    );
    let path = write(dir.path(), "p.jsonl", "{\"text\": \"A\"}\n");
    let (_, _, column, _) = row_error(load_prompts(&path).unwrap_err());
    assert_eq!(column, "prompt");
}

#[test]
fn json_extension_with_jsonl_content_is_read_as_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "p.json",
        "{\"prompt\": \"a\"}\n{\"prompt\": \"b\"}\n",
    );
    assert_eq!(load_prompts(&path).unwrap().len(), 2);
}

#[test]
fn whole_file_errors() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(dir.path(), "data.csv", "a,b\n");
    assert!(matches!(
        load_prompts(&csv).unwrap_err(),
        DataError::File { .. }
    ));
    let fake = write(dir.path(), "fake.parquet", "not parquet at all");
    let err = load_prompts(&fake).unwrap_err();
    assert!(matches!(err, DataError::File { .. }), "{err}");
    assert!(err.to_string().contains("fake.parquet"));
    let bad_array = write(dir.path(), "a.json", "[{\"prompt\": \"a\"},");
    assert!(matches!(
        load_prompts(&bad_array).unwrap_err(),
        DataError::File { .. }
    ));
    let missing = dir.path().join("missing.jsonl");
    assert!(matches!(
        load_prompts(&missing).unwrap_err(),
        DataError::Io { .. }
    ));
}
