//! Accounts, catalogue, versions, operations endpoints and the audit CLI.

use std::process::Command;

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn accounts_tokens_and_rate_limits() {
    let app = spawn_app().await;
    // Registration validates every field.
    let r = app
        .client
        .post(app.url("/api/v1/auth/register"))
        .header("accept-language", "vi")
        .json(&json!({ "username": "A", "password": "short", "full_name": "X", "national_id": "123", "phone": "12" }))
        .send()
        .await
        .expect("register");
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.expect("json");
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    for f in ["username", "password", "full_name", "national_id", "phone"] {
        assert!(fields.contains(&f), "{f} in {fields:?}");
    }
    let r = app
        .client
        .post(app.url("/api/v1/auth/register"))
        .json(&json!({ "username": "le.van.cuong", "password": "mat-khau-dai", "full_name": "Lê Văn Cường", "national_id": "004092011111", "phone": "0911222333" }))
        .send()
        .await
        .expect("register");
    assert_eq!(r.status(), 201);
    let r = app
        .client
        .post(app.url("/api/v1/auth/token"))
        .json(&json!({ "username": "le.van.cuong", "password": "mat-khau-dai" }))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 200);
    let token = r.json::<Value>().await.expect("json")["token"]
        .as_str()
        .expect("token")
        .to_string();
    let (s, me) = app.get(Some(&token), "/api/v1/me").await;
    assert_eq!((s, me["roles"][0].clone()), (200, json!("citizen")));

    // Revoked tokens stop working.
    let r = app
        .client
        .delete(app.url("/api/v1/auth/token"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status(), 204);
    let (s, body) = app.get(Some(&token), "/api/v1/me").await;
    assert_eq!(s, 401);
    assert_eq!(body["type"], "/problems/unauthorized");

    // Expired tokens too.
    let t = app.token("citizen").await;
    app.state.clock.advance(chrono::Duration::hours(13));
    assert_eq!(app.get(Some(&t), "/api/v1/me").await.0, 401);

    // Five failures lock the user name out for a while.
    for _ in 0..5 {
        let r = app
            .client
            .post(app.url("/api/v1/auth/token"))
            .json(&json!({ "username": "officer", "password": "wrong" }))
            .send()
            .await
            .expect("login");
        assert_eq!(r.status(), 401);
    }
    let r = app
        .client
        .post(app.url("/api/v1/auth/token"))
        .json(&json!({ "username": "officer", "password": "motcua-demo" }))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());
}

#[tokio::test]
async fn catalogue_search_ignores_diacritics_and_case() {
    let app = spawn_app().await;
    let (s, all) = app.get(None, "/api/v1/procedures").await;
    assert_eq!(s, 200);
    assert!(all.as_array().map(Vec::len).unwrap_or(0) >= 20);
    let (_, found) = app
        .get(None, "/api/v1/procedures?q=dang%20ky%20KHAI%20SINH")
        .await;
    let names: Vec<&str> = found
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|p| p["name_vi"].as_str())
        .collect();
    assert!(names.contains(&"Đăng ký khai sinh"), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("khai tử")));
    let (_, communes) = app.get(None, "/api/v1/procedures?level=province").await;
    assert!(
        communes
            .as_array()
            .expect("list")
            .iter()
            .all(|p| p["level"] == "province")
    );
    let (s, p) = app.get(None, &format!("/api/v1/procedures/{BIRTH}")).await;
    assert_eq!(s, 200);
    assert_eq!(p["name"]["en"], "Birth registration");
    assert_eq!(app.get(None, "/api/v1/procedures/9.999999").await.0, 404);
}

