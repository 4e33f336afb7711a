//! The stories of the one-stop mechanism, end to end through the API.

use serde_json::{Value, json};

use crate::helpers::*;

/// (a) online submission → accept → appraise → approve → return → evaluate.
#[tokio::test]
async fn online_dossier_from_submission_to_evaluation() {
    let app = spawn_app().await;
    let citizen = app.token("citizen").await;
    let officer = app.token("officer").await;
    let specialist = app.token("specialist").await;
    let leader = app.token("leader").await;

    let code = app.submit_birth(&citizen).await;
    assert!(code.starts_with("UB00073-"), "{code}");
    assert!(code.ends_with("-0001"), "{code}");

    let (s, d) = app
        .get(Some(&citizen), &format!("/api/v1/dossiers/{code}"))
        .await;
    assert_eq!(s, 200);
    assert_eq!(d["status"], "newly_registered");
    assert_eq!(d["status_number"], 1);
    assert_eq!(d["procedure_version"], 1);
    assert_eq!(d["documents"][0]["document_id"], "birth-notice");

    // The officer sees it in the queue to receive.
    let (s, q) = app.get(Some(&officer), "/api/v1/workqueue").await;
    assert_eq!(s, 200);
    assert_eq!(q["counts"]["to_receive"], 1);
    assert_eq!(q["items"][0]["code"], code.as_str());

    // The specialist may not accept (role), and may not forward the officer's step.
    let (s, body) = app
        .act(&specialist, &code, json!({ "action": "accept" }))
        .await;
    assert_eq!(s, 403, "{body}");

    let (s, d) = app
        .act(&officer, &code, json!({ "action": "accept" }))
        .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["status"], "accepted");
    assert!(d["due_at"].is_string());
    assert_eq!(d["steps"].as_array().map(Vec::len), Some(3));
    // The counts read a moment ago follow the change at once (this node
    // drops what it kept of the agency's queue counts).
    let (_, q) = app.get(Some(&officer), "/api/v1/workqueue").await;
    assert_eq!(q["counts"]["to_receive"], 0, "{q}");
    assert_eq!(q["counts"]["to_appraise"], 1, "{q}");

    let (s, body) = app
        .act(&specialist, &code, json!({ "action": "forward" }))
        .await;
    assert_eq!(s, 409, "{body}");
    assert_eq!(body["type"], "/problems/not-your-step");

    let (s, d) = app
        .act(&officer, &code, json!({ "action": "forward" }))
        .await;
    assert_eq!((s, d["current_step"].clone()), (200, json!("appraisal")));
    let (s, d) = app
        .act(
            &specialist,
            &code,
            json!({ "action": "forward", "note": "Hồ sơ hợp lệ" }),
        )
        .await;
    assert_eq!((s, d["holder"].clone()), (200, json!("leader")));
    // Approve twice: the second is not allowed from "completed".
    let (s, d) = app
        .act(&leader, &code, json!({ "action": "approve" }))
        .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["status"], "completed");
    assert_eq!(d["outcome"], "approved");
    // Accepted and approved within the working day: early or on time, never late.
    assert!(
        d["timeliness"] == "early" || d["timeliness"] == "on_time",
        "{}",
        d["timeliness"]
    );
    let (s, body) = app
        .act(&leader, &code, json!({ "action": "approve" }))
        .await;
    assert_eq!(s, 409);
    assert_eq!(body["type"], "/problems/transition-not-allowed");

    let (s, d) = app
        .act(&officer, &code, json!({ "action": "return_result" }))
        .await;
    assert_eq!((s, d["status"].clone()), (200, json!("result_returned")));

    let (s, d) = app
        .act(&citizen, &code, json!({ "action": "evaluate", "level": "very_satisfied", "scores": { "staff_attitude": 2, "total_time": 2 } }))
        .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["evaluation"]["level"], "very_satisfied");

    // The timeline tells the whole story in order.
    let actions: Vec<&str> = d["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        [
            "dossier.submit",
            "dossier.accept",
            "dossier.forward",
            "dossier.forward",
            "dossier.approve",
            "dossier.return_result",
            "dossier.evaluate"
        ]
    );

    // Public tracking: status and dates, no personal data.
    let r = app
        .client
        .get(app.url(&format!("/api/v1/track/{code}")))
        .send()
        .await
        .expect("track");
    assert_eq!(r.status(), 200);
    let text = r.text().await.expect("text");
    assert!(text.contains("result_returned"));
    for secret in ["Nguyễn", "001090012345", "0912345678", "Tràng Thi", "Khang"] {
        assert!(!text.contains(secret), "tracking leaks {secret}: {text}");
    }

    // Staff reading the dossier is in the audit chain; the citizen's own reading is not.
    let (s, _) = app
        .get(Some(&officer), &format!("/api/v1/dossiers/{code}"))
        .await;
    assert_eq!(s, 200);
    let recs = app.state.store.audit_records(0, 1000).await.expect("audit");
    let views = recs
        .iter()
        .filter(|r| r.entry.action == "dossier.view_personal_data")
        .collect::<Vec<_>>();
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].entry.actor, "officer");
    assert!(
        matches!(motcua::verify_audit(app.state.store.as_ref()).await, Ok(Ok(n)) if n as usize == recs.len())
    );

    // "My dossiers".
    let (s, mine) = app.get(Some(&citizen), "/api/v1/dossiers?mine=true").await;
    assert_eq!(s, 200);
    assert_eq!(mine["items"][0]["code"], code.as_str());
    let citizen2 = app.token("citizen2").await;
    let (_, other) = app.get(Some(&citizen2), "/api/v1/dossiers?mine=true").await;
    assert_eq!(other["items"].as_array().map(Vec::len), Some(0));
    let (s, _) = app
        .get(Some(&citizen2), &format!("/api/v1/dossiers/{code}"))
        .await;
    assert_eq!(s, 403);
}

