//! The holes an outside test found, tried again as the attacker did:
//! dossiers captured through a typed national ID, files attached by their
//! hash, open redirects, errors that were not problem+json, cached
//! personal data, and sign-in limits that lock out an office behind one
//! address.

use reqwest::multipart::Part;
use serde_json::{Value, json};

use crate::helpers::{
    BIRTH, Browser, TestApp, apply_path, birth_fields, birth_form, pdf, spawn_app, spawn_app_with,
    text_form,
};

/// A number nobody in the demo holds.
const STRANGER_ID: &str = "001095000777";

async fn register(app: &TestApp, username: &str, national_id: &str) -> (u16, Value) {
    let r = app
        .client
        .post(app.url("/api/v1/auth/register"))
        .json(&json!({
            "username": username,
            "password": "mat-khau-rat-dai",
            "full_name": "Người Đăng Ký",
            "national_id": national_id,
        }))
        .send()
        .await
        .expect("register");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn token_of(app: &TestApp, username: &str, password: &str) -> String {
    let r = app
        .client
        .post(app.url("/api/v1/auth/token"))
        .json(&json!({ "username": username, "password": password }))
        .send()
        .await
        .expect("token");
    assert_eq!(r.status(), 200, "sign-in of {username}");
    let v: Value = r.json().await.expect("json");
    v["token"].as_str().expect("token").to_string()
}

/// An officer of Phường Cửa Nam receives a paper dossier at the counter
/// for the holder of `national_id`, who has no account.
async fn counter_dossier(app: &TestApp, officer: &str, national_id: &str) -> String {
    let mut fields = birth_fields();
    fields["declarant_national_id"] = national_id.into();
    let (s, v) = app
        .submit(
            officer,
            json!({
                "procedure_code": BIRTH,
                "unit_code": "00073",
                "fields": fields,
                "channel": "in_person",
                "applicant": { "full_name": "Đỗ Thị Hoa", "national_id": national_id },
            }),
            vec![("birth-notice", "giay-chung-sinh.pdf", pdf("counter"))],
        )
        .await;
    assert_eq!(s, 201, "{v}");
    v["code"].as_str().expect("code").to_string()
}

fn codes_of(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["code"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_typed_national_id_shows_nobody_elses_counter_dossiers_until_an_officer_verifies_it() {
    let app = spawn_app().await;
    let officer = app.token("officer").await;
    let code = counter_dossier(&app, &officer, STRANGER_ID).await;

    // Registration answers the same for a number that has an account, one
    // that has none, and one of a counter dossier: nothing to learn.
    let (s1, v1) = register(&app, "ke.mao.danh", STRANGER_ID).await;
    let (s2, v2) = register(&app, "nguoi.khac", "001090012345").await;
    assert_eq!((s1, s2), (201, 201), "{v1} {v2}");
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&v1), keys(&v2));
    assert_eq!(v1["national_id_verified"], false);
    assert!(!v1.to_string().contains("taken"));

    // The impostor sees nothing of the stranger's dossier and cannot
    // withdraw it.
    let impostor = token_of(&app, "ke.mao.danh", "mat-khau-rat-dai").await;
    let (s, mine) = app.get(Some(&impostor), "/api/v1/dossiers?mine=true").await;
    assert_eq!(s, 200, "{mine}");
    assert!(!codes_of(&mine).contains(&code), "{mine}");
    let (s, v) = app
        .get(Some(&impostor), &format!("/api/v1/dossiers/{code}"))
        .await;
    assert!(s == 403 || s == 404, "{s} {v}");
    assert!(!v.to_string().contains("Đỗ Thị Hoa"));
    let (s, v) = app
        .act(
            &impostor,
            &code,
            json!({ "action": "withdraw", "note": "Tôi không nộp nữa" }),
        )
        .await;
    assert!(s == 403 || s == 404, "{s} {v}");
    let (s, v) = app
        .get(Some(&officer), &format!("/api/v1/dossiers/{code}"))
        .await;
    assert_eq!(s, 200);
    assert_ne!(v["status"], "withdrawn", "nothing changed: {v}");
    let mut pages = Browser::new(&app, "vi");
    assert_eq!(
        pages.try_login("ke.mao.danh", "mat-khau-rat-dai").await,
        303
    );
    let list = pages.get("/ho-so").await;
    assert_eq!(list.status, 200);
    assert!(!list.body.contains(&code));
    assert!(!list.body.contains("Đỗ Thị Hoa"));
    assert_ne!(pages.get(&format!("/ho-so/{code}")).await.status, 200);

    // Only a one-stop officer verifies a number.
    let verify = |who: Option<String>, user: &'static str, nid: &'static str| {
        let mut req = app
            .client
            .post(app.url(&format!("/api/v1/accounts/{user}/verify-national-id")))
            .json(&json!({ "national_id": nid, "document": "cccd" }));
        if let Some(t) = who {
            req = req.bearer_auth(t);
        }
        async move {
            let r = req.send().await.expect("verify");
            let status = r.status().as_u16();
            let ct = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap_or_default().to_string())
                .unwrap_or_default();
            (status, ct, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (s, ct, _) = verify(None, "ke.mao.danh", STRANGER_ID).await;
    assert_eq!((s, ct.as_str()), (401, "application/problem+json"));
    let (s, _, _) = verify(Some(impostor.clone()), "ke.mao.danh", STRANGER_ID).await;
    assert_eq!(s, 403, "a citizen does not verify themselves");

    // The real holder shows the card at the counter: the dossier is hers.
    let (s, v) = register(&app, "do.thi.hoa", STRANGER_ID).await;
    assert_eq!(s, 201, "{v}");
    let (s, _, v) = verify(Some(officer.clone()), "do.thi.hoa", STRANGER_ID).await;
    assert_eq!(s, 200, "{v}");
    assert!(v.to_string().contains(&code), "linked: {v}");
    let holder = token_of(&app, "do.thi.hoa", "mat-khau-rat-dai").await;
    let (_, mine) = app.get(Some(&holder), "/api/v1/dossiers?mine=true").await;
    assert!(codes_of(&mine).contains(&code), "{mine}");
    let (s, me) = app.get(Some(&holder), "/api/v1/me").await;
    assert_eq!(
        (s, &me["national_id_verified"]),
        (200, &json!(true)),
        "{me}"
    );
    // The number is verified for one account only; the impostor still
    // sees nothing.
    let (s, _, v) = verify(Some(officer.clone()), "ke.mao.danh", STRANGER_ID).await;
    assert_eq!(s, 422, "{v}");
    let (_, mine) = app.get(Some(&impostor), "/api/v1/dossiers?mine=true").await;
    assert!(!codes_of(&mine).contains(&code));
    // Every verification is accountable.
    let recs = app
        .state
        .store
        .audit_records(0, 100_000)
        .await
        .expect("audit");
    assert!(
        recs.iter()
            .any(|r| r.entry.action.contains("verify") && r.entry.actor == "officer"),
        "verification audited"
    );
    app.stop().await;
}

/// The value of the first hidden `kept:` input of `body`.
fn kept_token(body: &str) -> String {
    let marker = "name=\"kept:birth-notice\" value=\"";
    let i = body.find(marker).expect("kept file") + marker.len();
    body[i..]
        .split('"')
        .next()
        .expect("token")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn sha256_hex(bytes: &[u8]) -> String {
    motcua_domain::audit::sha256_hex(bytes)
}

#[tokio::test]
async fn a_known_file_hash_attaches_nothing_and_bad_file_names_break_no_download() {
    let app = spawn_app().await;
    // Citizen one's birth notice, whose hash staff and the audit log see.
    let secret_file = pdf("citizen-one-private");
    let sha = sha256_hex(&secret_file);
    let mut one = Browser::new(&app, "vi");
    one.login("citizen").await;
    let page = one.get(&apply_path()).await;
    let form = birth_form(&page.csrf(), &birth_fields()).part(
        "document:birth-notice",
        Part::bytes(secret_file.clone()).file_name("giay-chung-sinh.pdf"),
    );
    assert_eq!(one.post_multipart(&apply_path(), form).await.status, 303);

    // Citizen two forges tokens for that hash: with the old recipe (a MAC
    // keyed by their own session cookie), with none, and with a control
    // character in the name.
    let mut two = Browser::new(&app, "vi");
    two.login("citizen2").await;
    let session = two
        .cookie_header()
        .split("; ")
        .find_map(|c| c.strip_prefix("motcua_session="))
        .expect("session cookie")
        .to_string();
    let size = secret_file.len();
    let old_mac = |name: &str| {
        let value = format!("{sha}:{size}:{name}");
        sha256_hex(format!("motcua-kept:{session}:{value}").as_bytes())
    };
    let before = app
        .state
        .store
        .audit_records(0, 100_000)
        .await
        .expect("audit")
        .len();
    for forged in [
        format!("{sha}:{size}:{}:giay.pdf", old_mac("giay.pdf")),
        format!("{sha}:{size}::giay.pdf"),
        format!(
            "{sha}:{size}:{}:ten\u{1}tep.pdf",
            old_mac("ten\u{1}tep.pdf")
        ),
        format!("{sha}:{size}:{}:../../etc/passwd", "0".repeat(64)),
    ] {
        let page = two.get(&apply_path()).await;
        let form =
            birth_form(&page.csrf(), &birth_fields()).text("kept:birth-notice", forged.clone());
        let r = two.post_multipart(&apply_path(), form).await;
        assert_eq!(r.status, 422, "{forged}: {}", r.body);
        assert!(
            r.body.contains("href=\"#d-birth-notice\""),
            "file asked again"
        );
        assert!(!r.body.contains("giay.pdf") && !r.body.contains("passwd"));
    }
    let after = app
        .state
        .store
        .audit_records(0, 100_000)
        .await
        .expect("audit");
    assert!(
        after[before..]
            .iter()
            .all(|r| r.entry.action != "dossier.submit"),
        "no dossier was created"
    );

    // A real kept token works for its own session only (and the form says
    // the file is kept).
    let page = two.get(&apply_path()).await;
    let mut f = birth_form(&page.csrf(), &birth_fields());
    f = f.text("f_child_full_name", "").part(
        "document:birth-notice",
        Part::bytes(pdf("two")).file_name("giấy chứng sinh \"bé\".pdf"),
    );
    let r = two.post_multipart(&apply_path(), f).await;
    assert_eq!(r.status, 422);
    let token = kept_token(&r.body);
    let page = two.get(&apply_path()).await;
    let r = two
        .post_multipart(
            &apply_path(),
            birth_form(&page.csrf(), &birth_fields()).text("kept:birth-notice", token),
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let code = r
        .location()
        .trim_start_matches("/ho-so/")
        .trim_end_matches("/bien-nhan")
        .to_string();

    // A control character in an uploaded name is refused, clearly: raw in
    // the part's header it is a malformed request (400); a direction
    // override that hides the real extension is named (422). Neither
    // creates a dossier.
    let citizen = app.token("citizen").await;
    let (_, mine_before) = app.get(Some(&citizen), "/api/v1/dossiers?mine=true").await;
    for (name, want) in [
        ("ten\u{1}tep.pdf", 400),
        ("anh\u{202e}fdp.exe", 422),
        ("ten\ttep.pdf", 422),
    ] {
        let (s, v) = app
            .submit(
                &citizen,
                json!({ "procedure_code": BIRTH, "unit_code": "00073", "fields": birth_fields() }),
                vec![("birth-notice", name, pdf("ctl"))],
            )
            .await;
        assert_eq!(s, want, "{name:?}: {v}");
        assert_eq!(v["status"], want, "problem+json: {v}");
        if want == 422 {
            assert!(v.to_string().contains("document-filename"), "{v}");
        }
    }
    let (_, mine_after) = app.get(Some(&citizen), "/api/v1/dossiers?mine=true").await;
    assert_eq!(
        codes_of(&mine_before),
        codes_of(&mine_after),
        "nothing created"
    );

    // The quoted, accented name downloads, with both filename forms.
    let tok = app.token("citizen2").await;
    let r = app
        .client
        .get(app.url(&format!("/api/v1/dossiers/{code}/documents/0")))
        .bearer_auth(&tok)
        .send()
        .await
        .expect("download");
    assert_eq!(r.status(), 200);
    let cd = r.headers()["content-disposition"]
        .to_str()
        .expect("ascii header")
        .to_string();
    assert!(cd.contains("filename=\"gi"), "{cd}");
    assert!(!cd.contains("\"b\u{e9}\""), "{cd}");
    assert!(cd.contains("filename*=UTF-8''gi%E1%BA%A5y"), "{cd}");
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(
        r.bytes().await.expect("body").as_ref(),
        pdf("two").as_slice()
    );
    app.stop().await;
}

/// `next` values that browsers would read as another site, or that break
/// headers.
const HOSTILE_NEXT: &[&str] = &[
    "/%09/evil.example",
    "/%0A/evil.example",
    "/%0D%0ASet-Cookie:%20x=1",
    "//evil.example",
    "/\\evil.example",
    "%2F%2Fevil.example",
    "https://evil.example/",
    "javascript:alert(1)",
    "/%5Cevil.example",
    "/%E2%80%AE/evil.example",
];

fn assert_local(location: &str, what: &str) {
    assert!(location.starts_with('/'), "{what}: {location:?}");
    let rest = &location[1..];
    assert!(
        !rest.starts_with('/') && !rest.starts_with('\\'),
        "{what}: {location:?}"
    );
    assert!(
        !location
            .chars()
            .any(|c| c.is_control() || c.is_whitespace()),
        "{what}: {location:?}"
    );
    assert!(!location.contains("evil"), "{what}: {location:?}");
}

/// The sign-in form sent by a new browser, as `citizen` with `password`.
async fn sign_in_with_next(app: &TestApp, password: &str, next: &str) -> crate::helpers::Page {
    let mut b = Browser::new(app, "vi");
    let page = b.get("/dang-nhap").await;
    b.post_form(
        "/dang-nhap",
        &[
            ("csrf", &page.csrf()),
            ("username", "citizen"),
            ("password", password),
            ("next", next),
        ],
    )
    .await
}

#[tokio::test]
async fn redirects_never_leave_the_site_and_never_fail() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    for next in HOSTILE_NEXT {
        let r = client
            .get(format!("{}/ngon-ngu?lang=en&next={next}", app.base))
            .send()
            .await
            .expect("language");
        assert_eq!(r.status(), 303, "{next}");
        assert_local(
            r.headers()["location"].to_str().expect("location"),
            &format!("/ngon-ngu next={next}"),
        );
    }
    // A safe target is kept.
    let r = client
        .get(format!(
            "{}/ngon-ngu?lang=en&next=%2Fthu-tuc%3Fq%3Dkhai%2520sinh",
            app.base
        ))
        .send()
        .await
        .expect("language");
    assert_eq!(r.headers()["location"], "/thu-tuc?q=khai%20sinh");

    // Sign-in: the form's `next`, raw as a browser would send it.
    for next in HOSTILE_NEXT
        .iter()
        .map(|n| percent_decode(n))
        .chain(["/\t/evil.example".to_string(), "/\r\nX: y".to_string()])
    {
        let r = sign_in_with_next(&app, "motcua-demo", &next).await;
        assert_eq!(r.status, 303, "{next:?}: {}", r.body);
        assert_local(&r.location(), &format!("sign-in next={next:?}"));
        // And a failed sign-in with the same target sets no session.
        let r = sign_in_with_next(&app, "sai-mat-khau", &next).await;
        assert!(r.status < 500, "{next:?}: {}", r.status);
        assert!(
            r.set_cookies()
                .iter()
                .all(|c| !c.starts_with("motcua_session=") || c.contains("Max-Age=0")),
            "{next:?}"
        );
    }
    app.stop().await;
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn expect_problem(r: reqwest::Response, want: &[u16], what: &str) {
    let status = r.status().as_u16();
    assert!(want.contains(&status), "{what}: {status}");
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert_eq!(ct, "application/problem+json", "{what}");
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(v["status"], status, "{what}: {v}");
    assert!(
        v["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{what}: {v}"
    );
}

#[tokio::test]
async fn every_api_error_is_problem_json() {
    let app = spawn_app().await;
    let citizen = app.token("citizen").await;
    let admin = app.token("province.admin").await;
    let code = app.submit_birth(&citizen).await;
    let c = &app.client;
    let u = |p: &str| app.url(p);
    let cases: Vec<(reqwest::RequestBuilder, &[u16], &str)> = vec![
        (
            c.post(u("/api/v1/dossiers"))
                .header("content-type", "multipart/form-data"),
            &[401],
            "multipart without boundary, anonymous",
        ),
        (
            c.post(u("/api/v1/dossiers"))
                .bearer_auth(&citizen)
                .header("content-type", "multipart/form-data"),
            &[400, 415, 422],
            "multipart without boundary",
        ),
        (
            c.get(u(&format!("/api/v1/dossiers/{code}/documents/-1")))
                .bearer_auth(&citizen),
            &[400, 404, 422],
            "negative document index",
        ),
        (
            c.get(u("/api/v1/dossiers?limit=-1")).bearer_auth(&citizen),
            &[400, 422],
            "negative limit",
        ),
        (
            c.get(u("/api/v1/dossiers?mine=yes")).bearer_auth(&citizen),
            &[400, 422],
            "mine=yes",
        ),
        (
            c.get(u("/api/v1/track/%FF")),
            &[400, 404, 422],
            "invalid UTF-8 in the path",
        ),
        (
            c.get(u(
                "/api/v1/exchange/pubsub/deliveries?subscription=99999999999999999999999999",
            )),
            &[401],
            "huge subscription, anonymous",
        ),
        (
            c.get(u(
                "/api/v1/exchange/pubsub/deliveries?subscription=99999999999999999999999999",
            ))
            .bearer_auth(&admin),
            &[400, 422],
            "huge subscription",
        ),
        (
            c.delete(u("/api/v1/exchange/pubsub/subscriptions/abc")),
            &[401],
            "delete, anonymous",
        ),
        (
            c.delete(u("/api/v1/exchange/pubsub/subscriptions/abc"))
                .bearer_auth(&admin),
            &[400, 404, 422],
            "delete a subscription named abc",
        ),
        (
            c.post(u("/api/v1/auth/token"))
                .header("content-type", "application/json")
                .body(b"{\"username\":\"\xff\xfe\",\"password\":\"x\"}".to_vec()),
            &[400, 422],
            "invalid UTF-8 in JSON",
        ),
        (
            c.post(u("/api/v1/auth/token"))
                .header("content-type", "application/json")
                .body("{\"username\":"),
            &[400, 422],
            "truncated JSON",
        ),
        (c.get(u("/api/v1/no-such-thing")), &[404], "unknown route"),
        (c.put(u("/api/v1/procedures")), &[405], "wrong method"),
        (
            c.get(u("/api/v1/dossiers/NOT-A-CODE"))
                .bearer_auth(&citizen),
            &[400, 404, 422],
            "malformed dossier code",
        ),
        (
            c.get(u("/api/v1/me")).bearer_auth("forged-token"),
            &[401],
            "forged token",
        ),
        (
            c.post(u(&format!("/api/v1/dossiers/{code}/actions")))
                .bearer_auth(&citizen)
                .json(&json!({ "action": "approve" })),
            &[403, 409, 422],
            "a citizen approves",
        ),
        (
            c.post(u("/api/v1/auth/register"))
                .json(&json!({ "username": "x" })),
            &[400, 422],
            "missing fields",
        ),
    ];
    for (req, want, what) in cases {
        expect_problem(req.send().await.expect(what), want, what).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn personal_data_is_never_cached() {
    let app = spawn_app().await;
    let citizen = app.token("citizen").await;
    let code = app.submit_birth(&citizen).await;
    let r = app
        .client
        .get(app.url(&format!("/api/v1/dossiers/{code}")))
        .bearer_auth(&citizen)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let mut b = Browser::new(&app, "vi");
    b.login("citizen").await;
    for path in ["/ho-so", &format!("/ho-so/{code}"), "/thu-tuc"] {
        let r = b.get(path).await;
        assert_eq!(r.status, 200, "{path}");
        let cc = r
            .headers
            .get("cache-control")
            .map(|v| v.to_str().unwrap_or_default());
        assert_eq!(cc, Some("no-store"), "{path} signed in");
    }
    // The stylesheet stays cacheable.
    let css = app
        .client
        .get(app.url("/static/app.css"))
        .send()
        .await
        .expect("css");
    let cc = css.headers()["cache-control"].to_str().expect("cc");
    assert!(!cc.contains("no-store"), "{cc}");
    app.stop().await;
}

#[tokio::test]
async fn an_office_behind_one_address_signs_in_while_a_colleague_mistypes() {
    let app = spawn_app().await;
    let hash = motcua_commands::accounts::hash_password("mat-khau-van-phong").expect("hash");
    for i in 0..50 {
        app.state
            .store
            .create_user(
                &motcua_store::NewUser {
                    username: format!("canbo{i:02}"),
                    password_hash: hash.clone(),
                    full_name: format!("Cán bộ {i}"),
                    national_id: None,
                    phone: None,
                    email: None,
                    roles: vec![motcua_domain::dossier::Role::Citizen],
                    agency_code: None,
                },
                motcua::system_audit("user.create", &json!({ "n": i })),
            )
            .await
            .expect("user");
    }
    let sign_in = |user: String, password: &'static str, forwarded: Option<String>| {
        let mut req = app
            .client
            .post(app.url("/api/v1/auth/token"))
            .json(&json!({ "username": user, "password": password }));
        if let Some(f) = forwarded {
            req = req.header("x-forwarded-for", f);
        }
        async move {
            let r = req.send().await.expect("sign in");
            let retry = r.headers().get("retry-after").is_some();
            (r.status().as_u16(), retry)
        }
    };
    let mut refused = 0;
    let mut slowed = 0;
    for attempt in 0..30 {
        // The colleague mistypes, claiming a new address each time (not
        // trusted: the installation is not behind a proxy).
        let (s, retry) = sign_in(
            "canbo00".into(),
            "sai-mat-khau",
            Some(format!("10.0.0.{attempt}")),
        )
        .await;
        match s {
            401 => refused += 1,
            429 => {
                assert!(retry, "Retry-After on 429");
                slowed += 1
            }
            other => panic!("unexpected {other}"),
        }
        // Everyone else in the office signs in, interleaved.
        let n = 1 + attempt % 49;
        let (s, _) = sign_in(format!("canbo{n:02}"), "mat-khau-van-phong", None).await;
        assert_eq!(s, 200, "canbo{n:02} after {attempt} mistakes next door");
    }
    // Five free tries, then waits that double (1 s, 2 s, 4 s …): a few
    // more tries get through only when a wait has run out meanwhile.
    assert!((5..=11).contains(&refused), "{refused} refused");
    assert!(slowed >= 19, "{slowed} slowed");
    for n in 1..50 {
        let (s, _) = sign_in(format!("canbo{n:02}"), "mat-khau-van-phong", None).await;
        assert_eq!(s, 200, "canbo{n:02}");
    }
    app.stop().await;
}

#[tokio::test]
async fn registrations_from_one_address_are_limited() {
    let app = spawn_app().await;
    let mut statuses = Vec::new();
    for i in 0..12 {
        let nid = format!("0010950{i:05}");
        let (s, v) = register(&app, &format!("dang.ky.{i}"), &nid).await;
        statuses.push(s);
        if s == 429 {
            assert_eq!(v["status"], 429, "{v}");
        }
    }
    assert_eq!(&statuses[..10], &[201; 10], "{statuses:?}");
    assert_eq!(&statuses[10..], &[429, 429], "{statuses:?}");
    // A bad request is answered before it costs a registration.
    let (s, _) = register(&app, "x", "123").await;
    assert_eq!(s, 422);
    app.stop().await;
}

#[tokio::test]
async fn the_receipt_code_opens_the_timeline_and_guesses_are_limited() {
    let app = spawn_app().await;
    let mut b = Browser::new(&app, "vi");
    b.login("citizen").await;
    let page = b.get(&apply_path()).await;
    let form = birth_form(&page.csrf(), &birth_fields()).part(
        "document:birth-notice",
        Part::bytes(pdf("receipt")).file_name("giay-chung-sinh.pdf"),
    );
    let r = b.post_multipart(&apply_path(), form).await;
    assert_eq!(r.status, 303);
    let receipt = b.get(&r.location()).await;
    let code = r
        .location()
        .trim_start_matches("/ho-so/")
        .trim_end_matches("/bien-nhan")
        .to_string();
    let marker = "Mã bảo mật tra cứu</dt><dd class=\"code\">";
    let i = receipt.body.find(marker).expect("secret on the receipt") + marker.len();
    let secret = receipt.body[i..]
        .split('<')
        .next()
        .expect("secret")
        .to_string();
    assert!(
        secret.chars().filter(char::is_ascii_digit).count() >= 10,
        "{secret}"
    );

    let mut anon = Browser::new(&app, "vi");
    let plain = anon.get(&format!("/tra-cuu?ma={code}")).await;
    assert_eq!(plain.status, 200);
    assert!(
        !plain.body.contains("class=\"timeline\""),
        "no timeline without the code"
    );
    let opened = anon
        .get(&format!(
            "/tra-cuu?ma={code}&bm={}",
            secret.replace(' ', "+")
        ))
        .await;
    assert_eq!(opened.status, 200, "{}", opened.body);
    assert!(
        opened.body.contains("class=\"timeline\""),
        "{}",
        opened.body
    );
    assert_eq!(
        opened
            .headers
            .get("cache-control")
            .map(|v| v.to_str().unwrap_or("")),
        Some("no-store")
    );
    assert!(!opened.body.contains("Nguyễn Văn An"), "no personal data");

    let mut statuses = Vec::new();
    for g in 0..12 {
        let r = anon.get(&format!("/tra-cuu?ma={code}&bm={:010}", g)).await;
        statuses.push(r.status);
    }
    assert_eq!(&statuses[..10], &[422; 10], "{statuses:?}");
    assert_eq!(&statuses[10..], &[429, 429], "{statuses:?}");
    app.stop().await;
}

#[tokio::test]
async fn the_apply_form_with_a_forged_session_cookie_is_refused() {
    let app = spawn_app().await;
    let mut b = Browser::new(&app, "vi");
    b.cookies.insert("motcua_session".into(), "0".repeat(64));
    let r = b.get(&apply_path()).await;
    assert_eq!(r.status, 303, "treated as signed out");
    assert!(r.location().starts_with("/dang-nhap?next="));
    let r = b
        .post_multipart(&apply_path(), text_form("x", &[("unit_code", "00073")]))
        .await;
    assert!(r.status == 403 || r.status == 303, "{}", r.status);
    app.stop().await;
}

#[tokio::test]
async fn an_officer_verifies_a_number_at_the_counter_through_the_pages() {
    let app = spawn_app().await;
    let officer = app.token("officer").await;
    let code = counter_dossier(&app, &officer, STRANGER_ID).await;
    let (s, _) = register(&app, "do.thi.hoa", STRANGER_ID).await;
    assert_eq!(s, 201);

    // Citizens do not reach the page.
    let mut citizen = Browser::new(&app, "vi");
    citizen.login("citizen").await;
    assert_eq!(citizen.get("/can-bo/xac-thuc").await.status, 403);

    let mut staff = Browser::new(&app, "vi");
    staff.login("officer").await;
    let queue = staff.get("/can-bo").await;
    assert!(
        queue.body.contains("/can-bo/xac-thuc"),
        "linked from the queue"
    );
    let found = staff.get("/can-bo/xac-thuc?tai-khoan=do.thi.hoa").await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert!(found.body.contains("Người Đăng Ký"), "the account is shown");
    let form = |seen: bool| {
        let mut f = vec![
            ("csrf", found.csrf()),
            ("username", "do.thi.hoa".to_string()),
            ("national_id", STRANGER_ID.to_string()),
            ("document", "cccd".to_string()),
        ];
        if seen {
            f.push(("seen", "1".to_string()));
        }
        f
    };
    let unseen = form(false);
    let unseen: Vec<(&str, &str)> = unseen.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = staff.post_form("/can-bo/xac-thuc", &unseen).await;
    assert_eq!(r.status, 422, "the card must have been seen");
    assert!(r.body.contains("href=\"#seen\"") || r.body.contains("id=\"seen-err\""));
    let holder = token_of(&app, "do.thi.hoa", "mat-khau-rat-dai").await;
    let (_, mine) = app.get(Some(&holder), "/api/v1/dossiers?mine=true").await;
    assert!(!codes_of(&mine).contains(&code), "nothing linked yet");

    let seen = form(true);
    let seen: Vec<(&str, &str)> = seen.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = staff.post_form("/can-bo/xac-thuc", &seen).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains(&code), "the linked dossier is named");
    let (_, mine) = app.get(Some(&holder), "/api/v1/dossiers?mine=true").await;
    assert!(codes_of(&mine).contains(&code));
    // Without the form's CSRF token nothing happens.
    let r = staff
        .post_form(
            "/can-bo/xac-thuc",
            &[("username", "ke.mao.danh"), ("national_id", STRANGER_ID)],
        )
        .await;
    assert_eq!(r.status, 403);
    app.stop().await;
}

#[tokio::test]
async fn an_account_attacked_from_many_addresses_still_opens_with_its_password() {
    // Behind a proxy that the installation trusts, each request names its
    // client in X-Forwarded-For.
    let app = spawn_app_with(false, |c| c.trust_forwarded_for = true).await;
    let attempt = |password: &'static str, from: String| {
        let req = app
            .client
            .post(app.url("/api/v1/auth/token"))
            .header("x-forwarded-for", format!("203.0.113.250, {from}"))
            .json(&json!({ "username": "citizen", "password": password }));
        async move { req.send().await.expect("sign in").status().as_u16() }
    };
    // One address guessing: five tries, then it waits.
    let mut from_one = Vec::new();
    for _ in 0..7 {
        from_one.push(attempt("doan-bua", "198.51.100.7".into()).await);
    }
    assert_eq!(&from_one[..5], &[401; 5], "{from_one:?}");
    assert_eq!(from_one[5], 429, "{from_one:?}");
    // Guesses from other addresses: none is refused for waiting; with ten
    // failures in all the account is under attack.
    for i in 0..6 {
        assert_eq!(
            attempt("doan-bua", format!("198.51.100.{}", 20 + i)).await,
            401
        );
    }
    // The holder, from home, with the right password: let in (after a
    // short extra wait), not locked out.
    let started = std::time::Instant::now();
    assert_eq!(attempt("motcua-demo", "192.0.2.44".into()).await, 200);
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(1500),
        "an unknown browser is slowed down on an attacked account"
    );
    app.stop().await;
}

/// `path` with every `{parameter}` replaced by `1`.
fn filled(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push('1');
            }
            '}' => in_param = false,
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

#[tokio::test]
async fn every_route_but_the_public_ones_refuses_strangers_and_every_form_its_missing_token() {
    use motcua_web::kernel::routes::{PUBLIC, is_public};

    let app = spawn_app().await;
    let routes = motcua_web::routes_of(&app.state);
    assert!(routes.len() > 60, "the whole table: {}", routes.len());
    for (m, p) in PUBLIC {
        assert!(
            routes.iter().any(|r| r.method == *m && r.path == *p),
            "{m} {p} is listed as public but is not a route"
        );
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let audit_len = || async {
        app.state
            .store
            .audit_records(0, 1_000_000)
            .await
            .expect("audit")
            .len()
    };
    let before = audit_len().await;

    // A stranger: 401 from the API, the sign-in page from the pages —
    // before any body is read (a body is sent to every route).
    for r in routes.iter().filter(|r| !is_public(r)) {
        let method = reqwest::Method::from_bytes(r.method.as_bytes()).expect("method");
        let resp = client
            .request(method, app.url(&filled(r.path)))
            .header("content-type", "application/json")
            .body("{\"a\":1}")
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        if r.path.starts_with("/api/") {
            assert_eq!(status, 401, "{} {}", r.method, r.path);
            assert_eq!(
                resp.headers()["content-type"],
                "application/problem+json",
                "{} {}",
                r.method,
                r.path
            );
        } else {
            let to = resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            assert!(
                status == 303 && to.starts_with("/dang-nhap?next="),
                "{} {}: {status} {to}",
                r.method,
                r.path
            );
        }
    }

    // Signed in (as a province admin, who passes the most checks), every
    // form of the pages without its token is refused, urlencoded or
    // multipart, and changes nothing.
    let mut admin = Browser::new(&app, "vi");
    admin.login("province.admin").await;
    let signed_in_before = audit_len().await;
    for r in routes
        .iter()
        .filter(|r| r.method == "POST" && !r.path.starts_with("/api/"))
    {
        let path = filled(r.path);
        let plain = admin
            .post_form(
                &path,
                &[
                    ("op", "holiday"),
                    ("decision", "reset"),
                    ("username", "province.admin"),
                    ("password", "motcua-demo"),
                ],
            )
            .await;
        let multipart = admin
            .post_multipart(
                &path,
                reqwest::multipart::Form::new()
                    .text("op", "holiday")
                    .text("csrf", "forged"),
            )
            .await;
        for (kind, s) in [("form", plain.status), ("multipart", multipart.status)] {
            assert!(
                (400..500).contains(&s),
                "POST {} ({kind}) without its token: {s}",
                r.path
            );
        }
        assert!(
            plain.status == 403 || multipart.status == 403,
            "POST {}: {} / {}",
            r.path,
            plain.status,
            multipart.status
        );
    }
    assert!(
        admin.cookies.contains_key("motcua_session"),
        "still signed in: no form signed the admin out"
    );
    let after = audit_len().await;
    // Signing in is the only change (its audit record, if any).
    assert!(
        before <= signed_in_before && after == signed_in_before,
        "{before} {signed_in_before} {after}"
    );
    app.stop().await;
}
