//! Provider presets over real HTTP: an account made from name, provider and secret alone
//! verifies a body signed the way the provider documents, and rejects a wrong signature.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn paystack_preset_verifies_sha512_hex_and_extracts_event_fields() {
    let gw = spawn_gateway().await;
    gw.create_account(json!({"name": "ps", "provider": "paystack", "secret": "sk_test_abc"}))
        .await;
    let body = r#"{"event":"charge.success","data":{"id":302961,"amount":5000}}"#;
    let sig = hex::encode(hmac_sha512(b"sk_test_abc", body.as_bytes()));
    let before = gw.audit_rows();
    let ok = gw
        .post_hook("ps", &[("x-paystack-signature", &sig)], body)
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.json());
    let e = gw.event(ok.json()["id"].as_str().unwrap_or("")).await;
    assert_eq!(e["event_type"], "charge.success");
    assert_eq!(e["event_id"], "302961");
    let bad = hex::encode(hmac_sha512(b"sk_test_other", body.as_bytes()));
    let no = gw
        .post_hook("ps", &[("x-paystack-signature", &bad)], body)
        .await;
    assert_eq!(no.status, 401, "{:?}", no.json());
    assert_eq!(gw.audit_rows(), before + 2);
    gw.stop().await;
}