/// (b) supplement requested and supplied: the clock pauses and resumes.
#[tokio::test]
async fn supplement_pauses_the_clock() {
    let app = spawn_app().await;
    let citizen = app.token("citizen").await;
    let officer = app.token("officer").await;
    let code = app.submit_birth(&citizen).await;
    let (_, d) = app
        .act(&officer, &code, json!({ "action": "accept" }))
        .await;
    let due_before: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(d["due_at"].clone()).expect("due");

    let (s, body) = app
        .act(&officer, &code, json!({ "action": "request_supplement" }))
        .await;
    assert_eq!(s, 422, "a reason is required");
    assert_eq!(body["errors"][0]["field"], "note");
    let (s, d) = app
        .act(&officer, &code, json!({ "action": "request_supplement", "note": "Bổ sung bản chụp giấy chứng sinh rõ nét" }))
        .await;
    assert_eq!(
        (s, d["status"].clone()),
        (200, json!("supplement_requested"))
    );
    assert_eq!(d["last_note"], "Bổ sung bản chụp giấy chứng sinh rõ nét");

    // A week passes while the citizen gathers the paper.
    app.state.clock.advance(chrono::Duration::days(7));
    let citizen = app.token("citizen").await;
    let form = reqwest::multipart::Form::new()
        .text(
            "action",
            json!({ "action": "supplement", "note": "Đã bổ sung" }).to_string(),
        )
        .part(
            "document:birth-notice",
            reqwest::multipart::Part::bytes(pdf("supplement")).file_name("giay-chung-sinh-ro.pdf"),
        );
    let r = app
        .client
        .post(app.url(&format!("/api/v1/dossiers/{code}/actions")))
        .bearer_auth(&citizen)
        .multipart(form)
        .send()
        .await
        .expect("supplement");
    assert_eq!(r.status(), 200);
    let d: Value = r.json().await.expect("json");
    assert_eq!(d["status"], "accepted", "back where it was paused");
    assert_eq!(d["documents"].as_array().map(Vec::len), Some(2));
    assert_eq!(d["documents"][1]["stage"], "supplement");

    let timeline = d["timeline"].as_array().expect("timeline");
    let at = |action: &str| -> chrono::DateTime<chrono::Utc> {
        let e = timeline
            .iter()
            .find(|e| e["action"] == action)
            .expect("entry");
        serde_json::from_value(e["at"].clone()).expect("at")
    };
    let cal = app.state.calendar();
    let paused =
        cal.working_minutes_between(at("dossier.request_supplement"), at("dossier.supplement"));
    assert!(
        paused >= 3 * 8 * 60,
        "a week holds at least three working days: {paused}"
    );
    let due_after: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(d["due_at"].clone()).expect("due");
    assert_eq!(due_after, cal.add_working_minutes(due_before, paused));
    assert!(due_after > due_before);
}

