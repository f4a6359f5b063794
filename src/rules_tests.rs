//! Tests of `rules`: every shipped file, preparing and updating requests, operator files.

use super::*;

#[test]
fn every_shipped_rule_parses_and_is_named_like_its_file() {
    for (file, text) in SHIPPED {
        let rule =
            parse(&format!("rules/{file}.toml"), file, text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&rule.name, file);
        assert!(rule.docs.is_some(), "{file}: give the provider's docs URL");
        assert!(
            rule.secret_help.is_some(),
            "{file}: say what the user pastes"
        );
    }
    assert_eq!(Rules::shipped().all().len(), SHIPPED.len());
    let mut names: Vec<&str> = SHIPPED.iter().map(|(n, _)| *n).collect();
    names.dedup();
    assert_eq!(names.len(), SHIPPED.len());
}

#[test]
fn preset_with_secret_becomes_a_full_spec_and_explicit_fields_win() {
    let rules = Rules::shipped();
    let v = rules
        .prepare(json!({"name": "gh", "provider": "github", "secret": "s3",
                        "paths": {"sender": "$.pusher.name"}}))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v["signature"]["secrets"], json!(["s3"]));
    assert_eq!(v["signature"]["header"], json!("X-Hub-Signature-256"));
    assert_eq!(v["paths"]["sender"], json!("$.pusher.name"));
    assert_eq!(v["paths"]["event_type"], json!("header:X-GitHub-Event"));
    assert!(v.get("secret").is_none());
    let t = rules
        .prepare(json!({"name": "tg", "provider": "telegram", "secret": "tok"}))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t["auth"]["value"], json!("tok"));
    assert!(t.get("signature").is_none());
}

#[test]
fn every_shipped_preset_compiles_from_name_provider_and_secret_alone() {
    let rules = Rules::shipped();
    for rule in rules.all() {
        let mut request = json!({"name": "acct", "provider": rule.name,
                                 "secret": example_secret(rule)});
        // The settings a preset requires besides the secret (Meta's verify token, MoMo's
        // API user and keys).
        rule.fill_required_settings(&mut request, "a-required-setting");
        let prepared = rules
            .prepare(request)
            .unwrap_or_else(|e| panic!("{}: {e}", rule.name));
        let spec =
            AccountSpec::from_json(prepared).unwrap_or_else(|e| panic!("{}: {e}", rule.name));
        crate::account::compile(spec, false, 0, 0).unwrap_or_else(|e| panic!("{}: {e}", rule.name));
    }
}

#[test]
fn meta_without_its_verify_token_names_the_field() {
    let rules = Rules::shipped();
    let prepared = rules
        .prepare(json!({"name": "wa", "provider": "meta", "secret": "app-secret"}))
        .unwrap_or_else(|e| panic!("{e}"));
    let spec = AccountSpec::from_json(prepared).unwrap_or_else(|e| panic!("{e}"));
    let err = crate::account::compile(spec, false, 0, 0)
        .err()
        .map(|e| e.field);
    assert_eq!(err.as_deref(), Some("handshake.verify_token"));
}

#[test]
fn provider_names_ignore_case_and_a_typo_gets_a_suggestion() {
    let rules = Rules::shipped();
    let spec = rules
        .prepare(json!({"name": "a", "provider": "Stripe", "secret": "whsec_abc"}))
        .unwrap_or_default();
    assert_eq!(spec["provider"], "stripe");
    let e = rules
        .prepare(json!({"name": "a", "provider": "strpe", "secret": "x"}))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("did you mean \"stripe\"?"), "{e}");
    assert_eq!(rules.suggest("zzzzzzzz"), None);
}

#[test]
fn a_paystack_public_key_pasted_as_the_secret_is_refused_by_name() {
    let rules = Rules::shipped();
    let e = rules
        .prepare(json!({"name": "a", "provider": "paystack", "secret": "pk_live_123"}))
        .err()
        .unwrap_or_else(|| SpecError::new("none", "accepted"));
    assert_eq!(e.field, "secret");
    assert!(e.to_string().contains("public key"), "{e}");
    assert!(
        rules
            .prepare(json!({"name": "a", "provider": "paystack", "secret": "sk_live_123"}))
            .is_ok()
    );
}

#[test]
fn unknown_provider_and_secret_without_scheme_are_refused() {
    let rules = Rules::shipped();
    assert!(
        rules
            .prepare(json!({"name": "a", "provider": "nope"}))
            .is_err()
    );
    assert!(rules.prepare(json!({"name": "a", "secret": "s"})).is_err());
}

