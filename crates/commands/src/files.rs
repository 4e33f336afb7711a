//! Files of a dossier: what a form's file is, whether it is what its
//! name says and the procedure accepts, and storing it.

use motcua_domain::procedure::Procedure;
use motcua_store::StoredDocument;

use crate::App;
use crate::error::{CommandResult, FieldProblem};

/// A file of a form.
pub struct Upload {
    pub name: String,
    pub filename: String,
    pub bytes: Vec<u8>,
}

pub fn extension(filename: &str) -> String {
    filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default()
}

/// Recognises the file type by its first bytes, so that a file's name
/// cannot disguise its content.
pub fn sniff_matches(ext: &str, bytes: &[u8]) -> bool {
    let starts = |m: &[u8]| bytes.starts_with(m);
    match ext {
        "pdf" => starts(b"%PDF"),
        "png" => starts(b"\x89PNG\r\n\x1a\n"),
        "jpg" | "jpeg" => starts(b"\xFF\xD8\xFF"),
        "docx" | "xlsx" | "odt" => starts(b"PK\x03\x04"),
        "doc" | "xls" => starts(b"\xD0\xCF\x11\xE0"),
        "tif" | "tiff" => starts(b"II*\0") || starts(b"MM\0*"),
        _ => false,
    }
}

pub fn content_type_of(ext: &str) -> &'static str {
    match ext {
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "odt" => "application/vnd.oasis.opendocument.text",
        "doc" => "application/msword",
        "xls" => "application/vnd.ms-excel",
        "tif" | "tiff" => "image/tiff",
        _ => "application/octet-stream",
    }
}

/// Checks one file against its document spec: type by name and content.
pub fn check_file(p: &Procedure, doc_id: &str, up: &Upload) -> Option<FieldProblem> {
    let Some(spec) = p.document(doc_id) else {
        return Some(FieldProblem::new(doc_id, "document-unknown"));
    };
    let ext = extension(&up.filename);
    let accepted =
        spec.accept.contains(&ext) || (ext == "jpeg" && spec.accept.iter().any(|a| a == "jpg"));
    if !accepted {
        let mut e = FieldProblem::new(doc_id, "document-type");
        e.params.insert("file".into(), up.filename.clone().into());
        e.params
            .insert("accept".into(), spec.accept.join(", ").into());
        return Some(e);
    }
    if !sniff_matches(&ext, &up.bytes) {
        return Some(FieldProblem::new(doc_id, "document-content"));
    }
    None
}

/// Stores a checked file in the object store.
pub async fn store_file(
    st: &App,
    doc_id: &str,
    up: Upload,
    stage: &str,
) -> CommandResult<StoredDocument> {
    let size = up.bytes.len() as u64;
    let r = st.objects.put(up.bytes).await?;
    Ok(StoredDocument {
        document_id: doc_id.to_string(),
        content_type: content_type_of(&extension(&up.filename)).to_string(),
        filename: up.filename,
        size,
        sha256: r.sha256,
        uploaded_at: st.clock.now(),
        stage: stage.to_string(),
    })
}