/// (c) refusal at reception, with reasons in the user's language.
#[tokio::test]
async fn refusal_needs_a_reason_and_ends_the_dossier() {
    let app = spawn_app().await;
    let citizen = app.token("citizen").await;
    let officer = app.token("officer").await;
    let code = app.submit_birth(&citizen).await;

    let (s, vi) = app
        .act_lang(&officer, &code, json!({ "action": "refuse" }), "vi")
        .await;
    assert_eq!(s, 422);
    assert_eq!(vi["title"], "Dữ liệu gửi lên chưa hợp lệ");
    assert_eq!(vi["errors"][0]["message"], "Cần ghi rõ lý do");
    let (_, en) = app
        .act_lang(&officer, &code, json!({ "action": "refuse" }), "en")
        .await;
    assert_eq!(en["errors"][0]["message"], "Please give a reason");

    let (s, d) = app
        .act(&officer, &code, json!({ "action": "refuse", "note": "Thủ tục thuộc thẩm quyền nơi cư trú của người mẹ" }))
        .await;
    assert_eq!(s, 200);
    assert_eq!(d["status"], "not_accepted");
    assert_eq!(d["status_number"], 3);
    let (s, body) = app
        .act(&officer, &code, json!({ "action": "accept" }))
        .await;
    assert_eq!(s, 409);
    assert_eq!(
        body["title"],
        "This action is not possible in the dossier's current status"
    );
    // Nothing changed.
    let (_, d2) = app
        .get(Some(&officer), &format!("/api/v1/dossiers/{code}"))
        .await;
    assert_eq!(d2["version"], d["version"]);
    let (s, _) = app
        .act(
            &citizen,
            &code,
            json!({ "action": "withdraw", "note": "x" }),
        )
        .await;
    assert_eq!(s, 409);
}

