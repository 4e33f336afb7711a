//! The administration pages and the printable Forms 02–05 over real HTTP,
//! as a browser without JavaScript uses them (cookies by hand, redirects
//! not followed).

use reqwest::multipart::{Form, Part};
use serde_json::json;

use crate::helpers::{Browser, TestApp, spawn_app, text_form};

async fn audit_actions(app: &TestApp) -> Vec<(String, String)> {
    app.state
        .store
        .audit_records(0, 100_000)
        .await
        .expect("audit")
        .into_iter()
        .map(|r| (r.entry.action, r.entry.actor))
        .collect()
}

#[tokio::test]
async fn agency_admin_creates_an_officer_who_can_log_in_and_others_get_403() {
    let app = spawn_app().await;
    let mut admin = Browser::new(&app, "vi");
    admin.login("admin").await;
    let home = admin.get("/quan-tri").await;
    assert_eq!(home.status, 200, "{}", home.body);
    assert!(home.body.contains("href=\"/quan-tri/nguoi-dung\""));
    let users = admin.get("/quan-tri/nguoi-dung").await;
    assert_eq!(users.status, 200);
    assert!(users.body.contains("officer"), "lists the agency's users");
    assert!(
        !users.body.contains("officer.hoankiem"),
        "not another agency's users"
    );
    assert!(
        !users.body.contains("value=\"province_admin\""),
        "agency admins cannot give province roles"
    );

    // Validation keeps what was typed.
    let r = admin
        .post_multipart(
            "/quan-tri/nguoi-dung",
            text_form(
                &users.csrf(),
                &[
                    ("username", "Bad Name"),
                    ("full_name", "Ngô Thị Hạnh"),
                    ("agency", "UB00073"),
                    ("roles", "officer"),
                ],
            ),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("value=\"Ngô Thị Hạnh\""));
    assert!(r.body.contains("href=\"#f-username\""));

    let r = admin
        .post_multipart(
            "/quan-tri/nguoi-dung",
            text_form(
                &users.csrf(),
                &[
                    ("username", "officer.moi"),
                    ("full_name", "Ngô Thị Hạnh"),
                    ("agency", "UB00073"),
                    ("roles", "officer"),
                    ("roles", "specialist"),
                    ("password", ""),
                ],
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let password = r.secret();
    assert!(password.len() >= 16, "a strong generated password");
    let u = app
        .state
        .store
        .user_by_name("officer.moi")
        .await
        .expect("store")
        .expect("created");
    assert_eq!(u.agency_code.as_ref().map(|a| a.as_str()), Some("UB00073"));
    assert_eq!(u.roles.len(), 2);
    assert!(
        audit_actions(&app)
            .await
            .contains(&("user.create".into(), "admin".into()))
    );

    let mut newbie = Browser::new(&app, "vi");
    assert_eq!(newbie.try_login("officer.moi", &password).await, 303);
    assert_eq!(newbie.get("/can-bo").await.status, 200);
    assert_eq!(newbie.get("/quan-tri").await.status, 403, "not an admin");

    // Citizens and officers get 403; anonymous visitors log in first.
    let mut citizen = Browser::new(&app, "en");
    citizen.login("citizen").await;
    let r = citizen.get("/quan-tri/nguoi-dung").await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("Access denied"));
    let mut anon = Browser::new(&app, "vi");
    let r = anon.get("/quan-tri").await;
    assert_eq!(r.status, 303);
    assert!(r.location().starts_with("/dang-nhap"));

    // The English page and the holidays page.
    let mut en = Browser::new(&app, "en");
    en.login("admin").await;
    let h = en.get("/quan-tri/ngay-nghi").await;
    assert_eq!(h.status, 200);
    // Words for an administrator, not the configuration file's.
    assert!(!h.body.contains("motcua.toml"));
    assert!(!h.body.contains("[calendar]"));
    assert!(h.body.contains("on every server within a minute"));
    assert!(h.body.contains("01/01/"), "New Year's Day listed");
}

#[tokio::test]
async fn agency_admin_cannot_reach_another_agency_and_csrf_is_required() {
    let app = spawn_app().await;
    let mut admin = Browser::new(&app, "vi");
    admin.login("admin").await;
    let page = admin.get("/quan-tri/nguoi-dung").await;
    let csrf = page.csrf();
    let r = admin
        .post_multipart(
            "/quan-tri/nguoi-dung",
            text_form(
                &csrf,
                &[
                    ("username", "officer.khac"),
                    ("full_name", "Lý Văn Tài"),
                    ("agency", "UB00070"),
                    ("roles", "officer"),
                ],
            ),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = admin
        .post_multipart(
            "/quan-tri/nguoi-dung",
            text_form(
                &csrf,
                &[
                    ("username", "officer.khac"),
                    ("full_name", "Lý Văn Tài"),
                    ("agency", "UB00073"),
                    ("roles", "province_admin"),
                ],
            ),
        )
        .await;
    assert_eq!(r.status, 403, "a province role from an agency admin");
    // CSRF missing.
    let r = admin
        .post_multipart(
            "/quan-tri/nguoi-dung",
            Form::new()
                .text("username", "officer.khac")
                .text("full_name", "Lý Văn Tài")
                .text("agency", "UB00073")
                .text("roles", "officer"),
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(
        app.state
            .store
            .user_by_name("officer.khac")
            .await
            .expect("store")
            .is_none(),
        "nothing created"
    );
    // Another agency's user cannot be disabled or reset.
    let other = app
        .state
        .store
        .user_by_name("officer.hoankiem")
        .await
        .expect("store")
        .expect("demo user");
    let r = admin
        .post_multipart(
            &format!("/quan-tri/nguoi-dung/{}/khoa", other.id),
            text_form(&csrf, &[("disabled", "1")]),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = admin
        .post_multipart(
            &format!("/quan-tri/nguoi-dung/{}/mat-khau", other.id),
            text_form(&csrf, &[("password", "")]),
        )
        .await;
    assert_eq!(r.status, 403);
    // Agency admins cannot edit agencies or procedures.
    let r = admin
        .post_multipart(
            "/quan-tri/co-quan",
            text_form(
                &csrf,
                &[
                    ("mode", "edit"),
                    ("code", "UB00073"),
                    ("name_vi", "X"),
                    ("name_en", "X"),
                    ("kind", "commune_peoples_committee"),
                    ("unit_code", "00073"),
                    ("address", "X"),
                ],
            ),
        )
        .await;
    assert_eq!(r.status, 403);

    // The province admin may create users anywhere in Hà Nội and agencies.
    let mut prov = Browser::new(&app, "vi");
    prov.login("province.admin").await;
    let page = prov.get("/quan-tri/nguoi-dung").await;
    assert!(page.body.contains("officer.hoankiem"));
    assert!(!page.body.contains("officer.caobang"), "not Cao Bằng");
    let r = prov
        .post_multipart(
            "/quan-tri/nguoi-dung",
            text_form(
                &page.csrf(),
                &[
                    ("username", "leader.hoankiem"),
                    ("full_name", "Lý Văn Tài"),
                    ("agency", "UB00070"),
                    ("roles", "leader"),
                    ("password", "mat-khau-rieng-1"),
                ],
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        !r.body.contains("secret-value"),
        "a chosen password is not shown"
    );
    let mut leader = Browser::new(&app, "vi");
    assert_eq!(
        leader
            .try_login("leader.hoankiem", "mat-khau-rieng-1")
            .await,
        303
    );

    let agencies = prov.get("/quan-tri/co-quan").await;
    assert_eq!(agencies.status, 200);
    assert!(agencies.body.contains("UB00070"));
    let bad = prov
        .post_multipart(
            "/quan-tri/co-quan",
            text_form(
                &agencies.csrf(),
                &[
                    ("mode", "create"),
                    ("code", "ub-1"),
                    ("name_vi", "Ủy ban nhân dân Phường Ba Đình"),
                    ("name_en", "People's Committee of Ba Dinh Ward"),
                    ("kind", "commune_peoples_committee"),
                    ("unit_code", "01273"),
                    ("address", "Phường Ba Đình, Hà Nội"),
                ],
            ),
        )
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("href=\"#f-code\""));
    assert!(
        bad.body.contains("href=\"#f-unit_code\""),
        "Cao Bằng is outside"
    );
    let ok = prov
        .post_multipart(
            "/quan-tri/co-quan",
            text_form(
                &agencies.csrf(),
                &[
                    ("mode", "create"),
                    ("code", "UB00004"),
                    ("name_vi", "Ủy ban nhân dân Phường Ba Đình"),
                    ("name_en", "People's Committee of Ba Dinh Ward"),
                    ("kind", "commune_peoples_committee"),
                    ("unit_code", "00004"),
                    ("address", "Phường Ba Đình, Hà Nội"),
                ],
            ),
        )
        .await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    let a = app
        .state
        .store
        .agency(&motcua_domain::AgencyCode::parse("UB00004").expect("code"))
        .await
        .expect("store")
        .expect("created");
    assert_eq!(a.name_en, "People's Committee of Ba Dinh Ward");
    assert!(
        audit_actions(&app)
            .await
            .contains(&("agency.put".into(), "province.admin".into()))
    );
}

#[tokio::test]
async fn disabling_a_user_ends_their_session_and_reset_password_too() {
    let app = spawn_app().await;
    let mut officer = Browser::new(&app, "vi");
    officer.login("officer").await;
    assert_eq!(officer.get("/can-bo").await.status, 200);
    let id = app
        .state
        .store
        .user_by_name("officer")
        .await
        .expect("store")
        .expect("demo")
        .id;
    let mut admin = Browser::new(&app, "vi");
    admin.login("admin").await;
    let page = admin.get("/quan-tri/nguoi-dung").await;
    let r = admin
        .post_multipart(
            &format!("/quan-tri/nguoi-dung/{id}/khoa"),
            text_form(&page.csrf(), &[("disabled", "1")]),
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let r = officer.get("/can-bo").await;
    assert_eq!(r.status, 303, "session ended");
    assert!(r.location().starts_with("/dang-nhap"));
    assert_eq!(
        Browser::new(&app, "vi")
            .try_login("officer", "motcua-demo")
            .await,
        401
    );
    let page = admin.get("/quan-tri/nguoi-dung?xong=disabled").await;
    assert!(page.body.contains("Đã khóa"));
    let r = admin
        .post_multipart(
            &format!("/quan-tri/nguoi-dung/{id}/khoa"),
            text_form(&page.csrf(), &[("disabled", "0")]),
        )
        .await;
    assert_eq!(r.status, 303);
    officer.login("officer").await;
    assert_eq!(officer.get("/can-bo").await.status, 200);

    // A reset ends the sessions too and the new password works.
    let r = admin
        .post_multipart(
            &format!("/quan-tri/nguoi-dung/{id}/mat-khau"),
            text_form(&page.csrf(), &[("password", "")]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let password = r.secret();
    assert_eq!(officer.get("/can-bo").await.status, 303);
    let mut again = Browser::new(&app, "vi");
    assert_eq!(again.try_login("officer", &password).await, 303);
    let actions = audit_actions(&app).await;
    for a in ["user.disable", "user.enable", "user.reset_password"] {
        assert!(actions.contains(&(a.into(), "admin".into())), "{a} audited");
    }
    // The admin cannot lock themself out.
    let me = app
        .state
        .store
        .user_by_name("admin")
        .await
        .expect("store")
        .expect("demo")
        .id;
    let r = admin
        .post_multipart(
            &format!("/quan-tri/nguoi-dung/{me}/khoa"),
            text_form(&page.csrf(), &[("disabled", "1")]),
        )
        .await;
    assert_eq!(r.status, 403);
}

const SIGNATURE: &str = "2.000884";

#[tokio::test]
async fn procedure_import_lints_first_and_enable_disable_changes_the_catalogue() {
    let app = spawn_app().await;
    let yaml = std::fs::read_to_string(
        crate::helpers::workspace().join("procedures/certification-signature.yaml"),
    )
    .expect("procedure file");
    let v2 = yaml.replace("version: 1", "version: 2").replace(
        "vi: \"Chứng thực chữ ký trong các giấy tờ, văn bản\"",
        "vi: \"Chứng thực chữ ký trong giấy tờ, văn bản (phiên bản 2)\"",
    );
    assert_ne!(v2, yaml);
    let broken = v2.replace("sector: certification", "sektor: certification");
    let line = broken
        .lines()
        .position(|l| l.starts_with("sektor:"))
        .expect("line")
        + 1;

    let mut admin = Browser::new(&app, "vi");
    admin.login("admin").await;
    let page = admin.get("/quan-tri/thu-tuc").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(SIGNATURE));
    assert!(
        !page.body.contains("/quan-tri/thu-tuc/nhap"),
        "no import form"
    );
    let file = |text: &str| Part::bytes(text.as_bytes().to_vec()).file_name("p.yaml");
    let r = admin
        .post_multipart(
            "/quan-tri/thu-tuc/nhap",
            text_form(&page.csrf(), &[]).part("file", file(&v2)),
        )
        .await;
    assert_eq!(r.status, 403, "agency admins do not change the catalogue");

    let mut prov = Browser::new(&app, "vi");
    prov.login("province.admin").await;
    let page = prov.get("/quan-tri/thu-tuc").await;
    let csrf = page.csrf();
    let r = prov
        .post_multipart(
            "/quan-tri/thu-tuc/nhap",
            Form::new().part("file", file(&v2)),
        )
        .await;
    assert_eq!(r.status, 403, "CSRF missing");

    let r = prov
        .post_multipart(
            "/quan-tri/thu-tuc/nhap",
            text_form(&csrf, &[]).part("file", file(&broken)),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body.contains(&format!("Dòng {line},")),
        "line number shown: {}",
        r.body
    );
    assert!(r.body.contains("sektor"));
    let versions = app
        .state
        .store
        .procedure_versions(SIGNATURE)
        .await
        .expect("store");
    assert_eq!(versions.len(), 1, "nothing imported");

    // The national catalogue is not a province's to change: a new version
    // of a national procedure is refused, and so is switching one off.
    let r = prov
        .post_multipart(
            "/quan-tri/thu-tuc/nhap",
            text_form(&csrf, &[]).part("file", file(&v2)),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("danh mục thủ tục quốc gia"), "{}", r.body);
    let versions = app
        .state
        .store
        .procedure_versions(SIGNATURE)
        .await
        .expect("store");
    assert_eq!(versions.len(), 1, "nothing imported");
    let national_toggle = format!("/quan-tri/thu-tuc/{SIGNATURE}/phien-ban/1/trang-thai");
    let r = prov
        .post_multipart(&national_toggle, text_form(&csrf, &[("enabled", "0")]))
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(prov.get(&format!("/thu-tuc/{SIGNATURE}")).await.status, 200);

    // A procedure of the province's own: imported, versioned, switched.
    const OWN: &str = "2.999884";
    let own = yaml.replace(SIGNATURE, OWN);
    let own_v2 = v2.replace(SIGNATURE, OWN);
    for (text, version) in [(&own, 1), (&own_v2, 2)] {
        let r = prov
            .post_multipart(
                "/quan-tri/thu-tuc/nhap",
                text_form(&csrf, &[]).part("file", file(text)),
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.body);
        assert!(
            r.location().contains(&format!("/phien-ban/{version}")),
            "{}",
            r.location()
        );
    }
    let shown = prov
        .get(&format!(
            "/quan-tri/thu-tuc/{OWN}/phien-ban/2?xong=imported"
        ))
        .await;
    assert_eq!(shown.status, 200);
    assert!(shown.body.contains("Đã nhập phiên bản mới"));
    assert!(shown.body.contains("phiên bản 2"));
    assert!(
        shown.body.contains("&quot;version&quot;: 2")
            || shown.body.contains("&#34;version&#34;: 2"),
        "JSON shown"
    );
    let public = prov.get(&format!("/thu-tuc/{OWN}")).await;
    assert!(
        public.body.contains("(phiên bản 2)"),
        "new version in the catalogue"
    );

    // Disable version 2: version 1 is current again; disable 1: gone.
    let toggle = |v: u32| format!("/quan-tri/thu-tuc/{OWN}/phien-ban/{v}/trang-thai");
    let r = prov
        .post_multipart(&toggle(2), text_form(&csrf, &[("enabled", "0")]))
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let public = prov.get(&format!("/thu-tuc/{OWN}")).await;
    assert_eq!(public.status, 200);
    assert!(!public.body.contains("(phiên bản 2)"));
    let r = prov
        .post_multipart(&toggle(1), text_form(&csrf, &[("enabled", "0")]))
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(prov.get(&format!("/thu-tuc/{OWN}")).await.status, 404);
    let cat = app.state.catalogue().await.expect("catalogue");
    assert!(cat.iter().all(|(p, _)| p.code != OWN));
    // Still reachable by code for the admin, and enabled again.
    let r = prov.get(&format!("/quan-tri/thu-tuc?ma={OWN}")).await;
    assert_eq!(r.status, 303);
    let p = prov.get(&r.location()).await;
    assert_eq!(p.status, 200, "{}", p.body);
    let r = prov
        .post_multipart(&toggle(2), text_form(&csrf, &[("enabled", "1")]))
        .await;
    assert_eq!(r.status, 303);
    let public = prov.get(&format!("/thu-tuc/{OWN}")).await;
    assert!(public.body.contains("(phiên bản 2)"));
    let actions = audit_actions(&app).await;
    for a in ["procedure.import", "procedure.disable", "procedure.enable"] {
        assert!(
            actions.contains(&(a.into(), "province.admin".into())),
            "{a} audited"
        );
    }
}

#[tokio::test]
async fn forms_render_for_dossiers_in_the_right_state_and_404_otherwise() {
    let app = spawn_app().await;
    let citizen = app.token("citizen").await;
    let officer = app.token("officer").await;
    let refused = app.submit_birth(&citizen).await;
    let supplement = app.submit_birth(&citizen).await;
    let accepted = app.submit_birth(&citizen).await;

    let mut staff = Browser::new(&app, "vi");
    staff.login("officer").await;
    // A new dossier: only Form 01 applies.
    let index = staff.get(&format!("/ho-so/{refused}/mau-phieu")).await;
    assert_eq!(index.status, 200, "{}", index.body);
    assert!(index.body.contains(&format!("/ho-so/{refused}/bien-nhan")));
    assert!(
        !index
            .body
            .contains(&format!("/ho-so/{refused}/mau-phieu/03"))
    );
    for n in ["02", "03", "04", "05"] {
        let r = staff.get(&format!("/ho-so/{refused}/mau-phieu/{n}")).await;
        assert_eq!(r.status, 404, "form {n} of a new dossier");
    }
    let dossier = staff.get(&format!("/ho-so/{refused}")).await;
    assert!(
        dossier
            .body
            .contains(&format!("/ho-so/{refused}/mau-phieu"))
    );

    let (s, b) = app
        .act(
            &officer,
            &refused,
            json!({ "action": "refuse", "note": "Thủ tục không thuộc thẩm quyền của phường" }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let f = staff.get(&format!("/ho-so/{refused}/mau-phieu/03")).await;
    assert_eq!(f.status, 200, "{}", f.body);
    for text in [
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
        "Độc lập - Tự do - Hạnh phúc",
        "Ủy ban nhân dân Phường Cửa Nam",
        "Phiếu từ chối tiếp nhận giải quyết hồ sơ",
        "Mẫu số 03",
        "Thủ tục không thuộc thẩm quyền của phường",
        "Lê Thị Thu",
        refused.as_str(),
    ] {
        assert!(f.body.contains(text), "{text} in Form 03");
    }
    assert_eq!(
        staff
            .get(&format!("/ho-so/{refused}/mau-phieu/02"))
            .await
            .status,
        404
    );

    let (s, b) = app
        .act(
            &officer,
            &supplement,
            json!({ "action": "request_supplement", "note": "Bổ sung bản chụp giấy chứng sinh rõ nét" }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let f = staff
        .get(&format!("/ho-so/{supplement}/mau-phieu/02"))
        .await;
    assert_eq!(f.status, 200);
    assert!(f.body.contains("Bổ sung bản chụp giấy chứng sinh rõ nét"));
    assert!(f.body.contains("Phiếu yêu cầu bổ sung, hoàn thiện hồ sơ"));
    assert!(f.body.contains("Mẫu số 02"));

    let (s, b) = app
        .act(&officer, &accepted, json!({ "action": "accept" }))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        staff
            .get(&format!("/ho-so/{accepted}/mau-phieu/04"))
            .await
            .status,
        404
    );
    let f = staff.get(&format!("/ho-so/{accepted}/mau-phieu/05")).await;
    assert_eq!(f.status, 200);
    assert!(
        f.body
            .contains("Phiếu kiểm soát quá trình giải quyết hồ sơ")
    );
    assert!(f.body.contains("Lê Thị Thu"), "who handled reception");
    let later = (app.state.clock.now() + chrono::Duration::days(40) + chrono::Duration::hours(7))
        .format("%Y-%m-%d")
        .to_string();
    let shown = (app.state.clock.now() + chrono::Duration::days(40) + chrono::Duration::hours(7))
        .format("%d/%m/%Y")
        .to_string();
    let (s, b) = app
        .act(
            &officer,
            &accepted,
            json!({ "action": "apologize", "note": "Cần xác minh nơi sinh với bệnh viện", "new_due_at": later }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let f = staff.get(&format!("/ho-so/{accepted}/mau-phieu/04")).await;
    assert_eq!(f.status, 200);
    assert!(f.body.contains("Cần xác minh nơi sinh với bệnh viện"));
    assert!(f.body.contains(&shown), "new date dd/mm/yyyy");
    assert!(f.body.contains("Mẫu số 04"));
    let mut en = Browser::new(&app, "en");
    en.login("officer").await;
    let f = en.get(&format!("/ho-so/{accepted}/mau-phieu/04")).await;
    assert_eq!(f.status, 200);
    assert!(f.body.contains("Apology and new appointment"));
    assert!(f.body.contains("Form 04"));

    // Viewing forms is audited like the dossier page.
    let views = app
        .state
        .store
        .dossier_audit(&motcua_domain::DossierCode::parse(&accepted).expect("code"))
        .await
        .expect("audit")
        .iter()
        .filter(|r| r.entry.action == "dossier.view_personal_data")
        .count();
    assert!(views >= 4);

    // Unknown form numbers and another agency's officer.
    assert_eq!(
        staff
            .get(&format!("/ho-so/{accepted}/mau-phieu/06"))
            .await
            .status,
        404
    );
    let mut other = Browser::new(&app, "vi");
    other.login("officer.hoankiem").await;
    assert_eq!(
        other
            .get(&format!("/ho-so/{accepted}/mau-phieu/05"))
            .await
            .status,
        403
    );
    // The citizen gets Form 01 (the receipt), not the staff forms.
    let mut me = Browser::new(&app, "vi");
    me.login("citizen").await;
    let r = me.get(&format!("/ho-so/{accepted}/mau-phieu/01")).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.location(), format!("/ho-so/{accepted}/bien-nhan"));
    assert_eq!(me.get(&r.location()).await.status, 200);
    assert_eq!(
        me.get(&format!("/ho-so/{accepted}/mau-phieu/05"))
            .await
            .status,
        403
    );
}

#[tokio::test]
async fn province_admin_edits_holidays_and_makeup_days_in_force_at_once() {
    use chrono::{Datelike, Duration, Weekday};

    let app = spawn_app().await;
    // The admin of Hà Nội changes Hà Nội's calendar, nobody else's.
    let hanoi = motcua_domain::UnitCode::parse("01").expect("unit");
    let cal = app.state.calendar_of(Some(&hanoi));
    let mut day = motcua_store::vietnam_day(app.state.clock.now()) + Duration::days(60);
    while !(cal.is_working_day(day) && day.weekday().number_from_monday() <= 5) {
        day += Duration::days(1);
    }
    let mut sat = day;
    while sat.weekday() != Weekday::Sat || cal.is_working_day(sat) {
        sat += Duration::days(1);
    }
    let iso = day.format("%Y-%m-%d").to_string();
    let sat_iso = sat.format("%Y-%m-%d").to_string();

    let mut prov = Browser::new(&app, "vi");
    prov.login("province.admin").await;
    let page = prov.get("/quan-tri/ngay-nghi").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("name=\"op\" value=\"holiday\""));
    let csrf = page.csrf();

    // Missing CSRF: 403, nothing changes.
    let r = prov
        .post_multipart(
            "/quan-tri/ngay-nghi",
            Form::new()
                .text("op", "holiday")
                .text("date", iso.clone())
                .text("name", "Nghỉ thử"),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(app.state.calendar_of(Some(&hanoi)).is_working_day(day));

    // Validation: bad date, missing name.
    let r = prov
        .post_multipart(
            "/quan-tri/ngay-nghi",
            text_form(
                &csrf,
                &[("op", "holiday"), ("date", "31/02/2027"), ("name", "")],
            ),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("href=\"#f-holiday-date\""));
    assert!(r.body.contains("href=\"#f-holiday-name\""));

    // An extra holiday on a future weekday.
    let r = prov
        .post_multipart(
            "/quan-tri/ngay-nghi",
            text_form(
                &csrf,
                &[
                    ("op", "holiday"),
                    ("date", &iso),
                    ("name", "Nghỉ bù kỷ niệm tỉnh"),
                    ("name_en", "Province anniversary"),
                ],
            ),
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(
        !app.state.calendar_of(Some(&hanoi)).is_working_day(day),
        "in force at once"
    );
    let page = prov.get("/quan-tri/ngay-nghi?xong=calendar-saved").await;
    assert!(page.body.contains("Nghỉ bù kỷ niệm tỉnh"), "{}", page.body);
    assert!(page.body.contains(&day.format("%d/%m/%Y").to_string()));

    // The same day again is a duplicate.
    let r = prov
        .post_multipart(
            "/quan-tri/ngay-nghi",
            text_form(&csrf, &[("op", "holiday"), ("date", &iso), ("name", "Lại")]),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);

    // A make-up working day on a future Saturday.
    let r = prov
        .post_multipart(
            "/quan-tri/ngay-nghi",
            text_form(&csrf, &[("op", "makeup"), ("date", &sat_iso)]),
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(app.state.calendar_of(Some(&hanoi)).is_working_day(sat));

    // An agency admin sees the page read-only and gets 403 on the POST.
    let mut agency = Browser::new(&app, "vi");
    agency.login("admin").await;
    let page = agency.get("/quan-tri/ngay-nghi").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Nghỉ bù kỷ niệm tỉnh"));
    assert!(!page.body.contains("name=\"op\""), "no forms");
    let agency_csrf = agency.get("/quan-tri/nguoi-dung").await.csrf();
    let r = agency
        .post_multipart(
            "/quan-tri/ngay-nghi",
            text_form(
                &agency_csrf,
                &[("op", "delete"), ("kind", "holiday"), ("date", &iso)],
            ),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(!app.state.calendar_of(Some(&hanoi)).is_working_day(day));

    // Removing the holiday makes the day a working day again.
    let r = prov
        .post_multipart(
            "/quan-tri/ngay-nghi",
            text_form(
                &csrf,
                &[("op", "delete"), ("kind", "holiday"), ("date", &iso)],
            ),
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(app.state.calendar_of(Some(&hanoi)).is_working_day(day));
    assert!(
        app.state.calendar_of(Some(&hanoi)).is_working_day(sat),
        "the make-up day stays"
    );

    // Every change is audited, and a restart reads the stored overrides.
    let changes = audit_actions(&app)
        .await
        .into_iter()
        .filter(|(a, actor)| a == "calendar.change" && actor == "province.admin")
        .count();
    assert_eq!(changes, 3);
    app.state.reload_calendar().await.expect("reload");
    assert!(app.state.calendar_of(Some(&hanoi)).is_working_day(sat));
    // Cao Bằng (04) and the national calendar keep their Saturdays off.
    let cao_bang = motcua_domain::UnitCode::parse("04").expect("unit");
    assert!(!app.state.calendar_of(Some(&cao_bang)).is_working_day(sat));
    assert!(!app.state.calendar().is_working_day(sat));
}

/// `motcua serve --demo` with the exchange gateway: (process, portal URL,
/// gateway URL). The process is killed when dropped.
struct DemoNode {
    child: std::process::Child,
    base: String,
    gateway: String,
}

impl DemoNode {
    fn start(data: &std::path::Path) -> DemoNode {
        let mut child = crate::helpers::serve_demo_command(data, &[])
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("start motcua");
        let at = crate::helpers::wait_listening(&mut child);
        DemoNode {
            child,
            base: at.base,
            gateway: at.gateway.expect("gateway"),
        }
    }

    fn browser(&self, lang: &'static str) -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            base: self.base.clone(),
            cookies: Default::default(),
            lang,
        }
    }

    /// Stops the server with SIGTERM and waits for a clean exit.
    fn stop(mut self) {
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "motcua exited with {status:?}");
    }
}

impl Drop for DemoNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The number in the cell labelled `column` of the table row of `key`.
fn cell_after(body: &str, key: &str, column: &str) -> Option<u64> {
    let row = &body[body.find(&format!("<span class=\"code\">{key}</span>"))?..];
    let row = &row[..row.find("</tr>")?];
    let marker = format!("data-label=\"{column}\">");
    let i = row.find(&marker)? + marker.len();
    row[i..].split('<').next()?.trim().parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn province_admin_manages_the_exchange_registry_and_watches_the_gateway_in_pages() {
    const DEMO_CLIENT: &str = "VN/GOV/UBND-HN/MOTCUA";
    const DEMO_SERVICE: &str = "VN/GOV/BCA/POPULATION/citizens";
    const NEW_SERVICE: &str = "VN/GOV/SYT-HN/HIS/benh-an";
    let dir = crate::helpers::temp_dir("exchange-pages");
    let data = dir.join("data");
    let node = DemoNode::start(&data);

    let mut admin = node.browser("vi");
    admin.login("province.admin").await;
    let page = admin.get("/quan-tri/lien-thong").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains(DEMO_SERVICE),
        "the demo service is listed"
    );
    assert!(
        page.body.contains("demo-motcua"),
        "the demo key's id is listed"
    );
    assert!(
        !page.body.contains("xrk_demo_motcua_not_a_secret"),
        "keys are never shown after their creation"
    );
    assert!(page.body.contains("href=\"/quan-tri/lien-thong/giam-sat\""));
    let csrf = page.csrf();
    let post = |pairs: &'static [(&'static str, &'static str)]| text_form(&csrf, pairs);

    // A member, its subsystem: each a POST that redirects to the page.
    let r = admin
        .post_multipart(
            "/quan-tri/lien-thong",
            post(&[
                ("op", "member-add"),
                ("class", "GOV"),
                ("code", "SYT-HN"),
                ("name", "Sở Y tế Hà Nội"),
            ]),
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.location(), "/quan-tri/lien-thong?xong=member-add");
    let shown = admin.get(&r.location()).await;
    assert!(shown.body.contains("Đã thêm thành viên."));
    assert!(shown.body.contains("Sở Y tế Hà Nội"));
    let r = admin
        .post_multipart(
            "/quan-tri/lien-thong",
            post(&[
                ("op", "subsystem-add"),
                ("id", "VN/GOV/SYT-HN/HIS"),
                ("name", "Hệ thống thông tin bệnh viện"),
            ]),
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);

    // A wrong provider URL: shown next to the field, in Vietnamese, with
    // what was typed; nothing changes.
    let r = admin
        .post_multipart(
            "/quan-tri/lien-thong",
            post(&[
                ("op", "service-add"),
                ("id", NEW_SERVICE),
                ("upstream", "ftp://10.0.0.9/api"),
                ("endpoints", "GET /records/{id}"),
            ]),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("id=\"f-service-add-upstream-err\""));
    assert!(r.body.contains("Nhập địa chỉ gốc của hệ thống cung cấp"));
    assert!(r.body.contains("value=\"ftp://10.0.0.9/api\""));
    assert!(
        !admin
            .get("/quan-tri/lien-thong")
            .await
            .body
            .contains("<td data-label=\"Định danh\" class=\"code\">VN/GOV/SYT-HN/HIS/benh-an")
    );
    // The same in English.
    let mut en = node.browser("en");
    en.login("province.admin").await;
    let en_page = en.get("/quan-tri/lien-thong").await;
    let r = en
        .post_multipart(
            "/quan-tri/lien-thong",
            text_form(
                &en_page.csrf(),
                &[
                    ("op", "service-add"),
                    ("id", NEW_SERVICE),
                    ("upstream", "http://127.0.0.1:9/api"),
                    ("openapi", "{not json"),
                ],
            ),
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(
        r.body
            .contains("The OpenAPI description must be valid JSON.")
    );

    // The service, with an OpenAPI description and an endpoint, and a right
    // of the portal to one path of it.
    let r = admin
        .post_multipart(
            "/quan-tri/lien-thong",
            post(&[
                ("op", "service-add"),
                ("id", NEW_SERVICE),
                ("name", "Bệnh án điện tử"),
                ("upstream", "http://127.0.0.1:9/api"),
                ("endpoints", "GET /records/{id}"),
                ("openapi", "{\"openapi\": \"3.0.0\"}"),
            ]),
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let r = admin
        .post_multipart(
            "/quan-tri/lien-thong",
            post(&[
                ("op", "grant"),
                ("client", DEMO_CLIENT),
                ("service", NEW_SERVICE),
                ("endpoints", "GET /records/*"),
            ]),
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let listed = admin.get("/quan-tri/lien-thong?xong=grant").await;
    assert!(listed.body.contains("Đã cấp quyền truy cập."));
    assert!(listed.body.contains("http://127.0.0.1:9/api"));
    assert!(listed.body.contains("GET /records/*"));

    // An API key: shown once, with a warning; afterwards only its id.
    let r = admin
        .post_multipart(
            "/quan-tri/lien-thong",
            post(&[
                ("op", "key-add"),
                ("client", DEMO_CLIENT),
                ("label", "bệnh án"),
            ]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let key = r.secret();
    assert!(key.starts_with("xrk_") && key.len() == 68, "{key}");
    assert!(r.body.contains("chỉ hiển thị lần này"));
    let again = admin.get("/quan-tri/lien-thong").await;
    assert!(!again.body.contains(&key), "the key is shown once only");
    assert!(again.body.contains("bệnh án"));

    // The new key works at the gateway (the provider is down: 502), the
    // demo key reads a citizen.
    let http = reqwest::Client::new();
    let call = |service: &str, path: &str, key: &str| {
        http.get(format!("{}/r1/{service}{path}", node.gateway))
            .header("X-Road-Client", DEMO_CLIENT)
            .header("Authorization", format!("X-Road-ApiKey token={key}"))
            .send()
    };
    let r = call(NEW_SERVICE, "/records/42", &key).await.expect("call");
    assert_eq!(r.status(), 502);
    let r = call(NEW_SERVICE, "/other", &key).await.expect("call");
    assert_eq!(r.status(), 403, "the right covers /records/* only");
    let r = call(
        DEMO_SERVICE,
        "/001090012345",
        "xrk_demo_motcua_not_a_secret",
    )
    .await
    .expect("call");
    assert_eq!(r.status(), 200);

    // Monitoring: counts per service and per client, the log's health.
    let m = en.get("/quan-tri/lien-thong/giam-sat").await;
    assert_eq!(m.status, 200, "{}", m.body);
    assert!(m.body.contains("Writing"), "log healthy");
    assert_eq!(cell_after(&m.body, DEMO_SERVICE, "Requests"), Some(1));
    assert_eq!(cell_after(&m.body, DEMO_SERVICE, "Errors"), Some(0));
    assert_eq!(cell_after(&m.body, NEW_SERVICE, "Requests"), Some(2));
    assert_eq!(cell_after(&m.body, NEW_SERVICE, "Errors"), Some(2));
    assert_eq!(cell_after(&m.body, DEMO_CLIENT, "Requests"), Some(3));
    assert!(
        m.body
            .contains("Server.ServerProxy.ServiceFailed.NetworkError: 1")
    );
    assert!(m.body.contains("Server.ServerProxy.AccessDenied: 1"));

    // Revoking the key in the page: the gateway refuses it at once.
    let id = again
        .body
        .split("name=\"op\" value=\"key-revoke\"><input type=\"hidden\" name=\"id\" value=\"")
        .nth(2)
        .and_then(|s| s.split('"').next())
        .expect("the new key's revoke form")
        .to_string();
    let r = admin
        .post_multipart(
            "/quan-tri/lien-thong",
            text_form(&csrf, &[("op", "key-revoke"), ("id", &id)]),
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let r = call(NEW_SERVICE, "/records/42", &key).await.expect("call");
    assert_eq!(r.status(), 401);

    // Without the CSRF token, nothing; officers and agency admins: 403,
    // and no link to the pages.
    let r = admin
        .post_multipart(
            "/quan-tri/lien-thong",
            text_form(
                "wrong",
                &[
                    ("op", "member-remove"),
                    ("class", "GOV"),
                    ("code", "SYT-HN"),
                ],
            ),
        )
        .await;
    assert_eq!(r.status, 403);
    for user in ["officer", "admin"] {
        let mut b = node.browser("vi");
        b.login(user).await;
        assert_eq!(b.get("/quan-tri/lien-thong").await.status, 403, "{user}");
        assert_eq!(
            b.get("/quan-tri/lien-thong/giam-sat").await.status,
            403,
            "{user}"
        );
    }
    let mut agency_admin = node.browser("vi");
    agency_admin.login("admin").await;
    assert!(
        !agency_admin
            .get("/quan-tri")
            .await
            .body
            .contains("/quan-tri/lien-thong")
    );
    // The JSON API sees the page's changes.
    let token: serde_json::Value = http
        .post(format!("{}/api/v1/auth/token", node.base))
        .json(&json!({ "username": "province.admin", "password": "motcua-demo" }))
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let registry: serde_json::Value = http
        .get(format!("{}/api/v1/exchange/registry", node.base))
        .bearer_auth(token["token"].as_str().expect("token"))
        .send()
        .await
        .expect("registry")
        .json()
        .await
        .expect("json");
    assert!(registry["services"].to_string().contains(NEW_SERVICE));
    assert!(!registry.to_string().contains(&key), "no clear key stored");
    node.stop();

    // Every change is in the audit chain, by the province admin, with the
    // clear key nowhere.
    let config = motcua::Config {
        data_dir: data.clone(),
        procedures_dir: crate::helpers::workspace().join("procedures"),
        ..motcua::Config::default()
    };
    let inst = motcua::open(&config).await.expect("open");
    let records = inst.store.audit_records(0, 100_000).await.expect("audit");
    assert!(motcua_domain::audit::verify_chain(&records).is_ok());
    let mine: Vec<&str> = records
        .iter()
        .filter(|r| r.entry.actor == "province.admin")
        .map(|r| r.entry.action.as_str())
        .collect();
    assert_eq!(
        mine,
        [
            "exchange.member.add",
            "exchange.subsystem.add",
            "exchange.service.add",
            "exchange.access.grant",
            "exchange.apikey.add",
            "exchange.apikey.revoke",
        ]
    );
    assert!(
        records
            .iter()
            .all(|r| !r.entry.note.as_deref().unwrap_or("").contains(&key))
    );
    if let Some(db) = inst.sqlite {
        db.close().await;
    }
}

/// Two nodes (two registry handles with their own in-node locks) on one
/// database change the registry at the same moment: the store's
/// compare-and-set makes the loser re-read and apply its change again, so
/// every change is in the document and each has one audit record.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registry_changes_made_at_once_on_two_nodes_are_all_kept() {
    use std::sync::Arc;

    use motcua_web::exchange::api::{ExchangeHandle, change_payload};

    let app = spawn_app().await;
    let store = app.state.store.clone();
    let nodes = [
        Arc::new(ExchangeHandle::new("VN", None)),
        Arc::new(ExchangeHandle::new("VN", None)),
    ];
    let before = store.audit_records(0, 100_000).await.expect("audit").len();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (node, store) = (nodes[i % 2].clone(), store.clone());
        tasks.push(tokio::spawn(async move {
            let code = format!("M{i:02}");
            node.change(
                store.as_ref(),
                |r| r.add_member("GOV", &code, "Thành viên").map(|c| (c, ())),
                |c| motcua::system_audit(c.action, &change_payload(c)),
            )
            .await
        }));
    }
    let mut conflicts = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => {}
            Err(e) if e.kind == "exchange-conflict" => conflicts += 1,
            Err(e) => panic!("{e:?}"),
        }
    }
    let registry = nodes[0].load(store.as_ref()).await.expect("registry");
    let audit = store.audit_records(0, 100_000).await.expect("audit");
    let added = audit.len() - before;
    assert_eq!(
        registry.members.len() + conflicts,
        16,
        "every change kept, or refused with 409 (never lost)"
    );
    assert_eq!(
        added,
        registry.members.len(),
        "one audit record per change kept"
    );
    assert!(
        conflicts <= 2,
        "retries absorb the races: {conflicts} refused"
    );
}