#[tokio::test]
async fn a_dossier_keeps_the_procedure_version_it_was_filed_under() {
    let app = spawn_app().await;
    let citizen = app.token("citizen").await;
    let old = app.submit_birth(&citizen).await;
    // Version 2 adds a required field.
    let mut p = app
        .state
        .store
        .current_procedure(BIRTH)
        .await
        .expect("get")
        .expect("proc")
        .definition;
    p.version = 2;
    let mut extra = p.fields[0].clone();
    extra.id = "child_blood_type".into();
    extra.required = true;
    extra.pattern = None;
    p.fields.push(extra);
    app.state
        .store
        .put_procedure(&p, motcua::system_audit("procedure.import", &json!({})))
        .await
        .expect("import v2");
    app.state.invalidate_catalogue().await;

    let (_, d) = app
        .get(Some(&citizen), &format!("/api/v1/dossiers/{old}"))
        .await;
    assert_eq!(d["procedure_version"], 1);
    let (s, body) = app
        .submit(
            &citizen,
            json!({ "procedure_code": BIRTH, "unit_code": "00073", "fields": birth_fields() }),
            vec![("birth-notice", "a.pdf", pdf("v2"))],
        )
        .await;
    assert_eq!(s, 422, "the new version asks for the new field: {body}");
    let mut f = birth_fields();
    f["child_blood_type"] = json!("O+");
    let (s, body) = app
        .submit(
            &citizen,
            json!({ "procedure_code": BIRTH, "unit_code": "00073", "fields": f }),
            vec![("birth-notice", "a.pdf", pdf("v2b"))],
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let (_, d) = app
        .get(
            Some(&citizen),
            &format!("/api/v1/dossiers/{}", body["code"].as_str().expect("code")),
        )
        .await;
    assert_eq!(d["procedure_version"], 2);
    // The old dossier is still processed under version 1.
    let officer = app.token("officer").await;
    let (s, _) = app.act(&officer, &old, json!({ "action": "accept" })).await;
    assert_eq!(s, 200);
    // Same version, different content: refused.
    p.name.en = "Changed".into();
    assert!(
        app.state
            .store
            .put_procedure(&p, motcua::system_audit("procedure.import", &json!({})))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn health_metrics_and_openapi() {
    let app = spawn_app().await;
    let r = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status(), 200);
    let r = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(r.status(), 200);
    let citizen = app.token("citizen").await;
    app.submit_birth(&citizen).await;
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        text.contains("motcua_dossiers{status=\"newly_registered\"} 1"),
        "{text}"
    );
    assert!(text.contains("motcua_http_requests_total{method=\"POST\",route=\"/api/v1/dossiers\",status=\"201\"} 1"), "{text}");
    let (s, doc) = app.get(None, "/api/openapi.json").await;
    assert_eq!(s, 200);
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    for path in [
        "/api/v1/dossiers",
        "/api/v1/dossiers/{code}/actions",
        "/api/v1/track/{code}",
        "/api/v1/auth/token",
        "/api/v1/workqueue",
    ] {
        assert!(doc["paths"][path].is_object(), "{path}");
    }
    let r = app
        .client
        .get(app.url("/api/docs"))
        .send()
        .await
        .expect("docs");
    let headers = r.headers().clone();
    let html = r.text().await.expect("html");
    assert!(html.contains("/api/v1/dossiers/{code}/actions"));
    assert!(!html.contains("<script"), "the docs page needs no script");
    assert_eq!(
        headers.get("x-content-type-options").map(|v| v.as_bytes()),
        Some(&b"nosniff"[..])
    );
    let (s, body) = app.get(None, "/no/such/page").await;
    assert_eq!(
        (s, body["type"].clone()),
        (404, json!("/problems/not-found"))
    );
}

#[tokio::test]
async fn orphaned_attachments_are_swept_and_referenced_ones_kept() {
    let app = spawn_app().await;
    let citizen = app.token("citizen").await;
    let code = app.submit_birth(&citizen).await;
    let orphan = app
        .state
        .objects
        .put(b"left over by a crash".to_vec())
        .await
        .expect("put");
    let removed = motcua::sweep(
        app.state.store.as_ref(),
        app.state.objects.as_ref(),
        std::time::Duration::ZERO,
    )
    .await
    .expect("sweep");
    assert_eq!(removed, 1);
    assert!(
        !app.state
            .objects
            .exists(&orphan.sha256)
            .await
            .expect("exists")
    );
    let r = app
        .client
        .get(app.url(&format!("/api/v1/dossiers/{code}/documents/0")))
        .bearer_auth(&citizen)
        .send()
        .await
        .expect("doc");
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.expect("bytes").starts_with(b"%PDF"));
}

/// Flipping one byte of an audit row in the database file is detected by
/// `motcua audit verify`, which names the record.
#[tokio::test]
async fn audit_verify_detects_a_flipped_byte_in_the_database_file() {
    let app = spawn_app().await;
    let citizen = app.token("citizen").await;
    let officer = app.token("officer").await;
    let code = app.submit_birth(&citizen).await;
    let (s, _) = app
        .act(
            &officer,
            &code,
            json!({ "action": "request_supplement", "note": "CANARY-thieu-giay-to" }),
        )
        .await;
    assert_eq!(s, 200);
    let (dir, _cfg) = app.stop().await;
    let data = dir.join("data");
    let bin = env!("CARGO_BIN_EXE_motcua");

    let ok = Command::new(bin)
        .args(["audit", "verify", "--data-dir"])
        .arg(&data)
        .output()
        .expect("run");
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{out}");
    assert!(out.contains("records verified"), "{out}");

    let db = data.join("motcua.db");
    let mut bytes = std::fs::read(&db).expect("db");
    // In the audit row the note's bytes follow the to_status column's
    // (SQLite stores a row's values one after another); in the dossier row
    // the same text sits inside JSON, after a quote.
    let needle = b"supplement_requestedCANARY-thieu";
    let pos = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the audit row is in the file");
    bytes[pos + b"supplement_requested".len()] ^= 0x01; // 'C' -> 'B'
    std::fs::write(&db, &bytes).expect("write");

    let bad = Command::new(bin)
        .args(["audit", "verify", "--data-dir"])
        .arg(&data)
        .output()
        .expect("run");
    let out = String::from_utf8_lossy(&bad.stdout);
    assert!(!bad.status.success(), "tampering must be detected: {out}");
    assert!(out.contains("BROKEN at record"), "{out}");
    assert!(out.contains("altered"), "{out}");
}

#[tokio::test]
async fn procedures_lint_names_file_and_line() {
    let dir = temp_dir("lint");
    std::fs::write(
        dir.join("bad.yaml"),
        "code: \"1.001193\"\nversion: 0\nname: { vi: \"\", en: \"x\" }\n",
    )
    .expect("write");
    let bin = env!("CARGO_BIN_EXE_motcua");
    let out = Command::new(bin)
        .args(["procedures", "lint"])
        .arg(&dir)
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(text.contains("bad.yaml:"), "{text}");
    let shipped = Command::new(bin)
        .args(["procedures", "lint"])
        .arg(workspace().join("procedures"))
        .output()
        .expect("run");
    assert!(
        shipped.status.success(),
        "{}",
        String::from_utf8_lossy(&shipped.stdout)
    );
}
