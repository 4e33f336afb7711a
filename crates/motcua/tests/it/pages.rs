//! The web pages over real HTTP, as a browser without JavaScript uses
//! them: cookies handled by hand, redirects not followed automatically.

use reqwest::multipart::{Form, Part};
use serde_json::Value;

use crate::helpers::{
    BIRTH, Browser, Page, apply_path, birth_fields, birth_form, pdf, spawn_app, text_form,
};

/// Opens the dossier page and submits one action form on it.
async fn act_page(b: &mut Browser, code: &str, pairs: &[(&str, &str)]) -> Page {
    let page = b.get(&format!("/ho-so/{code}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let action = pairs
        .iter()
        .find(|(k, _)| *k == "action")
        .map(|(_, v)| *v)
        .expect("action");
    assert!(
        page.body.contains(&format!("value=\"{action}\"")),
        "{action} offered on the page"
    );
    b.post_multipart(
        &format!("/ho-so/{code}/thao-tac"),
        text_form(&page.csrf(), pairs),
    )
    .await
}

/// Citizen applies through the pages; returns the dossier code.
async fn apply_birth(b: &mut Browser) -> String {
    let page = b.get(&apply_path()).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let form = birth_form(&page.csrf(), &birth_fields()).part(
        "document:birth-notice",
        Part::bytes(pdf("page")).file_name("giay-chung-sinh.pdf"),
    );
    let r = b.post_multipart(&apply_path(), form).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let loc = r.location();
    assert!(loc.ends_with("/bien-nhan"), "{loc}");
    loc.trim_start_matches("/ho-so/")
        .trim_end_matches("/bien-nhan")
        .to_string()
}

#[tokio::test]
async fn home_and_catalogue_in_both_languages_and_search_ignores_diacritics() {
    let app = spawn_app().await;
    let mut b = Browser::new(&app, "vi");
    let home = b.get("/").await;
    assert_eq!(home.status, 200);
    assert!(home.body.contains("<html lang=\"vi\">"));
    assert!(home.body.contains("Cổng dịch vụ công"));
    assert!(home.body.contains("Hộ tịch"), "sectors listed");
    let csp = home.headers["content-security-policy"]
        .to_str()
        .expect("csp");
    assert!(csp.contains("style-src 'self';") && !csp.contains("unsafe-inline"));
    assert_eq!(home.headers["x-frame-options"], "DENY");
    assert_eq!(home.headers["x-content-type-options"], "nosniff");

    // The stylesheet is served with a long cache lifetime.
    let css_href = home
        .body
        .split("href=\"/static/app.css")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("stylesheet link");
    let css = b.get(&format!("/static/app.css{css_href}")).await;
    assert_eq!(css.status, 200);
    assert!(
        css.headers["cache-control"]
            .to_str()
            .expect("ascii")
            .contains("max-age=31536000")
    );

    let found = b.get("/thu-tuc?q=dang+ky+khai+sinh").await;
    assert_eq!(found.status, 200);
    assert!(found.body.contains("Đăng ký khai sinh"), "{}", found.body);
    assert!(!found.body.contains("Cấp bản sao trích lục"));

    // Switch to English: remembered in a cookie, stronger than Accept-Language.
    let sw = b.get("/ngon-ngu?lang=en&next=/thu-tuc").await;
    assert_eq!(sw.status, 303);
    assert_eq!(sw.location(), "/thu-tuc");
    assert_eq!(b.cookies.get("lang").map(String::as_str), Some("en"));
    let en = b.get("/thu-tuc?q=birth").await;
    assert!(en.body.contains("<html lang=\"en\">"));
    assert!(en.body.contains("Birth registration"));
    assert!(en.body.contains("Tiếng Việt"), "switch back offered");
    let home_en = b.get("/").await;
    assert!(home_en.body.contains("Public services, online"));

    // An unknown page is an HTML 404 in the user's language; the API keeps problem+json.
    let missing = b.get("/khong-co-trang-nay").await;
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("Page not found"));
    let api_missing = app
        .client
        .get(app.url("/api/v1/nothing"))
        .send()
        .await
        .expect("api");
    assert_eq!(api_missing.status(), 404);
    assert_eq!(
        api_missing.headers()["content-type"],
        "application/problem+json"
    );

    // The procedure page tells what to bring, what it costs and where to go.
    let proc_page = b.get(&format!("/thu-tuc/{BIRTH}")).await;
    assert_eq!(proc_page.status, 200);
    assert!(proc_page.body.contains("Birth notice"));
    assert!(proc_page.body.contains("Phường Cửa Nam"));
    app.stop().await;
}

#[tokio::test]
async fn apply_form_errors_keep_what_was_typed_and_the_uploaded_file() {
    let app = spawn_app().await;
    let mut b = Browser::new(&app, "vi");
    // Anonymous: sent to the login page, and back afterwards.
    let anon = b.get(&apply_path()).await;
    assert_eq!(anon.status, 303);
    assert!(anon.location().starts_with("/dang-nhap?next="));
    b.login("citizen").await;

    let page = b.get(&apply_path()).await;
    assert_eq!(page.status, 200);
    for needle in [
        "type=\"date\"",
        "type=\"tel\"",
        "type=\"radio\"",
        "<textarea",
        "type=\"file\"",
        "accept=\".pdf,.jpg,.jpeg,.png\"",
    ] {
        assert!(page.body.contains(needle), "{needle}");
    }
    let mut fields = birth_fields();
    fields["declarant_national_id"] = "12345".into();
    fields["child_full_name"] = "".into();
    let form = birth_form(&page.csrf(), &fields).part(
        "document:birth-notice",
        Part::bytes(pdf("kept")).file_name("giay-chung-sinh.pdf"),
    );
    let r = b.post_multipart(&apply_path(), form).await;
    assert_eq!(r.status, 422);
    // The error summary links to the fields; messages sit next to them.
    assert!(r.body.contains("class=\"summary\""));
    assert!(r.body.contains("href=\"#f-declarant-national-id\""));
    assert!(r.body.contains("href=\"#f-child-full-name\""));
    assert!(
        r.body
            .contains("Số định danh cá nhân phải gồm 12 chữ số hợp lệ")
    );
    // What the citizen typed is still there.
    assert!(r.body.contains("value=\"12345\""));
    assert!(
        r.body
            .contains("Bệnh viện Phụ sản Hà Nội, Hà Nội</textarea>")
    );
    assert!(r.body.contains("value=\"Nguyễn Văn An\""));
    assert!(r.body.contains("<option value=\"father\" selected>"));
    assert!(r.body.contains("value=\"male\" checked"));
    // The valid upload is kept server-side and shown.
    assert!(r.body.contains("giay-chung-sinh.pdf"));
    let kept_marker = "name=\"kept:birth-notice\" value=\"";
    let i = r.body.find(kept_marker).expect("kept file") + kept_marker.len();
    let kept = r.body[i..].split('"').next().expect("token").to_string();

    // Correct the two fields, without choosing the file again.
    let form = birth_form(&r.csrf(), &birth_fields()).text("kept:birth-notice", kept.clone());
    let ok = b.post_multipart(&apply_path(), form).await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    let receipt = b.get(&ok.location()).await;
    assert_eq!(receipt.status, 200);
    assert!(receipt.body.contains("giay-chung-sinh.pdf"));

    // A kept-file token from another session is refused.
    let mut other = Browser::new(&app, "vi");
    other.login("citizen2").await;
    let page = other.get(&apply_path()).await;
    let form = birth_form(&page.csrf(), &birth_fields()).text("kept:birth-notice", kept);
    let r = other.post_multipart(&apply_path(), form).await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("href=\"#d-birth-notice\""));
    app.stop().await;
}