/// (d) a dossier running late gets an apology with a new date.
#[tokio::test]
async fn late_dossier_gets_an_apology_and_is_classified_late() {
    let app = spawn_app().await;
    let citizen = app.token("citizen").await;
    let officer = app.token("officer").await;
    let specialist = app.token("specialist").await;
    let leader = app.token("leader").await;
    let code = app.submit_birth(&citizen).await;
    let (_, d) = app
        .act(&officer, &code, json!({ "action": "accept" }))
        .await;
    let due: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(d["due_at"].clone()).expect("due");

    // Ten days later it is overdue in the queue.
    app.state.clock.advance(chrono::Duration::days(10));
    let officer = app.token("officer").await;
    let (_, q) = app.get(Some(&officer), "/api/v1/workqueue").await;
    assert_eq!(q["counts"]["overdue"], 1, "{q}");
    assert_eq!(q["items"][0]["overdue"], true);

    let new_day = (app.state.clock.now() + chrono::Duration::days(3))
        .format("%Y-%m-%d")
        .to_string();
    let (s, body) = app
        .act(
            &officer,
            &code,
            json!({ "action": "apologize", "note": "Chờ xác minh", "new_due_at": "2020-01-01" }),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    assert_eq!(body["errors"][0]["code"], "new-due-not-later");
    let (s, d) = app
        .act(&officer, &code, json!({ "action": "apologize", "note": "Cần xác minh thông tin nơi sinh với bệnh viện", "new_due_at": new_day }))
        .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(
        d["apologies"][0]["reason"],
        "Cần xác minh thông tin nơi sinh với bệnh viện"
    );
    let appointment: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(d["appointment_at"].clone()).expect("appt");
    assert!(appointment > app.state.clock.now());
    assert_eq!(d["due_at"], json!(due), "the legal deadline does not move");

    // The citizen sees the new date when tracking.
    let (s, t) = app.get(None, &format!("/api/v1/track/{code}")).await;
    assert_eq!(s, 200);
    assert_eq!(t["apology_new_due_at"], d["appointment_at"]);

    let specialist = {
        let _ = specialist;
        app.token("specialist").await
    };
    let leader = {
        let _ = leader;
        app.token("leader").await
    };
    app.act(&officer, &code, json!({ "action": "forward" }))
        .await;
    app.act(&specialist, &code, json!({ "action": "forward" }))
        .await;
    let (s, d) = app
        .act(&leader, &code, json!({ "action": "approve" }))
        .await;
    assert_eq!(s, 200);
    assert_eq!(d["timeliness"], "late");
    assert_eq!(d["steps"][1]["timeliness"], "late");
}

/// (e) an officer of another commune may not touch the dossier.
#[tokio::test]
async fn officer_of_another_commune_is_refused() {
    let app = spawn_app().await;
    let citizen = app.token("citizen").await;
    let code = app.submit_birth(&citizen).await;
    let other = app.token("officer.hoankiem").await;
    let (s, body) = app.act(&other, &code, json!({ "action": "accept" })).await;
    assert_eq!(s, 403, "{body}");
    assert_eq!(body["type"], "/problems/forbidden");
    let (s, _) = app
        .get(Some(&other), &format!("/api/v1/dossiers/{code}"))
        .await;
    assert_eq!(s, 403);
    let (_, q) = app.get(Some(&other), "/api/v1/workqueue").await;
    assert_eq!(q["counts"]["total"], 0);
    // Nothing changed.
    let (_, d) = app
        .get(Some(&citizen), &format!("/api/v1/dossiers/{code}"))
        .await;
    assert_eq!(d["status"], "newly_registered");
    assert_eq!(d["version"], 1);
}

/// Counter reception of a paper dossier for a walk-in citizen.
#[tokio::test]
async fn officer_receives_a_paper_dossier_at_the_counter() {
    let app = spawn_app().await;
    let officer = app.token("officer").await;
    let app_json = json!({
        "procedure_code": BIRTH, "unit_code": "00073", "channel": "in_person",
        "applicant": { "full_name": "Trần Thị Bình", "national_id": "001195054321", "phone": "0987654321" },
        "fields": birth_fields(),
    });
    let (s, body) = app
        .submit(
            &officer,
            app_json.clone(),
            vec![("birth-notice", "scan.pdf", pdf("counter"))],
        )
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["status"], "accepted");
    assert!(body["due_at"].is_string());
    let code = body["code"].as_str().expect("code");
    let (_, d) = app
        .get(Some(&officer), &format!("/api/v1/dossiers/{code}"))
        .await;
    assert_eq!(d["channel"], "in_person");
    assert_eq!(d["timeline"][0]["action"], "dossier.receive_at_counter");
    // The applicant has an account: the dossier is in her "my dossiers".
    let citizen2 = app.token("citizen2").await;
    let (_, mine) = app.get(Some(&citizen2), "/api/v1/dossiers?mine=true").await;
    assert_eq!(mine["items"][0]["code"], code);
    // A citizen cannot file "in person".
    let citizen = app.token("citizen").await;
    let (s, _) = app
        .submit(
            &citizen,
            app_json,
            vec![("birth-notice", "scan.pdf", pdf("x"))],
        )
        .await;
    assert_eq!(s, 403);
}