#[test]
fn an_update_keeps_a_removed_default_removed_and_a_new_provider_starts_over() {
    let rules = Rules::shipped();
    let stored = rules
        .prepare(json!({"name": "gh", "provider": "github", "secret": "s",
                        "forward": {"send_to_user": true, "template": "hi"}}))
        .unwrap_or_else(|e| panic!("{e}"));
    let patch = json!({"paths": {"sender": null}});
    let v = rules
        .prepare_update(stored.clone(), &patch)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(v["paths"].get("sender").is_none(), "{v}");
    assert_eq!(v["signature"]["secrets"], json!(["s"]));

    let switch = json!({"provider": "stripe", "secret": "whsec_new"});
    let v = rules
        .prepare_update(stored.clone(), &switch)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v["signature"]["header"], json!("Stripe-Signature"));
    assert_eq!(
        v["signature"]["secrets"],
        json!(["whsec_new"]),
        "the old secret is gone"
    );
    assert_eq!(v["paths"]["event_id"], json!("$.id"));
    assert_eq!(v["forward"]["template"], json!("hi"), "forwarding is kept");
    let no_secret = rules
        .prepare_update(stored, &json!({"provider": "stripe"}))
        .unwrap_or_else(|e| panic!("{e}"));
    let spec = AccountSpec::from_json(no_secret).unwrap_or_else(|e| panic!("{e}"));
    let err = crate::account::compile(spec, false, 0, 0)
        .err()
        .map(|e| e.field);
    assert_eq!(err.as_deref(), Some("signature.secrets"));
}

#[test]
fn operator_files_add_and_override_and_bad_files_name_file_and_field() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let write = |name: &str, text: &str| {
        std::fs::write(dir.path().join(name), text).unwrap_or_else(|e| panic!("{e}"));
    };
    write(
        "acme.toml",
        "name = \"acme\"\ntitle = \"Acme\"\n[account.signature]\nheader = \"X-Acme\"\n",
    );
    write(
        "github.toml",
        "name = \"github\"\ntitle = \"GitHub (ours)\"\n[account.signature]\nheader = \"X-Ours\"\n",
    );
    write("notes.txt", "ignored");
    let rules = Rules::load(Some(dir.path())).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rules.get("acme").map(|r| r.title.as_str()), Some("Acme"));
    assert_eq!(
        rules.get("github").map(|r| r.title.as_str()),
        Some("GitHub (ours)")
    );
    assert!(
        rules
            .get("github")
            .is_some_and(|r| r.origin.ends_with("github.toml"))
    );
    assert_eq!(rules.all().len(), SHIPPED.len() + 1);

    let cases = [
        (
            "name = \"bad\"\ntitle = \"B\"\n[account.signature]\nheader = \"X\"\nalgorithm = \"hmac-md5\"\n",
            "account",
        ),
        (
            "name = \"bad\"\ntitle = \"B\"\ncolour = 1\n[account]\n",
            "colour",
        ),
        ("name = \"other\"\ntitle = \"B\"\n[account]\n", "name"),
        (
            "name = \"bad\"\ntitle = \"B\"\n[account.signature]\nheader = \"X\"\nsigned_content = \"{nope}\"\n",
            "account.signature.signed_content",
        ),
        (
            "name = \"bad\"\ntitle = \"B\"\n[account]\n",
            "account.signature",
        ),
        (
            "name = \"bad\"\ntitle = \"B\"\nsecret_target = \"auth.value\"\n[account.signature]\nheader = \"X\"\n",
            "account.auth",
        ),
    ];
    for (text, field) in cases {
        let bad = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(bad.path().join("bad.toml"), text).unwrap_or_else(|e| panic!("{e}"));
        let err = Rules::load(Some(bad.path())).err();
        let err = err.unwrap_or_else(|| panic!("{text} was accepted"));
        assert!(err.file.ends_with("bad.toml"), "{err}");
        assert_eq!(err.field, field, "{err}");
    }
    let missing = Rules::load(Some(Path::new("/nonexistent/rules"))).err();
    assert_eq!(missing.map(|e| e.field), Some("rules_dir".into()));
}

#[test]
fn a_file_error_names_a_field_and_the_line_it_is_on() {
    // An empty key is an unknown field too; it is named as TOML spells it (found by the
    // rule_toml fuzz target, which requires a field in every error).
    let err = parse("x.toml", "x", "\"\" = 1").err();
    assert_eq!(err.map(|e| e.field), Some("\"\"".into()));
    // The line of an error at a line's start, after characters of several bytes.
    let err = parse("x.toml", "x", "title = \"Zürich ✓\"\n\ncolour = 1\n").err();
    let err = err.unwrap_or_else(|| panic!("an unknown field was accepted"));
    assert_eq!(err.field, "colour");
    assert!(err.message.ends_with("(line 3)"), "{}", err.message);
}

#[test]
fn an_event_id_the_user_names_replaces_the_presets_dedupe_key() {
    let rules = Rules::shipped();
    let own = rules
        .prepare(json!({"name": "gh", "provider": "github", "secret": "s",
                        "paths": {"event_id": "$.id"}}))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(own.get("dedupe_key").is_none(), "{own}");
    let preset = rules
        .prepare(json!({"name": "gh", "provider": "github", "secret": "s"}))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(preset["dedupe_key"], json!(["body_sha256"]));
}