#[tokio::test]
async fn citizen_applies_officer_accepts_through_pages_citizen_sees_timeline() {
    let app = spawn_app().await;
    let mut citizen = Browser::new(&app, "vi");
    citizen.login("citizen").await;
    let code = apply_birth(&mut citizen).await;

    let receipt = citizen.get(&format!("/ho-so/{code}/bien-nhan")).await;
    assert_eq!(receipt.status, 200);
    assert!(receipt.body.contains(&code));
    assert!(receipt.body.contains("<svg"), "QR code");
    assert!(receipt.body.contains(&format!("/tra-cuu?ma={code}")));
    assert!(receipt.body.contains("Bộ phận Một cửa, Phường Cửa Nam"));

    let mine = citizen.get("/ho-so").await;
    assert!(mine.body.contains(&code));
    assert!(mine.body.contains("Mới đăng ký"));

    // Public tracking: status, no personal data.
    let mut anon = Browser::new(&app, "vi");
    let tr = anon.get(&format!("/tra-cuu?ma={code}")).await;
    assert_eq!(tr.status, 200);
    assert!(tr.body.contains("Mới đăng ký"));
    assert!(!tr.body.contains("Nguyễn Văn An"));

    let mut officer = Browser::new(&app, "vi");
    officer.login("officer").await;
    let queue = officer.get("/can-bo").await;
    assert_eq!(queue.status, 200);
    assert!(queue.body.contains(&code), "{}", queue.body);
    assert!(queue.body.contains("Chờ tiếp nhận"));
    let search = officer.get("/can-bo?q=001090012345").await;
    assert!(search.body.contains(&code));

    let dossier = officer.get(&format!("/ho-so/{code}")).await;
    assert_eq!(dossier.status, 200);
    assert!(dossier.body.contains("Nguyễn Minh Khang"), "applicant data");
    assert!(dossier.body.contains("value=\"accept\""));
    let audit = app
        .state
        .store
        .dossier_audit(&motcua_domain::DossierCode::parse(&code).expect("code"))
        .await
        .expect("audit");
    assert!(
        audit
            .iter()
            .any(|r| r.entry.action == "dossier.view_personal_data" && r.entry.actor == "officer")
    );
    // The document opens inline, and that is audited too.
    let doc = officer.get(&format!("/ho-so/{code}/tai-lieu/0")).await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.headers["content-type"], "application/pdf");

    // A reason is required to refuse: the page says so and keeps the status.
    let refuse = officer
        .post_multipart(
            &format!("/ho-so/{code}/thao-tac"),
            text_form(&dossier.csrf(), &[("action", "refuse"), ("note", "")]),
        )
        .await;
    assert_eq!(refuse.status, 422);
    assert!(refuse.body.contains("Cần ghi rõ lý do"), "{}", refuse.body);

    let accept = officer
        .post_multipart(
            &format!("/ho-so/{code}/thao-tac"),
            text_form(&dossier.csrf(), &[("action", "accept"), ("note", "")]),
        )
        .await;
    assert_eq!(accept.status, 303, "{}", accept.body);

    let seen = citizen.get(&format!("/ho-so/{code}")).await;
    assert_eq!(seen.status, 200);
    assert!(seen.body.contains("Đã tiếp nhận"));
    assert!(
        seen.body.contains("Nộp hồ sơ trực tuyến"),
        "timeline: submit"
    );
    assert!(seen.body.contains("Tiếp nhận hồ sơ"), "timeline: accept");
    assert!(seen.body.contains("Hạn giải quyết"), "due date shown");
    // The citizen may withdraw (with a reason), not accept.
    assert!(seen.body.contains("value=\"withdraw\""));
    assert!(!seen.body.contains("value=\"accept\""));

    // The rest of the lifecycle, each through its page form.
    let r = act_page(&mut officer, &code, &[("action", "forward")]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let mut specialist = Browser::new(&app, "vi");
    specialist.login("specialist").await;
    let q = specialist.get("/can-bo?tab=appraise").await;
    assert!(q.body.contains(&code));
    let r = act_page(&mut specialist, &code, &[("action", "forward")]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let mut leader = Browser::new(&app, "vi");
    leader.login("leader").await;
    let r = act_page(&mut leader, &code, &[("action", "approve")]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let r = act_page(&mut officer, &code, &[("action", "return_result")]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let mut rating = vec![("action", "evaluate"), ("level", "very_satisfied")];
    let names: Vec<String> = motcua_domain::dossier::EVALUATION_CRITERIA
        .iter()
        .map(|c| format!("score_{c}"))
        .collect();
    for n in &names {
        rating.push((n.as_str(), "2"));
    }
    let r = act_page(&mut citizen, &code, &rating).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let done = citizen.get(&r.location()).await;
    assert!(done.body.contains("Đã trả kết quả"));
    assert!(done.body.contains("Rất hài lòng"));
    assert!(
        done.body.contains("Đánh giá chất lượng"),
        "timeline: evaluation"
    );
    let d = app
        .state
        .store
        .dossier(&motcua_domain::DossierCode::parse(&code).expect("code"))
        .await
        .expect("store")
        .expect("dossier");
    let eval = d.lifecycle.evaluation.expect("evaluated");
    assert_eq!(eval.scores.len(), 9);
    app.stop().await;
}

#[tokio::test]
async fn csrf_is_required_and_sessions_are_cookies_that_logout_kills() {
    let app = spawn_app().await;
    let mut citizen = Browser::new(&app, "vi");
    citizen.login("citizen").await;
    let code = apply_birth(&mut citizen).await;

    // Login without the double-submit cookie: refused.
    let mut fresh = Browser::new(&app, "vi");
    let r = fresh
        .post_form(
            "/dang-nhap",
            &[
                ("username", "officer"),
                ("password", "motcua-demo"),
                ("csrf", "00"),
            ],
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(!fresh.cookies.contains_key("motcua_session"));

    let mut officer = Browser::new(&app, "en");
    let page = officer.get("/dang-nhap").await;
    let csrf = page.csrf();
    let r = officer
        .post_form(
            "/dang-nhap",
            &[
                ("username", "officer"),
                ("password", "motcua-demo"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(r.status, 303);
    let cookie = r
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("motcua_session="))
        .expect("session cookie");
    assert!(cookie.contains("HttpOnly"));
    assert!(cookie.contains("SameSite=Lax"));
    assert!(cookie.contains("Path=/"));
    assert!(cookie.contains("Max-Age="));
    assert!(!cookie.contains("Secure"), "plain HTTP");

    // Behind a TLS proxy the cookie is Secure.
    let mut tls = Browser::new(&app, "vi");
    let page = tls.get("/dang-nhap").await;
    let csrf = page.csrf();
    let req = tls
        .client
        .post(format!("{}/dang-nhap", tls.base))
        .header("x-forwarded-proto", "https")
        .form(&[
            ("username", "citizen2"),
            ("password", "motcua-demo"),
            ("csrf", csrf.as_str()),
        ]);
    let r = tls.send(req).await;
    assert!(
        r.set_cookies()
            .iter()
            .any(|c| c.starts_with("motcua_session=") && c.contains("; Secure"))
    );

    // An action without the CSRF token: 403, and nothing changes.
    let r = officer
        .post_multipart(
            &format!("/ho-so/{code}/thao-tac"),
            Form::new().text("action", "accept"),
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(
        r.body.contains("Access denied"),
        "HTML error page in English"
    );
    let r = officer
        .post_multipart(
            &format!("/ho-so/{code}/thao-tac"),
            text_form("forged", &[("action", "accept")]),
        )
        .await;
    assert_eq!(r.status, 403);
    let d = app
        .state
        .store
        .dossier(&motcua_domain::DossierCode::parse(&code).expect("code"))
        .await
        .expect("store")
        .expect("dossier");
    assert_eq!(
        d.lifecycle.status,
        motcua_domain::dossier::Status::NewlyRegistered
    );

    // Logging out revokes the session: the old cookie is useless.
    let old = officer.cookies["motcua_session"].clone();
    let queue = officer.get("/can-bo").await;
    let out = officer
        .post_form("/dang-xuat", &[("csrf", &queue.csrf())])
        .await;
    assert_eq!(out.status, 303);
    assert!(!officer.cookies.contains_key("motcua_session"));
    officer.cookies.insert("motcua_session".into(), old);
    let after = officer.get("/can-bo").await;
    assert_eq!(after.status, 303);
    assert!(after.location().starts_with("/dang-nhap"));

    // Log out everywhere ends every session of the user.
    let mut second = Browser::new(&app, "vi");
    second.login("citizen").await;
    let mine = citizen.get("/ho-so").await;
    let r = citizen
        .post_form("/dang-xuat-tat-ca", &[("csrf", &mine.csrf())])
        .await;
    assert_eq!(r.status, 303);
    let r = second.get("/ho-so").await;
    assert_eq!(r.status, 303, "other device signed out too");
    app.stop().await;
}

#[tokio::test]
async fn supplement_apology_and_counter_reception_through_pages() {
    let app = spawn_app().await;
    let mut citizen = Browser::new(&app, "vi");
    citizen.login("citizen").await;
    let code = apply_birth(&mut citizen).await;
    let mut officer = Browser::new(&app, "vi");
    officer.login("officer").await;

    // Officer asks for a supplement; the citizen sees the request and sends a file.
    let r = act_page(
        &mut officer,
        &code,
        &[
            ("action", "request_supplement"),
            ("note", "Thiếu văn bản ủy quyền"),
        ],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let page = citizen.get(&format!("/ho-so/{code}")).await;
    assert!(page.body.contains("Yêu cầu bổ sung"));
    assert!(page.body.contains("Thiếu văn bản ủy quyền"));
    assert!(page.body.contains("name=\"document:authorisation\""));
    let form = text_form(&page.csrf(), &[("action", "supplement")]).part(
        "document:authorisation",
        Part::bytes(pdf("uy-quyen")).file_name("uy-quyen.pdf"),
    );
    let r = citizen
        .post_multipart(&format!("/ho-so/{code}/thao-tac"), form)
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let page = citizen.get(&format!("/ho-so/{code}")).await;
    assert!(page.body.contains("uy-quyen.pdf"));
    assert!(page.body.contains("Mới đăng ký"), "back to where it paused");

    // Accepted, then an apology with a new date, shown to the citizen.
    let r = act_page(&mut officer, &code, &[("action", "accept")]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let later = (app.state.clock.now() + chrono::Duration::days(40) + chrono::Duration::hours(7))
        .format("%Y-%m-%d")
        .to_string();
    let shown = (app.state.clock.now() + chrono::Duration::days(40) + chrono::Duration::hours(7))
        .format("%d/%m/%Y")
        .to_string();
    let r = act_page(
        &mut officer,
        &code,
        &[("action", "apologize"), ("note", "")],
    )
    .await;
    assert_eq!(r.status, 422, "a date and a reason are required");
    let r = act_page(
        &mut officer,
        &code,
        &[
            ("action", "apologize"),
            ("new_due_at", &later),
            ("note", "Cần xác minh thêm"),
        ],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let page = citizen.get(&format!("/ho-so/{code}")).await;
    assert!(page.body.contains("Ngày hẹn mới"));
    assert!(
        page.body.contains(&format!("{shown} 17:00")),
        "{}",
        page.body
    );
    assert!(page.body.contains("Cần xác minh thêm"));

    // A financial obligation: the officer asks for the fee with a note,
    // the citizen sees it, the officer confirms the payment.
    let r = act_page(
        &mut officer,
        &code,
        &[
            ("action", "request_payment"),
            ("note", "Nộp lệ phí 8.000 ₫ tại bộ phận một cửa"),
        ],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let page = citizen.get(&format!("/ho-so/{code}")).await;
    assert!(page.body.contains("Yêu cầu thực hiện nghĩa vụ tài chính"));
    assert!(page.body.contains("Nộp lệ phí 8.000 ₫ tại bộ phận một cửa"));
    let r = act_page(&mut officer, &code, &[("action", "confirm_payment")]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let page = officer.get(&format!("/ho-so/{code}")).await;
    assert!(
        page.body.contains("value=\"forward\""),
        "processing resumes"
    );

    // Counter reception of a paper dossier for a walk-in citizen.
    let form_page = officer
        .get(&format!("/can-bo/tiep-nhan?thu_tuc={BIRTH}"))
        .await;
    assert_eq!(form_page.status, 200);
    assert!(form_page.body.contains("name=\"a_national_id\""));
    let mut form = Form::new()
        .text("csrf", form_page.csrf())
        .text("a_full_name", "Trần Thị Bình")
        .text("a_national_id", "001195054321")
        .text("a_phone", "0987654321");
    for (k, v) in birth_fields().as_object().expect("fields") {
        form = form.text(format!("f_{k}"), v.as_str().unwrap_or_default().to_string());
    }
    let form = form.part(
        "document:birth-notice",
        Part::bytes(pdf("quay")).file_name("giay-chung-sinh.pdf"),
    );
    let r = officer
        .post_multipart(&format!("/can-bo/tiep-nhan?thu_tuc={BIRTH}"), form)
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let receipt = officer.get(&r.location()).await;
    assert!(receipt.body.contains("Đã tiếp nhận"));
    assert!(receipt.body.contains("Trần Thị Bình"));
    // The applicant has an account: the dossier is in her list too.
    let mut binh = Browser::new(&app, "vi");
    binh.login("citizen2").await;
    let mine = binh.get("/ho-so").await;
    let counter_code = r
        .location()
        .trim_start_matches("/ho-so/")
        .trim_end_matches("/bien-nhan")
        .to_string();
    assert!(mine.body.contains(&counter_code));
    app.stop().await;
}

impl Browser {
    /// Bytes transferred for a page with gzip (reqwest here does not
    /// decompress, so this is the size on the wire).
    async fn weight(&self, path: &str) -> usize {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .header("accept", "text/html")
            .header("accept-encoding", "gzip")
            .header("accept-language", self.lang)
            .header("cookie", self.cookie_header())
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200, "{path}");
        r.bytes().await.expect("body").len()
    }
}

#[tokio::test]
async fn every_key_citizen_page_weighs_under_50_kb_with_its_stylesheet() {
    let app = spawn_app().await;
    let mut b = Browser::new(&app, "vi");
    let home = b.get("/").await;
    let css_path = home
        .body
        .split("href=\"")
        .find(|s| s.starts_with("/static/app.css"))
        .and_then(|s| s.split('"').next())
        .expect("stylesheet")
        .to_string();
    let css = b.weight(&css_path).await;
    b.login("citizen").await;
    let code = apply_birth(&mut b).await;
    println!("page weights (gzip, bytes): stylesheet {css}");
    for path in [
        "/".to_string(),
        "/thu-tuc".into(),
        "/thu-tuc?q=dang+ky+khai+sinh".into(),
        format!("/thu-tuc/{BIRTH}"),
        apply_path(),
        format!("/ho-so/{code}/bien-nhan"),
        "/ho-so".into(),
        format!("/ho-so/{code}"),
        format!("/tra-cuu?ma={code}"),
    ] {
        let html = b.weight(&path).await;
        println!("  {path:<40} html {html:>6}  + css = {:>6}", html + css);
        assert!(html + css <= 50_000, "{path} weighs {}", html + css);
    }
    app.stop().await;
}

/// A file over the size limit is an error next to its document, and
/// everything typed comes back.
#[tokio::test]
async fn an_oversized_file_keeps_what_was_typed() {
    let app = spawn_app().await;
    let mut b = Browser::new(&app, "en");
    b.login("citizen").await;
    let page = b.get(&apply_path()).await;
    let mut big = pdf("big");
    big.resize(10 * 1_000_000 + 1, b' ');
    let form = birth_form(&page.csrf(), &birth_fields()).part(
        "document:birth-notice",
        Part::bytes(big).file_name("giay-chung-sinh.pdf"),
    );
    let r = b.post_multipart(&apply_path(), form).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("larger than allowed"), "{}", r.body);
    assert!(r.body.contains("Nguyễn Minh Khang"), "typed values kept");
    assert!(r.body.contains("Trần Thị Hoa"));
    let counts = app.state.store.count_by_status().await.expect("counts");
    assert!(counts.is_empty(), "nothing stored: {counts:?}");
}

const MARITAL: &str = "1.004873";

/// The marital-status form with what the citizen types besides the
/// registry's fields.
fn marital_form(csrf: &str, token: Option<&str>, extra: &[(&str, &str)]) -> Form {
    let mut f = Form::new()
        .text("csrf", csrf.to_string())
        .text("unit_code", "00073")
        .text("f_applicant_phone", "0912345678")
        .text("f_marital_status", "never_married")
        .text("f_purpose", "other")
        .text("f_purpose_detail", "Bổ sung hồ sơ xin việc");
    if let Some(t) = token {
        f = f.text("prefill", t.to_string());
    }
    for (k, v) in extra {
        f = f.text(k.to_string(), v.to_string());
    }
    f
}

/// The value of the hidden input `name` of a page.
fn hidden(page: &Page, name: &str) -> Option<String> {
    let marker = format!("type=\"hidden\" name=\"{name}\" value=\"");
    let i = page.body.find(&marker)? + marker.len();
    let raw = page.body[i..].split('"').next()?;
    // askama escapes the token's JSON quotes and ampersands.
    Some(
        raw.replace("&#34;", "\"")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// Opens the apply form at `path` and gives the consent to read registries.
async fn consent(b: &mut Browser, path: &str) -> Page {
    let page = b.get(path).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let r = b
        .post_multipart(
            path,
            marital_form(&page.csrf(), None, &[("intent", "prefill")]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r
}

fn code_of(r: &Page) -> String {
    assert_eq!(r.status, 303, "{}", r.body);
    r.location()
        .trim_start_matches("/ho-so/")
        .trim_end_matches("/bien-nhan")
        .to_string()
}

#[tokio::test]
async fn once_only_prefill_through_the_exchange_and_typed_when_the_registry_is_down() {
    let app = crate::helpers::spawn_app_opts(true).await;
    let path = format!("/thu-tuc/{MARITAL}/nop-ho-so");
    let mut citizen = Browser::new(&app, "vi");
    citizen.login("citizen").await;

    // The form asks for consent before anything is read.
    let page = citizen.get(&path).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Đồng ý và điền sẵn"), "{}", page.body);
    assert!(page.body.contains("Cơ sở dữ liệu quốc gia về dân cư"));
    assert!(
        !page.body.contains(" readonly"),
        "nothing read before the consent"
    );

    // Consent: the registry is read through the gateway; the fields are
    // filled and locked, and what was typed meanwhile stays.
    let r = consent(&mut citizen, &path).await;
    assert!(
        r.body
            .contains("Đã điền sẵn từ Cơ sở dữ liệu quốc gia về dân cư"),
        "{}",
        r.body
    );
    assert!(!r.body.contains("Đồng ý và điền sẵn"), "consent asked once");
    assert!(
        !r.body.contains("class=\"err\""),
        "no errors after the consent: {}",
        r.body
    );
    assert!(
        r.body.contains("value=\"Nguyễn Văn An\" readonly"),
        "{}",
        r.body
    );
    assert!(r.body.contains("value=\"15/03/1990\" readonly"));
    assert!(
        r.body.contains("value=\"Nam\" readonly"),
        "a choice shows its label"
    );
    assert!(
        r.body.contains("value=\"Bổ sung hồ sơ xin việc\""),
        "typed text kept"
    );
    let x_road_id = r
        .body
        .split("X-Road-Id: ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .expect("the exchange's id is shown")
        .to_string();
    let token = hidden(&r, "prefill").expect("the prefill token travels with the form");

    // An altered token is refused: nothing is filed, the citizen is told.
    let forged = token.replace("Nguyễn Văn An", "Kẻ Giả Mạo");
    assert_ne!(forged, token);
    let bad = citizen
        .post_multipart(&path, marital_form(&r.csrf(), Some(&forged), &[]))
        .await;
    assert_eq!(bad.status, 200, "{}", bad.body);
    assert!(
        bad.body.contains("Thông tin điền sẵn không hợp lệ"),
        "{}",
        bad.body
    );

    // Submitted: a locked field keeps the registry's value whatever the
    // browser sends.
    let done = citizen
        .post_multipart(
            &path,
            marital_form(
                &r.csrf(),
                Some(&token),
                &[("f_applicant_full_name", "Kẻ Giả Mạo")],
            ),
        )
        .await;
    let code = code_of(&done);
    let dossier = citizen.get(&format!("/ho-so/{code}")).await;
    assert_eq!(dossier.status, 200);
    assert!(dossier.body.contains("Nguyễn Văn An"));
    assert!(!dossier.body.contains("Kẻ Giả Mạo"));
    assert!(
        dossier
            .body
            .contains("lấy từ Cơ sở dữ liệu quốc gia về dân cư qua nền tảng liên thông"),
        "{}",
        dossier.body
    );
    assert!(
        dossier.body.contains(&x_road_id),
        "the dossier names the exchange"
    );
    // The officer sees it too, and the API carries the sources.
    let mut officer = Browser::new(&app, "vi");
    officer.login("officer").await;
    let staff_view = officer.get(&format!("/ho-so/{code}")).await;
    assert!(staff_view.body.contains(&x_road_id), "{}", staff_view.body);
    let token_api = app.token("citizen").await;
    let d: Value = app
        .client
        .get(app.url(&format!("/api/v1/dossiers/{code}")))
        .bearer_auth(&token_api)
        .send()
        .await
        .expect("dossier")
        .json()
        .await
        .expect("json");
    let sources = &d["fields"]["_sources"];
    assert_eq!(sources[0]["origin"], "exchange", "{d}");
    assert_eq!(sources[0]["x_road_id"], x_road_id.as_str());
    assert_eq!(d["fields"]["applicant_full_name"], "Nguyễn Văn An");

    // The exchange is in the signed message log under the same id.
    let gw = app
        .state
        .exchange
        .as_ref()
        .and_then(|e| e.gateway().cloned())
        .expect("gateway");
    let out = app.dir.join("exchange-export.jsonl");
    gw.log()
        .export(motcua_exchange::log::TimeRange::all(), &out)
        .await
        .expect("export");
    let records = motcua_exchange::log::read_records(&out).expect("records");
    let rec = records
        .iter()
        .find(|r| r.record.x_road_id == x_road_id)
        .expect("the prefill call is logged");
    assert_eq!(rec.record.client.as_deref(), Some("VN/GOV/UBND-HN/MOTCUA"));
    assert_eq!(rec.record.user_id.as_deref(), Some("VN001090012345"));

    // The registry goes down: the citizen is told, types the data, and
    // the dossier says it was typed and why.
    motcua::exchange::register_demo(
        app.state.exchange.as_deref().expect("handle"),
        app.state.store.as_ref(),
        "127.0.0.1:1".parse().expect("addr"),
    )
    .await
    .expect("point the service at a dead address");
    let r = consent(&mut citizen, &path).await;
    assert!(
        r.body
            .contains("Hiện không kết nối được Cơ sở dữ liệu quốc gia về dân cư"),
        "{}",
        r.body
    );
    assert!(!r.body.contains(" readonly"), "nothing locked");
    let token = hidden(&r, "prefill").expect("the outcome travels with the form");
    let typed = citizen
        .post_multipart(
            &path,
            marital_form(
                &r.csrf(),
                Some(&token),
                &[
                    ("f_applicant_full_name", "Nguyễn Văn An"),
                    ("f_applicant_birth_date", "1990-03-15"),
                    ("f_applicant_sex", "male"),
                    ("f_applicant_national_id", "001090012345"),
                    (
                        "f_applicant_residence",
                        "12 phố Tràng Thi, Phường Cửa Nam, Hà Nội",
                    ),
                ],
            ),
        )
        .await;
    let code2 = code_of(&typed);
    let dossier = citizen.get(&format!("/ho-so/{code2}")).await;
    assert!(
        dossier
            .body
            .contains("người nộp tự nhập (không kết nối được Cơ sở dữ liệu quốc gia về dân cư)"),
        "{}",
        dossier.body
    );
    app.stop().await;
}

/// A staff search lists the first 50 matches (by name: the newest first)
/// and says so; the API takes `?limit=` up to 200.
#[tokio::test]
async fn staff_search_lists_the_newest_matches_and_says_when_there_may_be_more() {
    let app = spawn_app().await;
    let citizen = app.token("citizen").await;
    let mut codes = Vec::new();
    for _ in 0..55 {
        codes.push(app.submit_birth(&citizen).await);
    }
    let officer = app.token("officer").await;
    let name = "/api/v1/dossiers?q=Nguy%E1%BB%85n%20V%C4%83n%20An";
    let listed = |v: &serde_json::Value| -> Vec<String> {
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["code"].as_str().expect("code").to_string())
            .collect()
    };
    let (status, v) = app.get(Some(&officer), name).await;
    assert_eq!(status, 200, "{v}");
    let first = listed(&v);
    assert_eq!(first.len(), 50);
    assert_eq!(first[0], codes[54], "the newest first");
    assert!(!first.contains(&codes[0]), "the oldest beyond the first 50");
    let (_, v) = app.get(Some(&officer), &format!("{name}&limit=7")).await;
    assert_eq!(
        listed(&v),
        codes[48..].iter().rev().cloned().collect::<Vec<_>>()
    );
    let (_, v) = app.get(Some(&officer), &format!("{name}&limit=5000")).await;
    assert_eq!(listed(&v).len(), 55, "all of them, within the cap of 200");

    let mut page = Browser::new(&app, "vi");
    page.login("officer").await;
    let p = page.get("/can-bo?q=Nguy%E1%BB%85n+V%C4%83n+An").await;
    assert_eq!(p.status, 200);
    assert!(
        p.body.contains("Đang hiện 50 hồ sơ khớp đầu tiên"),
        "{}",
        p.body
    );
    assert!(p.body.contains(&codes[54]) && !p.body.contains(&codes[0]));
    // A search that fits on the page says nothing of the kind.
    let one = page.get(&format!("/can-bo?q={}", codes[3])).await;
    assert!(one.body.contains(&codes[3]));
    assert!(!one.body.contains("hồ sơ khớp đầu tiên"));
}

/// A citizen who rates only the overall level gives no criterion a score:
/// the criteria start unset, and what is stored is what was chosen.
#[tokio::test]
async fn a_rating_stores_only_the_criteria_the_citizen_chose() {
    let app = spawn_app().await;
    let mut citizen = Browser::new(&app, "vi");
    citizen.login("citizen").await;
    let code = apply_birth(&mut citizen).await;
    // A new dossier: the application comes before the actions, and the
    // one action (withdraw, destructive) is not open.
    let fresh = citizen.get(&format!("/ho-so/{code}")).await;
    assert!(fresh.body.contains("value=\"withdraw\""));
    assert!(
        !fresh.body.contains("action danger\" open"),
        "withdraw closed"
    );
    let actions = fresh.body.find("id=\"actions-h\"").expect("actions");
    let documents = fresh.body.find("giay-chung-sinh.pdf").expect("documents");
    assert!(documents < actions, "documents before the actions");
    // Just submitted: the receipt says so and when to expect the result;
    // the list shows the expected date until the agency receives it.
    let receipt = citizen.get(&format!("/ho-so/{code}/bien-nhan")).await;
    assert!(
        receipt.body.contains("Nộp hồ sơ thành công"),
        "{}",
        receipt.body
    );
    assert!(receipt.body.contains("kết quả dự kiến có vào"));
    let list = citizen.get("/ho-so").await;
    assert!(list.body.contains("(dự kiến)"), "expected date in the list");
    let mut officer = Browser::new(&app, "vi");
    officer.login("officer").await;
    let mut specialist = Browser::new(&app, "vi");
    specialist.login("specialist").await;
    let mut leader = Browser::new(&app, "vi");
    leader.login("leader").await;
    // Each confirmation is a plain sentence; after forwarding it says who
    // holds the dossier now.
    for (who, action, said) in [
        ("officer", "accept", "Đã tiếp nhận hồ sơ. Hẹn trả kết quả: "),
        ("officer", "forward", "Người đang giữ hồ sơ: Chuyên viên."),
        ("specialist", "forward", "Người đang giữ hồ sơ: Lãnh đạo."),
        (
            "leader",
            "approve",
            "Đã phê duyệt. Hồ sơ chờ Cán bộ một cửa trả kết quả.",
        ),
        ("officer", "return_result", "Đã trả kết quả cho người nộp."),
    ] {
        let b = match who {
            "officer" => &mut officer,
            "specialist" => &mut specialist,
            _ => &mut leader,
        };
        let r = act_page(b, &code, &[("action", action), ("note", "")]).await;
        assert_eq!(r.status, 303, "{action}: {}", r.body);
        let done = b.get(&r.location()).await;
        assert!(done.body.contains(said), "{action}: {}", done.body);
    }
    let receipt = citizen.get(&format!("/ho-so/{code}/bien-nhan")).await;
    assert!(
        !receipt.body.contains("Nộp hồ sơ thành công"),
        "received: no panel"
    );
    // Every criterion's list starts on "not rated".
    let page = citizen.get(&format!("/ho-so/{code}")).await;
    for c in motcua_domain::dossier::EVALUATION_CRITERIA {
        let select = format!("name=\"score_{c}\"><option value=\"\" selected>Chưa chấm</option>");
        assert!(page.body.contains(&select), "{c} starts unset");
    }
    // What a browser sends when the citizen picks the level and two
    // criteria, leaving the other seven on "not rated".
    let mut rating = vec![("action", "evaluate"), ("level", "satisfied")];
    let names: Vec<String> = motcua_domain::dossier::EVALUATION_CRITERIA
        .iter()
        .map(|c| format!("score_{c}"))
        .collect();
    for n in &names {
        let v = match n.as_str() {
            "score_staff_attitude" => "1",
            "score_total_time" => "0",
            _ => "",
        };
        rating.push((n.as_str(), v));
    }
    let r = act_page(&mut citizen, &code, &rating).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let d = app
        .state
        .store
        .dossier(&motcua_domain::DossierCode::parse(&code).expect("code"))
        .await
        .expect("store")
        .expect("dossier");
    let eval = d.lifecycle.evaluation.expect("evaluated");
    assert_eq!(
        eval.scores,
        [
            ("staff_attitude".to_string(), 1u8),
            ("total_time".to_string(), 0u8)
        ]
        .into_iter()
        .collect::<std::collections::BTreeMap<_, _>>()
    );
    app.stop().await;
}

/// An administrator sent to sign in from the workqueue's address lands in
/// administration; a page they may not open says who is signed in and
/// leads back to their own page, not to a header that offers sign-in.
#[tokio::test]
async fn each_role_lands_where_it_works_and_a_refusal_shows_who_is_signed_in() {
    let app = spawn_app().await;
    let mut admin = Browser::new(&app, "vi");
    let page = admin.get("/dang-nhap?next=%2Fcan-bo").await;
    let r = admin
        .post_form(
            "/dang-nhap",
            &[
                ("username", "admin"),
                ("password", "motcua-demo"),
                ("next", "/can-bo"),
                ("csrf", &page.csrf()),
            ],
        )
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(r.location(), "/quan-tri");
    let refused = admin.get("/can-bo/tiep-nhan").await;
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("Vũ Thị Mai"), "who is signed in");
    assert!(
        refused.body.contains("action=\"/dang-xuat\""),
        "sign-out offered"
    );
    assert!(
        !refused.body.contains("href=\"/dang-nhap\""),
        "no sign-in link"
    );
    assert!(
        refused.body.contains("href=\"/quan-tri\""),
        "back to their page"
    );
    // The same for an unknown page, in English.
    let mut officer = Browser::new(&app, "en");
    officer.login("officer").await;
    let missing = officer.get("/khong-co-trang-nay").await;
    assert_eq!(missing.status, 404);
    assert!(
        missing.body.contains("Back to your page"),
        "{}",
        missing.body
    );
    assert!(missing.body.contains("href=\"/can-bo\""));
    // An officer keeps a deep link of their area.
    let mut o2 = Browser::new(&app, "vi");
    let page = o2.get("/dang-nhap").await;
    let r = o2
        .post_form(
            "/dang-nhap",
            &[
                ("username", "officer"),
                ("password", "motcua-demo"),
                ("next", "/can-bo/tiep-nhan"),
                ("csrf", &page.csrf()),
            ],
        )
        .await;
    assert_eq!(r.location(), "/can-bo/tiep-nhan");
    // A registration's errors are headed for the account, not a dossier.
    let mut newcomer = Browser::new(&app, "vi");
    let page = newcomer.get("/dang-ky").await;
    let r = newcomer
        .post_form(
            "/dang-ky",
            &[
                ("username", "nguoi.moi"),
                ("password", "ngan"),
                ("full_name", "Người Mới"),
                ("national_id", "001203004567"),
                ("csrf", &page.csrf()),
            ],
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("Tài khoản chưa hợp lệ"), "{}", r.body);
    assert!(!r.body.contains("Hồ sơ chưa hợp lệ"));
    // The number field brings up digits on a phone, and its hint is read
    // with it.
    let form = newcomer.get("/dang-ky").await;
    assert!(form.body.contains(
        "id=\"national_id\" name=\"national_id\" type=\"text\" value=\"\" autocomplete=\"off\" required inputmode=\"numeric\" aria-describedby=\"national_id-help\""
    ), "{}", form.body);
    app.stop().await;
}
