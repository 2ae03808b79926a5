//! Reading an upload form: `multipart/form-data` parsed by `multer` under explicit limits, files
//! streamed into staged files, every problem with a part collected (DESIGN.md section 7).
//!
//! A route describes its form once as a [`FormSpec`] (the allowed fields, text or file, and how
//! messages name them) and [`read`]s it: 415 for anything but multipart with a boundary, 413
//! for a body or file over its limit, 400 for a body that is not valid multipart. Problems with
//! individual parts (unknown, repeated, a text where a file belongs or the reverse, an empty
//! file) are collected in [`RawForm::problems`], so the route reports them together with its own
//! field validation. Staged files are owned by the [`RawForm`], so they are deleted whenever it
//! is dropped. [`image`] and [`not_images`] are the magic-byte rule every route applies to them.
use std::collections::HashSet;

use bytes::Bytes;
use lambda_http::{Body, Request, http::header};
use multer::{Constraints, Multipart, SizeLimit};

use super::{Media, StagedFile, StagedImage};
use crate::{
    config::UploadConfig,
    error::{ApiError, FieldError},
};

/// Stop reading a body once it has shown this many problems: it is not a form worth finishing.
const MAX_PROBLEMS: usize = 16;
/// Longest client-supplied field name echoed back in `errors`.
const MAX_ECHOED_NAME: usize = 64;

pub const NOT_MULTIPART: &str = "Content type must be multipart/form-data with a boundary";
pub const MALFORMED: &str = "Request body is not valid multipart/form-data";
pub const NOT_AN_IMAGE: &str = "must be a JPEG, PNG, WebP or GIF image";

/// Whether a field carries text or a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    File,
}

/// One allowed field: its name on the wire and how messages name it ("Cover image").
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    pub name: &'static str,
    pub label: &'static str,
    pub kind: FieldKind,
}

impl FieldSpec {
    pub const fn text(name: &'static str, label: &'static str) -> Self {
        Self {
            name,
            label,
            kind: FieldKind::Text,
        }
    }

    pub const fn file(name: &'static str, label: &'static str) -> Self {
        Self {
            name,
            label,
            kind: FieldKind::File,
        }
    }
}

/// The fields a form allows; anything else is an unknown field.
#[derive(Debug, Clone, Copy)]
pub struct FormSpec {
    pub fields: &'static [FieldSpec],
}

impl FormSpec {
    fn field(&self, name: &str) -> Option<&FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// How messages name a field (a client-supplied name is echoed as it is).
    pub fn label<'a>(&self, name: &'a str) -> &'a str {
        match self.field(name) {
            Some(f) => f.label,
            None => name,
        }
    }
}

