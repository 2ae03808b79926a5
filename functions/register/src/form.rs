//! Reading the registration form: `multipart/form-data` parsed by `multer` under explicit
//! constraints, files streamed into staged files, then every field validated at once.
//!
//! [`read`] answers 415 for anything but multipart with a boundary, 413 for a body or file over
//! its limit, and 400 for a body that is not valid multipart. Problems with individual parts
//! (unknown, repeated, a text where a file belongs or the reverse, an empty file) are collected
//! and reported together with the field validation of [`Form::validate`]. Staged files are
//! owned by the [`Form`], so they are deleted whenever it is dropped.
use std::collections::HashSet;

use bytes::Bytes;
use lambda_http::{Body, Request, http::header};
use multer::{Constraints, Multipart, SizeLimit};
use shared::{
    ApiError, FieldError,
    config::UploadConfig,
    domain::{Email, FullName, Password, Username},
    media::{Media, StagedFile, StagedImage},
};

pub const FULL_NAME: &str = "fullName";
pub const EMAIL: &str = "email";
pub const USERNAME: &str = "username";
pub const PASSWORD: &str = "password";
pub const AVATAR: &str = "avatar";
pub const COVER_IMAGE: &str = "coverImage";
const TEXT_FIELDS: [&str; 4] = [FULL_NAME, EMAIL, USERNAME, PASSWORD];
const FILE_FIELDS: [&str; 2] = [AVATAR, COVER_IMAGE];
/// Stop reading a body once it has shown this many problems: it is not a form worth finishing.
const MAX_PROBLEMS: usize = 16;
/// Longest client-supplied field name echoed back in `errors`.
const MAX_ECHOED_NAME: usize = 64;

const NOT_MULTIPART: &str = "Content type must be multipart/form-data with a boundary";
const MALFORMED: &str = "Request body is not valid multipart/form-data";
const NOT_AN_IMAGE: &str = "must be a JPEG, PNG, WebP or GIF image";

/// The form as received: raw text values, staged files, and the problems found so far. Not
/// `Debug`: it holds the password.
#[derive(Default)]
pub struct Form {
    full_name: Option<String>,
    email: Option<String>,
    username: Option<String>,
    password: Option<String>,
    avatar: Option<StagedFile>,
    cover_image: Option<StagedFile>,
    problems: Vec<FieldError>,
}

/// A valid registration: domain values and staged images only.
pub struct Registration {
    pub full_name: FullName,
    pub email: Email,
    pub username: Username,
    pub password: Password,
    pub avatar: StagedImage,
    pub cover_image: Option<StagedImage>,
}

/// Reads and stages the multipart body of `req`.
pub async fn read(req: Request, media: &Media) -> Result<Form, ApiError> {
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
    let mut multipart = Multipart::with_constraints(stream, boundary, constraints(limits));
    let mut form = Form::default();
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
            Err(e) => return Err(multipart_error(e, limits, form.problems)),
        };
        // Allowed fields always have a name; dropping a field unread skips its data.
        let Some(name) = field
            .name()
            .and_then(|n| TEXT_FIELDS.into_iter().chain(FILE_FIELDS).find(|f| *f == n))
        else {
            continue;
        };
        let is_file = field.file_name().is_some();
        if !seen.insert(name) {
            form.problems.push(FieldError::new(
                name,
                format!("{} must be given only once", label(name)),
            ));
            continue;
        }
        match (FILE_FIELDS.contains(&name), is_file) {
            (true, false) => form.problems.push(FieldError::new(
                name,
                format!("{} must be a file", label(name)),
            )),
            (false, true) => form.problems.push(FieldError::new(
                name,
                format!("{} must be a text value, not a file", label(name)),
            )),
            (false, false) => {
                let bytes = match field.bytes().await {
                    Ok(bytes) => bytes,
                    Err(e) => return Err(multipart_error(e, limits, form.problems)),
                };
                match String::from_utf8(bytes.to_vec()) {
                    Ok(text) => *form.text_slot(name) = Some(text),
                    Err(_) => form.problems.push(FieldError::new(
                        name,
                        format!("{} must be UTF-8 text", label(name)),
                    )),
                }
            }
            (true, true) => {
                // Browsers send an unchosen file input as an empty part with an empty filename.
                let nothing_chosen = field.file_name().is_some_and(str::is_empty);
                let mut staging = media.stage()?;
                loop {
                    match field.chunk().await {
                        Ok(Some(chunk)) => staging.write(&chunk).await?,
                        Ok(None) => break,
                        Err(e) => return Err(multipart_error(e, limits, form.problems)),
                    }
                }
                let staged = staging.finish().await?;
                match (staged.is_empty(), nothing_chosen) {
                    (false, _) => *form.file_slot(name) = Some(staged),
                    (true, true) => {}
                    (true, false) => form
                        .problems
                        .push(FieldError::new(name, format!("{} is empty", label(name)))),
                }
            }
        }
    }
    Err(ApiError::Validation(form.problems))
}

