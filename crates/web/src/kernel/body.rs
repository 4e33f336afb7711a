//! Reading a form's body (text values and files) and sending a stored
//! file back; the commands themselves are [`motcua_commands`].

use axum::extract::Multipart;
use motcua_commands::dossiers::audit_view;
use motcua_commands::files::Upload;
use motcua_store::{Dossier, User};

use crate::kernel::error::{ApiError, FieldProblem};
use crate::state::AppState;

/// A parsed multipart form: text values (repeatable) and files.
#[derive(Default)]
pub struct FormData {
    pub values: Vec<(String, String)>,
    pub files: Vec<Upload>,
    /// Files refused while reading (too large), when the form is read with
    /// [`FormData::read_keeping_input`]; keyed by document id.
    pub rejected: Vec<FieldProblem>,
}

impl FormData {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.values
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Reads a form; a file over the size limit fails the whole request.
    pub async fn read(st: &AppState, mp: Multipart) -> Result<Self, ApiError> {
        let form = Self::read_inner(st, mp, false).await?;
        Ok(form)
    }

    /// Reads a form whose typed values must survive any error: a file over
    /// the size limit is left out and reported in `rejected`, so the form
    /// can be shown again with everything else the person entered.
    pub async fn read_keeping_input(st: &AppState, mp: Multipart) -> Result<Self, ApiError> {
        Self::read_inner(st, mp, true).await
    }

    async fn read_inner(st: &AppState, mut mp: Multipart, lenient: bool) -> Result<Self, ApiError> {
        let mut out = FormData::default();
        while let Some(field) = mp.next_field().await.map_err(mp_err)? {
            let name = field.name().unwrap_or_default().to_string();
            let file_name = field.file_name().map(str::to_string);
            let bytes = field.bytes().await.map_err(mp_err)?;
            let Some(raw_name) = file_name else {
                // Text parts are UTF-8 or refused, never repaired.
                let v = String::from_utf8(bytes.to_vec())
                    .map_err(|_| ApiError::field(&name, "invalid-utf8"))?;
                out.values.push((name, v));
                continue;
            };
            if raw_name.is_empty() && bytes.is_empty() {
                continue; // no file chosen
            }
            let field_key = if lenient {
                name.strip_prefix("document:").unwrap_or(&name).to_string()
            } else {
                name.clone()
            };
            let problem = if bytes.len() as u64 > st.config.max_file_bytes {
                let mut p = FieldProblem::new(&field_key, "document-too-large");
                p.params.insert(
                    "max".into(),
                    format!("{} MB", st.config.max_file_bytes / 1_000_000).into(),
                );
                Some(p)
            } else if motcua_domain::ids::parse_file_name(&raw_name).is_err() {
                Some(FieldProblem::new(&field_key, "document-filename"))
            } else {
                None
            };
            if let Some(p) = problem {
                if !lenient {
                    return Err(ApiError::validation(vec![p]));
                }
                out.rejected.push(p);
                continue;
            }
            let filename = motcua_domain::ids::parse_file_name(&raw_name)
                .map_err(|_| ApiError::field(&field_key, "document-filename"))?;
            out.files.push(Upload {
                name,
                filename,
                bytes: bytes.to_vec(),
            });
        }
        Ok(out)
    }
}

fn mp_err(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(e.status(), "payload-too-large")
    } else {
        ApiError::bad_request(e.body_text())
    }
}

/// `Content-Disposition` for a stored file: an ASCII `filename` for old
/// clients and the exact name as RFC 5987 `filename*`; a name stored
/// before names were checked is made safe first.
pub fn content_disposition(stored_name: &str) -> String {
    let name = motcua_domain::ids::safe_file_name(stored_name);
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("inline; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// The file of document `index` of `d`, for `user` (who may see `d`):
/// audited when staff read it, never cached.
pub async fn document_response(
    st: &AppState,
    user: &User,
    d: &Dossier,
    index: &str,
) -> Result<axum::response::Response, ApiError> {
    use axum::http::{HeaderValue, header};
    use axum::response::IntoResponse;
    let doc = index
        .parse::<usize>()
        .ok()
        .and_then(|i| d.documents.get(i))
        .ok_or_else(ApiError::not_found)?;
    audit_view(st, user, d, "dossier.download_document").await?;
    let bytes = st.objects.get(&doc.sha256).await?;
    let mut r = bytes.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&doc.content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    if let Ok(v) = HeaderValue::from_str(&content_disposition(&doc.filename)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// What an API handler answers.
pub type ApiResult<T> = Result<T, ApiError>;

/// A JSON body of type `T`, read after the caller's extractors: a body
/// over the limit is a 413 problem, one that is not `T` in JSON a 422
/// problem naming the body.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: serde::de::DeserializeOwned> axum::extract::FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, st: &AppState) -> ApiResult<Self> {
        let bytes = axum::body::Bytes::from_request(req, st)
            .await
            .map_err(|e| body_error(e.status(), e.body_text()))?;
        json_body(&bytes).map(JsonBody)
    }
}

/// The problem of a body that could not be read.
pub fn body_error(status: axum::http::StatusCode, text: String) -> ApiError {
    if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(status, "payload-too-large")
    } else {
        ApiError::bad_request(text)
    }
}

/// A JSON body: invalid JSON is a 422 problem naming the body.
pub fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::field("body", "invalid-json").detail(e.to_string()))
}

/// Answers JSON with a status (helper for handlers).
pub fn json<T: serde::Serialize>(status: axum::http::StatusCode, v: T) -> axum::response::Response {
    use axum::response::IntoResponse;
    (status, axum::Json(v)).into_response()
}
