//! `hookgate paths suggest`: the JSONPaths of a sample file's fields with their values and
//! guesses, without a gateway, and a clear error for a sample that is not valid JSON.

#[test]
fn the_cli_suggests_paths_from_a_sample_file_and_refuses_bad_json() {
    let dir = tempfile::tempdir().expect("dir");
    let good = dir.path().join("sample.json");
    std::fs::write(&good, r#"{"id":"ev_1","customer":{"phone":"+255"}}"#).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["paths", "suggest"])
        .arg(&good)
        .output()
        .expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("$.customer.phone  \"+255\""), "{text}");
    assert!(text.contains("sender     $.customer.phone"), "{text}");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"id": 1, "id": 2}"#).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["paths", "suggest"])
        .arg(&bad)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.json") && err.contains("not valid JSON"),
        "{err}"
    );
}