/// The form as received: raw text values, staged files, and the problems found in its parts.
/// Not `Debug`: a text value may be a password.
pub struct RawForm {
    spec: FormSpec,
    texts: Vec<(&'static str, String)>,
    files: Vec<(&'static str, StagedFile)>,
    pub problems: Vec<FieldError>,
}

impl RawForm {
    fn new(spec: FormSpec) -> Self {
        Self {
            spec,
            texts: Vec::new(),
            files: Vec::new(),
            problems: Vec::new(),
        }
    }

    pub fn spec(&self) -> FormSpec {
        self.spec
    }

    /// The text value of `name`, if it was sent (once, as text).
    pub fn take_text(&mut self, name: &str) -> Option<String> {
        let i = self.texts.iter().position(|(n, _)| *n == name)?;
        Some(self.texts.swap_remove(i).1)
    }

    /// The staged file of `name`, if a non-empty one was sent (once, as a file).
    pub fn take_file(&mut self, name: &str) -> Option<StagedFile> {
        let i = self.files.iter().position(|(n, _)| *n == name)?;
        Some(self.files.swap_remove(i).1)
    }
}

/// Reads and stages the multipart body of `req` as `spec` allows.
pub async fn read(req: Request, media: &Media, spec: FormSpec) -> Result<RawForm, ApiError> {
    let limits = &media.upload;
    let boundary = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok())
        // RFC 2046: 1 to 70 characters. multer accepts an empty one, which would read as an
        // empty form and blame every field instead of the content type.
        .filter(|b| (1..=70).contains(&b.len()))
        .ok_or_else(|| ApiError::UnsupportedMediaType(NOT_MULTIPART.into()))?;
    let body = into_bytes(req.into_body());
    if body.len() as u64 > limits.max_body_bytes {
        return Err(body_too_large(limits));
    }
    let stream = futures::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut multipart = Multipart::with_constraints(stream, boundary, constraints(spec, limits));
    let mut form = RawForm::new(spec);
    let mut seen = HashSet::new();
    while form.problems.len() < MAX_PROBLEMS {
        let mut field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => return Ok(form),
            // Not allowed: reported, and the parser skips its data on the next call.
            Err(multer::Error::UnknownField { field_name }) => {
                let name = field_name
                    .as_deref()
                    .map(echoed)
                    .unwrap_or_else(|| "(unnamed)".into());
                form.problems.push(FieldError::new(name, "Unknown field"));
                continue;
            }
            Err(e) => return Err(multipart_error(e, spec, limits, form.problems)),
        };
        // Allowed fields always have a name; dropping a field unread skips its data.
        let Some(allowed) = field.name().and_then(|n| spec.field(n)).copied() else {
            continue;
        };
        let (name, label) = (allowed.name, allowed.label);
        let is_file = field.file_name().is_some();
        if !seen.insert(name) {
            form.problems.push(FieldError::new(
                name,
                format!("{label} must be given only once"),
            ));
            continue;
        }
        match (allowed.kind, is_file) {
            (FieldKind::File, false) => form
                .problems
                .push(FieldError::new(name, format!("{label} must be a file"))),
            (FieldKind::Text, true) => form.problems.push(FieldError::new(
                name,
                format!("{label} must be a text value, not a file"),
            )),
            (FieldKind::Text, false) => {
                let bytes = match field.bytes().await {
                    Ok(bytes) => bytes,
                    Err(e) => return Err(multipart_error(e, spec, limits, form.problems)),
                };
                match String::from_utf8(bytes.to_vec()) {
                    Ok(text) => form.texts.push((name, text)),
                    Err(_) => form
                        .problems
                        .push(FieldError::new(name, format!("{label} must be UTF-8 text"))),
                }
            }
            (FieldKind::File, true) => {
                // Browsers send an unchosen file input as an empty part with an empty filename.
                let nothing_chosen = field.file_name().is_some_and(str::is_empty);
                let mut staging = media.stage()?;
                loop {
                    match field.chunk().await {
                        Ok(Some(chunk)) => staging.write(&chunk).await?,
                        Ok(None) => break,
                        Err(e) => return Err(multipart_error(e, spec, limits, form.problems)),
                    }
                }
                let staged = staging.finish().await?;
                match (staged.is_empty(), nothing_chosen) {
                    (false, _) => form.files.push((name, staged)),
                    (true, true) => {}
                    (true, false) => form
                        .problems
                        .push(FieldError::new(name, format!("{label} is empty"))),
                }
            }
        }
    }
    Err(ApiError::Validation(form.problems))
}

/// The staged file as an accepted image, or the problem that names it (the file is deleted).
pub fn image(spec: FormSpec, field: &str, file: StagedFile) -> Result<StagedImage, FieldError> {
    let label = spec.label(field);
    StagedImage::from_staged(file)
        .map(|image| image.labelled(label))
        .map_err(|_| FieldError::new(field, format!("{label} {NOT_AN_IMAGE}")))
}