impl Form {
    fn text_slot(&mut self, name: &str) -> &mut Option<String> {
        match name {
            FULL_NAME => &mut self.full_name,
            EMAIL => &mut self.email,
            USERNAME => &mut self.username,
            _ => &mut self.password,
        }
    }

    fn file_slot(&mut self, name: &str) -> &mut Option<StagedFile> {
        if name == AVATAR {
            &mut self.avatar
        } else {
            &mut self.cover_image
        }
    }

    /// Parses every field into its domain type. All problems are reported together: 400 when
    /// any text field or part is wrong (file-type problems listed alongside), 415 when the only
    /// problem is a file that is not an accepted image.
    pub fn validate(self) -> Result<Registration, ApiError> {
        let mut problems = self.problems;
        let full_name = check(
            FULL_NAME,
            FullName::parse(self.full_name.as_deref().unwrap_or_default()),
            &mut problems,
        );
        let email = check(
            EMAIL,
            Email::parse(self.email.as_deref().unwrap_or_default()),
            &mut problems,
        );
        let username = check(
            USERNAME,
            Username::parse(self.username.as_deref().unwrap_or_default()),
            &mut problems,
        );
        let password = check(
            PASSWORD,
            Password::parse(self.password.unwrap_or_default()),
            &mut problems,
        );
        let required = self.avatar.ok_or_else(|| "Avatar is required".to_owned());
        let avatar = check(AVATAR, required, &mut problems);
        let mut not_images = Vec::new();
        let mut image = |field: &'static str, file: StagedFile| {
            let problem = || FieldError::new(field, format!("{} {NOT_AN_IMAGE}", label(field)));
            StagedImage::from_staged(file)
                .map_err(|_| not_images.push(problem()))
                .ok()
        };
        let avatar = avatar.and_then(|f| image(AVATAR, f));
        let cover_image = self.cover_image.map(|f| image(COVER_IMAGE, f));
        if !problems.is_empty() {
            problems.extend(not_images);
            return Err(ApiError::Validation(problems));
        }
        if !not_images.is_empty() {
            let message = not_images
                .iter()
                .map(|p| p.message.as_str())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(ApiError::UnsupportedMediaType(message));
        }
        match (full_name, email, username, password, avatar, cover_image) {
            (
                Some(full_name),
                Some(email),
                Some(username),
                Some(password),
                Some(avatar),
                cover_image @ (None | Some(Some(_))),
            ) => Ok(Registration {
                full_name,
                email,
                username,
                password,
                avatar,
                cover_image: cover_image.flatten(),
            }),
            _ => Err(ApiError::internal(std::io::Error::other(
                "a field was rejected without a reported problem",
            ))),
        }
    }
}

/// The value, or `None` after recording the problem (unless the field already has one).
fn check<T>(field: &str, result: Result<T, String>, problems: &mut Vec<FieldError>) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(message) => {
            if !problems.iter().any(|p| p.field == field) {
                problems.push(FieldError::new(field, message));
            }
            None
        }
    }
}

