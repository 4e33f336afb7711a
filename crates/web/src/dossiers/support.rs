//! What the dossier pages share: files kept between attempts of a form,
//! the units a procedure may be filed in, the actions a user may take.

use motcua_domain::dossier::{Action, Command, Ownership, SatisfactionLevel, decide};
use motcua_domain::procedure::Procedure;
use motcua_store::{Dossier, StoredDocument, User};

use crate::kernel::error::ApiError;
use crate::state::AppState;
use motcua_commands::accounts::actor_of;
use motcua_commands::catalogue::is_available;
use motcua_commands::dossiers::rules;
use motcua_commands::files::content_type_of;
use motcua_commands::files::extension;

/// A file already stored during an earlier attempt of the same form,
/// carried in a hidden input as `sha256:size:mac:filename`. The MAC is
/// made with the installation's secret key over the session, the
/// procedure, the document slot, the hash, the size and the file name:
/// only the server makes one, and only for a file this session uploaded
/// to this slot, so nobody attaches someone else's file by its hash.
pub fn kept_token(
    ctx: &crate::kernel::page::Ctx,
    procedure: &str,
    d: &StoredDocument,
) -> Option<String> {
    let session = ctx.session_id()?;
    let size = d.size.to_string();
    let mac = ctx.server_key.as_ref()?.mac(
        "kept-upload",
        &[
            &session,
            procedure,
            &d.document_id,
            &d.sha256,
            &size,
            &d.filename,
        ],
    );
    Some(format!("{}:{size}:{mac}:{}", d.sha256, d.filename))
}

/// The file a kept token names, if the token is this session's for this
/// slot of this procedure.
pub fn parse_kept(
    st: &AppState,
    ctx: &crate::kernel::page::Ctx,
    procedure: &str,
    doc_id: &str,
    token: &str,
) -> Option<StoredDocument> {
    let mut it = token.splitn(4, ':');
    let (sha, size, mac, filename) = (it.next()?, it.next()?, it.next()?, it.next()?);
    let session = ctx.session_id()?;
    if !ctx.server_key.as_ref()?.verify(
        "kept-upload",
        &[&session, procedure, doc_id, sha, size, filename],
        mac,
    ) {
        return None;
    }
    let filename = motcua_domain::ids::parse_file_name(filename).ok()?;
    Some(StoredDocument {
        document_id: doc_id.to_string(),
        content_type: content_type_of(&extension(&filename)).to_string(),
        filename,
        size: size.parse().ok()?,
        sha256: sha.to_string(),
        uploaded_at: st.clock.now(),
        stage: "initial".into(),
    })
}

/// Units where procedure `p` can be filed: those with a handling agency
/// where the procedure is available.
pub async fn units_for(st: &AppState, p: &Procedure) -> Result<Vec<(String, String)>, ApiError> {
    let home = st
        .store
        .current_procedure(&p.code)
        .await?
        .and_then(|sp| sp.home_province);
    let decisions = st.store.availability(&p.code, &[]).await?;
    let units = st.unit_map().await?;
    let mut out = Vec::new();
    for a in st.store.agencies().await? {
        if a.kind != p.agency_kind {
            continue;
        }
        let province = st.province_of(&a.unit_code).await?;
        if !is_available(home.as_ref(), &a.unit_code, province.as_ref(), &decisions) {
            continue;
        }
        let name = units
            .get(a.unit_code.as_str())
            .map(|u| u.name.clone())
            .unwrap_or_else(|| a.name_vi.clone());
        out.push((a.unit_code.to_string(), name));
    }
    out.sort_by(|a, b| motcua_domain::text::vi_cmp(&a.1, &b.1));
    Ok(out)
}

/// Actions `user` may take on `d` now, as the domain decides.
pub async fn allowed_actions(
    st: &AppState,
    user: &User,
    d: &Dossier,
    p: &Procedure,
) -> Result<Vec<Action>, ApiError> {
    let own = Ownership {
        agency: d.agency_code.clone(),
        applicant_user_id: d.applicant.user_id,
    };
    let actor = actor_of(user);
    let now = st.clock.now();
    let cal = st.calendar_for(&d.unit_code).await?;
    Ok(Action::ALL
        .into_iter()
        .filter(|a| {
            let mut cmd = Command::new(*a).with_note("-");
            cmd.new_due_at = Some(
                d.lifecycle
                    .appointment_at
                    .or(d.lifecycle.due_at)
                    .unwrap_or(now)
                    + chrono::Duration::days(30),
            );
            cmd.level = Some(SatisfactionLevel::Satisfied);
            decide(&d.lifecycle, &own, rules(&cal, p), &actor, &cmd, now).is_ok()
        })
        .collect())
}