/// The 415 for files that are not accepted images, when they are the only problem.
pub fn not_images(problems: &[FieldError]) -> ApiError {
    let message = problems
        .iter()
        .map(|p| p.message.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    ApiError::UnsupportedMediaType(message)
}

fn constraints(spec: FormSpec, limits: &UploadConfig) -> Constraints {
    let mut size = SizeLimit::new()
        .whole_stream(limits.max_body_bytes)
        .per_field(limits.max_field_bytes);
    for f in spec.fields.iter().filter(|f| f.kind == FieldKind::File) {
        size = size.for_field(f.name, limits.max_file_bytes);
    }
    Constraints::new()
        .allowed_fields(spec.fields.iter().map(|f| f.name).collect())
        .size_limit(size)
}

/// Takes the body without copying it (it can be megabytes).
fn into_bytes(body: Body) -> Bytes {
    match body {
        Body::Text(s) => Bytes::from(s),
        Body::Binary(b) => Bytes::from(b),
        other => Bytes::copy_from_slice(crate::http::body_bytes(&Request::new(other))),
    }
}

fn body_too_large(limits: &UploadConfig) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "Request body is larger than {}",
        human_size(limits.max_body_bytes)
    ))
}

/// What a parsing failure means for the client; problems found earlier are kept when the
/// failure is itself a field problem.
fn multipart_error(
    e: multer::Error,
    spec: FormSpec,
    limits: &UploadConfig,
    mut problems: Vec<FieldError>,
) -> ApiError {
    match e {
        multer::Error::StreamSizeExceeded { .. } => body_too_large(limits),
        multer::Error::FieldSizeExceeded { field_name, .. } => {
            let file = field_name
                .as_deref()
                .and_then(|n| spec.field(n))
                .filter(|f| f.kind == FieldKind::File);
            if let Some(file) = file {
                return ApiError::PayloadTooLarge(format!(
                    "{} is larger than {}",
                    file.label,
                    human_size(limits.max_file_bytes)
                ));
            }
            let name = field_name
                .as_deref()
                .map(echoed)
                .unwrap_or_else(|| "(unnamed)".into());
            // A file sent for a text field is already reported as such.
            if !problems.iter().any(|p| p.field == name) {
                let message = format!(
                    "{} must be at most {} bytes",
                    spec.label(&name),
                    limits.max_field_bytes
                );
                problems.push(FieldError::new(name, message));
            }
            ApiError::Validation(problems)
        }
        multer::Error::StreamReadFailed(_) | multer::Error::LockFailure => ApiError::internal(e),
        _ => ApiError::BadRequest(MALFORMED.into()),
    }
}

/// A client-supplied field name, shortened for the response.
fn echoed(name: &str) -> String {
    name.chars().take(MAX_ECHOED_NAME).collect()
}