fn constraints(limits: &UploadConfig) -> Constraints {
    let mut size = SizeLimit::new()
        .whole_stream(limits.max_body_bytes)
        .per_field(limits.max_field_bytes);
    for name in FILE_FIELDS {
        size = size.for_field(name, limits.max_file_bytes);
    }
    Constraints::new()
        .allowed_fields(TEXT_FIELDS.into_iter().chain(FILE_FIELDS).collect())
        .size_limit(size)
}

/// Takes the body without copying it (it can be megabytes).
fn into_bytes(body: Body) -> Bytes {
    match body {
        Body::Text(s) => Bytes::from(s),
        Body::Binary(b) => Bytes::from(b),
        other => Bytes::copy_from_slice(shared::http::body_bytes(&Request::new(other))),
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
    limits: &UploadConfig,
    mut problems: Vec<FieldError>,
) -> ApiError {
    match e {
        multer::Error::StreamSizeExceeded { .. } => body_too_large(limits),
        multer::Error::FieldSizeExceeded { field_name, .. } => match field_name.as_deref() {
            Some(name @ (AVATAR | COVER_IMAGE)) => ApiError::PayloadTooLarge(format!(
                "{} is larger than {}",
                label(name),
                human_size(limits.max_file_bytes)
            )),
            name => {
                let name = name.map(echoed).unwrap_or_else(|| "(unnamed)".into());
                // A file sent for a text field is already reported as such.
                if !problems.iter().any(|p| p.field == name) {
                    let message = format!(
                        "{} must be at most {} bytes",
                        label(&name),
                        limits.max_field_bytes
                    );
                    problems.push(FieldError::new(name, message));
                }
                ApiError::Validation(problems)
            }
        },
        multer::Error::StreamReadFailed(_) | multer::Error::LockFailure => ApiError::internal(e),
        _ => ApiError::BadRequest(MALFORMED.into()),
    }
}

/// How messages name a field.
fn label(name: &str) -> &str {
    match name {
        FULL_NAME => "Full name",
        EMAIL => "Email",
        USERNAME => "Username",
        PASSWORD => "Password",
        AVATAR => "Avatar",
        COVER_IMAGE => "Cover image",
        other => other,
    }
}

/// A client-supplied field name, shortened for the response.
fn echoed(name: &str) -> String {
    name.chars().take(MAX_ECHOED_NAME).collect()
}

/// `2 MiB`, `4.5 MiB`, `1 KiB` or a byte count: how limits are configured.
fn human_size(bytes: u64) -> String {
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
        let mut multipart = Multipart::with_constraints(stream, "B", constraints(limits));
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
        // The handler checks the length up front as well; this is the limit for streams.
        let body =
            "--B\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nabc\r\n--B--\r\n";
        let e = first_error(body, &limits(8, 16, 8))
            .await
            .expect("must fail");
        assert!(matches!(e, multer::Error::StreamSizeExceeded { .. }), "{e}");
        assert_eq!(
            multipart_error(e, &limits(8, 16, 8), Vec::new())
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
        let problems = multipart_error(e, &limits(64, 4096, 8), Vec::new());
        assert_eq!(
            (
                problems.status().as_u16(),
                problems.field_errors()[0].field.as_str()
            ),
            (400, FULL_NAME)
        );
        let file = "--B\r\nContent-Disposition: form-data; name=\"avatar\"; filename=\"a\"\r\n\r\n0123456789\r\n--B--\r\n";
        assert!(
            first_error(file, &limits(64, 4096, 8)).await.is_none(),
            "files may exceed the text limit"
        );
        let e = first_error(file, &limits(8, 4096, 8))
            .await
            .expect("file over its limit");
        assert_eq!(
            multipart_error(e, &limits(8, 4096, 8), Vec::new())
                .status()
                .as_u16(),
            413
        );
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
}
