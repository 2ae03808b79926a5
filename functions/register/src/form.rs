//! The registration form: its fields ([`SPEC`]), read and staged by [`shared::media::form`]
//! (multipart under explicit limits, files streamed to staged files, part problems collected),
//! then every field validated at once by [`Form::validate`].
//!
//! [`read`] answers 415 for anything but multipart with a boundary, 413 for a body or file over
//! its limit, and 400 for a body that is not valid multipart. Staged files are owned by the
//! [`Form`], so they are deleted whenever it is dropped.
use lambda_http::Request;
use shared::{
    ApiError, FieldError,
    domain::{Email, FullName, Password, Username},
    media::{
        Media, StagedImage,
        form::{self as media_form, FieldSpec, FormSpec, RawForm},
    },
};

pub const FULL_NAME: &str = "fullName";
pub const EMAIL: &str = "email";
pub const USERNAME: &str = "username";
pub const PASSWORD: &str = "password";
pub const AVATAR: &str = "avatar";
pub const COVER_IMAGE: &str = "coverImage";

/// The fields registration allows, and how messages name them.
pub const SPEC: FormSpec = FormSpec {
    fields: &[
        FieldSpec::text(FULL_NAME, "Full name"),
        FieldSpec::text(EMAIL, "Email"),
        FieldSpec::text(USERNAME, "Username"),
        FieldSpec::text(PASSWORD, "Password"),
        FieldSpec::file(AVATAR, "Avatar"),
        FieldSpec::file(COVER_IMAGE, "Cover image"),
    ],
};

/// The form as received. Not `Debug`: it holds the password.
pub struct Form(RawForm);

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
    media_form::read(req, media, SPEC).await.map(Form)
}

impl Form {
    /// Parses every field into its domain type. All problems are reported together: 400 when
    /// any text field or part is wrong (file-type problems listed alongside), 415 when the only
    /// problem is a file that is not an accepted image.
    pub fn validate(self) -> Result<Registration, ApiError> {
        let mut raw = self.0;
        let mut problems = std::mem::take(&mut raw.problems);
        let full_name = check(
            FULL_NAME,
            FullName::parse(raw.take_text(FULL_NAME).as_deref().unwrap_or_default()),
            &mut problems,
        );
        let email = check(
            EMAIL,
            Email::parse(raw.take_text(EMAIL).as_deref().unwrap_or_default()),
            &mut problems,
        );
        let username = check(
            USERNAME,
            Username::parse(raw.take_text(USERNAME).as_deref().unwrap_or_default()),
            &mut problems,
        );
        let password = check(
            PASSWORD,
            Password::parse(raw.take_text(PASSWORD).unwrap_or_default()),
            &mut problems,
        );
        let required = raw
            .take_file(AVATAR)
            .ok_or_else(|| "Avatar is required".to_owned());
        let avatar = check(AVATAR, required, &mut problems);
        let mut not_images = Vec::new();
        let mut image = |field: &'static str, file| {
            media_form::image(SPEC, field, file)
                .map_err(|problem| not_images.push(problem))
                .ok()
        };
        let avatar = avatar.and_then(|f| image(AVATAR, f));
        let cover_image = raw.take_file(COVER_IMAGE).map(|f| image(COVER_IMAGE, f));
        if !problems.is_empty() {
            problems.extend(not_images);
            return Err(ApiError::Validation(problems));
        }
        if !not_images.is_empty() {
            return Err(media_form::not_images(&not_images));
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