/// `2 MiB`, `4.5 MiB`, `1 KiB` or a byte count: how limits are configured.
pub fn human_size(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    let (unit, name) = if bytes >= MIB {
        (MIB, "MiB")
    } else if bytes >= KIB {
        (KIB, "KiB")
    } else {
        return format!("{bytes} bytes");
    };
    let tenths = bytes * 10 / unit;
    if tenths * unit != bytes * 10 {
        return format!("{bytes} bytes");
    }
    if tenths.is_multiple_of(10) {
        format!("{} {name}", tenths / 10)
    } else {
        format!("{}.{} {name}", tenths / 10, tenths % 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: FormSpec = FormSpec {
        fields: &[
            FieldSpec::text("fullName", "Full name"),
            FieldSpec::text("username", "Username"),
            FieldSpec::file("avatar", "Avatar"),
        ],
    };

    #[test]
    fn limits_are_named_the_way_they_are_configured() {
        assert_eq!(human_size(2 * 1024 * 1024), "2 MiB");
        assert_eq!(human_size(4_718_592), "4.5 MiB");
        assert_eq!(human_size(1024), "1 KiB");
        assert_eq!(human_size(1000), "1000 bytes");
        assert_eq!(human_size(1_000_001), "1000001 bytes");
    }

    fn limits(file: u64, body: u64, field: u64) -> UploadConfig {
        UploadConfig {
            tmp_dir: "/tmp".into(),
            max_file_bytes: file,
            max_body_bytes: body,
            max_field_bytes: field,
        }
    }

    /// Runs the parser with our constraints over `body` and returns its first error.
    async fn first_error(body: &'static str, limits: &UploadConfig) -> Option<multer::Error> {
        let stream =
            futures::stream::once(
                async move { Ok::<_, std::convert::Infallible>(Bytes::from(body)) },
            );
        let mut multipart = Multipart::with_constraints(stream, "B", constraints(SPEC, limits));
        loop {
            match multipart.next_field().await {
                Ok(Some(field)) => {
                    if let Err(e) = field.bytes().await {
                        return Some(e);
                    }
                }
                Ok(None) => return None,
                Err(e) => return Some(e),
            }
        }
    }

    #[tokio::test]
    async fn the_parser_enforces_the_whole_body_limit_on_its_own() {
        // `read` checks the length up front as well; this is the limit for streams.
        let body =
            "--B\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nabc\r\n--B--\r\n";
        let e = first_error(body, &limits(8, 16, 8))
            .await
            .expect("must fail");
        assert!(matches!(e, multer::Error::StreamSizeExceeded { .. }), "{e}");
        assert_eq!(
            multipart_error(e, SPEC, &limits(8, 16, 8), Vec::new())
                .status()
                .as_u16(),
            413
        );
        assert!(first_error(body, &limits(1024, 4096, 1024)).await.is_none());
    }

    #[tokio::test]
    async fn text_fields_and_files_have_their_own_size_limits() {
        let text = "--B\r\nContent-Disposition: form-data; name=\"fullName\"\r\n\r\n0123456789\r\n--B--\r\n";
        let e = first_error(text, &limits(64, 4096, 8))
            .await
            .expect("text over its limit");
        let problems = multipart_error(e, SPEC, &limits(64, 4096, 8), Vec::new());
        assert_eq!(
            (
                problems.status().as_u16(),
                problems.field_errors()[0].field.as_str()
            ),
            (400, "fullName")
        );
        let file = "--B\r\nContent-Disposition: form-data; name=\"avatar\"; filename=\"a\"\r\n\r\n0123456789\r\n--B--\r\n";
        assert!(
            first_error(file, &limits(64, 4096, 8)).await.is_none(),
            "files may exceed the text limit"
        );
        let e = first_error(file, &limits(8, 4096, 8))
            .await
            .expect("file over its limit");
        let too_large = multipart_error(e, SPEC, &limits(8, 4096, 8), Vec::new());
        assert_eq!(too_large.status().as_u16(), 413);
        assert_eq!(too_large.public_message(), "Avatar is larger than 8 bytes");
    }

    #[tokio::test]
    async fn unknown_fields_are_refused_by_the_parser() {
        let body = "--B\r\nContent-Disposition: form-data; name=\"role\"\r\n\r\nadmin\r\n--B--\r\n";
        let e = first_error(body, &limits(64, 4096, 64))
            .await
            .expect("unknown field");
        assert!(
            matches!(e, multer::Error::UnknownField { field_name: Some(ref n) } if n == "role"),
            "{e}"
        );
    }

    #[test]
    fn only_multipart_form_data_with_a_boundary_has_a_boundary() {
        assert!(multer::parse_boundary("multipart/form-data; boundary=abc").is_ok());
        for ct in [
            "multipart/form-data",
            "multipart/mixed; boundary=abc",
            "application/json",
            "text/plain; boundary=abc",
            "",
        ] {
            assert!(multer::parse_boundary(ct).is_err(), "{ct}");
        }
    }

    #[test]
    fn messages_name_fields_by_their_label_and_strangers_by_their_name() {
        assert_eq!(SPEC.label("fullName"), "Full name");
        assert_eq!(SPEC.label("role"), "role");
    }
}
