//! A crash loses nothing that was acknowledged: the real binary is killed
//! with SIGKILL in the middle of concurrent submissions.

use std::process::Stdio;

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_server_keeps_every_acknowledged_submission() {
    let dir = temp_dir("crash");
    let data = dir.join("data");
    let mut child = serve_demo_command(&data, &[])
        .stderr(Stdio::null())
        .spawn()
        .expect("start motcua");
    let base = wait_listening(&mut child).base;
    let client = reqwest::Client::new();
    let token: Value = client
        .post(format!("{base}/api/v1/auth/token"))
        .json(&json!({ "username": "citizen", "password": "motcua-demo" }))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let token = token["token"].as_str().expect("token").to_string();

    // Eight clients submit until the server disappears.
    let mut tasks = Vec::new();
    for w in 0..8 {
        let client = client.clone();
        let base = base.clone();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..200 {
                let form = reqwest::multipart::Form::new()
                    .text("application", json!({ "procedure_code": BIRTH, "unit_code": "00073", "fields": birth_fields() }).to_string())
                    .part("document:birth-notice", reqwest::multipart::Part::bytes(pdf(&format!("{w}-{i}"))).file_name("a.pdf"));
                match client.post(format!("{base}/api/v1/dossiers")).bearer_auth(&token).multipart(form).send().await {
                    Ok(r) if r.status() == 201 => {
                        if let Ok(v) = r.json::<Value>().await
                            && let Some(code) = v["code"].as_str()
                        {
                            acked.push(code.to_string());
                        }
                    }
                    _ => break,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.expect("task"));
    }
    assert!(
        acked.len() > 10,
        "the load ran before the kill: {}",
        acked.len()
    );

    // Reopen the installation: every acknowledged dossier is there, whole.
    let cfg = motcua::Config {
        data_dir: data.clone(),
        ..motcua::Config::default()
    };
    let inst = motcua::open(&cfg).await.expect("reopen after crash");
    for code in &acked {
        let c = motcua_domain::DossierCode::parse(code).expect("code");
        let d = inst
            .store
            .dossier(&c)
            .await
            .expect("read")
            .unwrap_or_else(|| panic!("acknowledged {code} lost"));
        assert_eq!(d.documents.len(), 1);
        assert!(
            inst.objects
                .exists(&d.documents[0].sha256)
                .await
                .expect("exists"),
            "{code}'s file lost"
        );
    }
    let chain = motcua::verify_audit(inst.store.as_ref())
        .await
        .expect("verify");
    assert!(chain.is_ok(), "{chain:?}");
}