/// Bad input: every problem reported per field, nothing stored.
#[tokio::test]
async fn invalid_submission_reports_every_field_and_stores_nothing() {
    let app = spawn_app().await;
    let citizen = app.token("citizen").await;
    let mut fields = birth_fields();
    fields["child_birth_date"] = json!("2999-01-01");
    fields["declarant_national_id"] = json!("12345");
    fields["child_sex"] = json!("other");
    fields["child_ethnicity"] = json!("Kinh\u{0}");
    fields
        .as_object_mut()
        .expect("obj")
        .remove("child_full_name");
    let (s, body) = app
        .submit(
            &citizen,
            json!({ "procedure_code": BIRTH, "unit_code": "00073", "fields": fields }),
            vec![("birth-notice", "photo.exe", b"MZ\x90\0".to_vec())],
        )
        .await;
    assert_eq!(s, 422, "{body}");
    assert_eq!(body["type"], "/problems/validation");
    let errs: Vec<(String, String)> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap_or("").to_string(),
                e["code"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    for (field, code) in [
        ("fields.child_birth_date", "date-too-late"),
        ("fields.declarant_national_id", "invalid-national-id"),
        ("fields.child_sex", "invalid-choice"),
        ("fields.child_full_name", "required"),
        ("fields.child_ethnicity", "not-text"),
    ] {
        assert!(
            errs.iter().any(|(f, c)| f == field && c == code),
            "{field} {code} in {errs:?}"
        );
    }
    assert!(errs.iter().any(|(_, c)| c == "document-type"), "{errs:?}");
    assert!(
        body["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .all(|e| e["message"].as_str().is_some_and(|m| !m.is_empty()))
    );

    // A PDF name on non-PDF content is refused too.
    let (s, body) = app
        .submit(
            &citizen,
            json!({ "procedure_code": BIRTH, "unit_code": "00073", "fields": birth_fields() }),
            vec![(
                "birth-notice",
                "fake.pdf",
                b"<html>not a pdf</html>".to_vec(),
            )],
        )
        .await;
    assert_eq!(s, 422);
    assert_eq!(body["errors"][0]["code"], "document-content");
    // Unknown unit; a province code for a commune procedure.
    let (s, body) = app
        .submit(
            &citizen,
            json!({ "procedure_code": BIRTH, "unit_code": "99999", "fields": birth_fields() }),
            vec![("birth-notice", "a.pdf", pdf("u"))],
        )
        .await;
    assert_eq!(
        (s, body["errors"][0]["code"].clone()),
        (422, json!("unknown-unit"))
    );

    let counts = app.state.store.count_by_status().await.expect("counts");
    assert!(counts.is_empty(), "nothing stored: {counts:?}");
}

/// Dossier codes stay unique and gap-free under concurrent submissions.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_submissions_get_unique_consecutive_codes() {
    let app = std::sync::Arc::new(spawn_app().await);
    let citizen = app.token("citizen").await;
    let n = 40;
    let mut tasks = Vec::new();
    for _ in 0..n {
        let app = app.clone();
        let t = citizen.clone();
        tasks.push(tokio::spawn(async move { app.submit_birth(&t).await }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.expect("task"));
    }
    let mut seqs: Vec<u32> = codes
        .iter()
        .map(|c| {
            c.rsplit('-')
                .next()
                .and_then(|s| s.parse().ok())
                .expect("seq")
        })
        .collect();
    seqs.sort();
    assert_eq!(seqs, (1..=n).collect::<Vec<u32>>());
    let day = &codes[0][8..14];
    assert!(codes.iter().all(|c| &c[8..14] == day));
}
