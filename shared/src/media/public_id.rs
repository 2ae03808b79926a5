//! Cloudinary public ids and `https://` URLs recovered from delivery URLs.
//!
//! We store every image's public id beside its URL, but the Node version stored only the URL
//! (Cloudinary's `url`, plain `http://`). Destroying a Node-era image when it is replaced, and
//! migrating Node-era users, therefore need the id back from the URL. A delivery URL is
//! `<scheme>://<host>[/<base path>]/<cloud>/image/upload/[<transformation>/...][v<digits>/]<id>.<ext>`
//! on `res.cloudinary.com` and on our stand-in alike, so the host is not checked here: the
//! `/<cloud>/image/upload/` shape is.
//!
//! The id is what a later `destroy` will name, so anything doubtful gives `None` rather than a
//! guess: other resource types and delivery types, `.` and `..` segments (raw or encoded),
//! empty segments, characters Cloudinary never puts in a public id. One ambiguity is
//! Cloudinary's own: without a version segment, a leading folder named like a transformation
//! (`ab_cd/...`) is read as one; Node-era and our URLs always carry the version.
use url::{Host, Url};

/// Cloudinary's limit on a public id's length, folders included.
const MAX_PUBLIC_ID_CHARS: usize = 255;

/// The public id in a Cloudinary image delivery URL (`videotube/abc123` for
/// `https://res.cloudinary.com/demo/image/upload/c_fill,w_100/v1712345678/videotube/abc123.png`),
/// decoded; `None` if `url` is not such a URL.
pub fn public_id_from_url(url: &str) -> Option<String> {
    if has_dot_segment(url) {
        return None;
    }
    let parsed = Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "http" | "https")
        || parsed.host_str().is_none_or(str::is_empty)
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return None;
    }
    let segments: Vec<&str> = parsed.path_segments()?.collect();
    let upload = segments.windows(2).position(|w| w == ["image", "upload"])?;
    // The cloud name comes right before `image/upload`.
    if upload == 0 || segments[upload - 1].is_empty() {
        return None;
    }
    // The last segment is always the id itself, never a transformation or a version.
    let mut rest = &segments[upload + 2..];
    while rest.len() > 1 && is_transformation(rest[0]) {
        rest = &rest[1..];
    }
    if rest.len() > 1 && is_version(rest[0]) {
        rest = &rest[1..];
    }
    let (file, folders) = rest.split_last()?;
    let file = percent_decode(file)?;
    let stem = match file.rsplit_once('.') {
        Some((stem, ext)) if !ext.is_empty() && ext.chars().all(|c| c.is_ascii_alphanumeric()) => {
            stem
        }
        Some(_) => return None,
        None => file.as_str(),
    };
    let mut parts = folders
        .iter()
        .map(|s| percent_decode(s))
        .collect::<Option<Vec<_>>>()?;
    parts.push(stem.to_owned());
    let id = parts.join("/");
    is_plausible_public_id(&id).then_some(id)
}

/// The `https://` form of a Cloudinary delivery URL (`res.cloudinary.com` or another
/// `*.cloudinary.com` host); an `https://` one comes back as is (normalised). `None` for any
/// other host, a port, user info, something that is not an `http(s)` URL, or a path with `.` or
/// `..` segments, which parsing would resolve into another path than the one stored (and one
/// that [`public_id_from_url`] would read an id from where it refuses the original).
pub fn https_url(url: &str) -> Option<String> {
    if has_dot_segment(url) {
        return None;
    }
    let mut parsed = Url::parse(url).ok()?;
    let cloudinary = match parsed.host() {
        Some(Host::Domain(host)) => is_cloudinary_host(host),
        _ => false,
    };
    if !matches!(parsed.scheme(), "http" | "https")
        || !cloudinary
        || parsed.port().is_some()
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return None;
    }
    parsed.set_scheme("https").ok()?;
    Some(parsed.into())
}

/// `res.cloudinary.com`, `res-1.cloudinary.com`, `<cloud>-res.cloudinary.com`, ... but not
/// `cloudinary.com` itself, `cloudinary.com.example.org` or `evilcloudinary.com`.
fn is_cloudinary_host(host: &str) -> bool {
    host.strip_suffix(".cloudinary.com")
        .is_some_and(|sub| !sub.is_empty() && sub.split('.').all(|label| !label.is_empty()))
}

/// A chain of transformation components, e.g. `c_fill,w_100` or `t_thumb` or `$w_100`:
/// each `key_value` with a key of one to three lowercase letters (or a `$variable`).
fn is_transformation(segment: &str) -> bool {
    !segment.is_empty()
        && segment.split(',').all(|component| {
            let Some((key, value)) = component.split_once('_') else {
                return false;
            };
            let key_ok = match key.strip_prefix('$') {
                Some(var) => {
                    var.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                        && var.chars().all(|c| c.is_ascii_alphanumeric())
                }
                None => (1..=3).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_lowercase()),
            };
            key_ok && !value.is_empty()
        })
}

/// `v` and digits: the asset version Cloudinary puts before the id.
fn is_version(segment: &str) -> bool {
    segment
        .strip_prefix('v')
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether the raw path has a `.` or `..` segment, plain or percent-encoded. `Url::parse`
/// would resolve them silently, so they are looked for before parsing.
fn has_dot_segment(url: &str) -> bool {
    let before_query = url.split(['?', '#']).next().unwrap_or_default();
    before_query.split(['/', '\\']).any(|segment| {
        let decoded = percent_decode(segment).unwrap_or_default();
        decoded == "." || decoded == ".."
    })
}

/// Percent-decodes one path segment into UTF-8, `None` for a malformed escape or invalid UTF-8.
// Hand-written (a dozen lines): `url` keeps path segments encoded, and its decoder lives in the
// `percent-encoding` crate, which this crate does not otherwise need.
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Cloudinary's rules for a public id, plus ours: no empty, `.` or `..` folder, no
/// whitespace or control characters, none of `? & # \ % < >` (nor quotes), at most 255
/// characters.
fn is_plausible_public_id(id: &str) -> bool {
    let bad_char = |c: char| {
        c.is_control() || c.is_whitespace() || "?&#\\%<>\"'".contains(c) || c == '\u{feff}'
    };
    !id.is_empty()
        && id.chars().count() <= MAX_PUBLIC_ID_CHARS
        && !id.chars().any(bad_char)
        && id
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..")
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn public_ids_come_out_of_every_delivery_url_shape() {
        let cases = [
            // What the Node version stored: Cloudinary's plain-http `url`.
            (
                "http://res.cloudinary.com/demo/image/upload/v1712345678/qwertyuiop123.png",
                "qwertyuiop123",
            ),
            (
                "https://res.cloudinary.com/demo/image/upload/v1712345678/qwertyuiop123.png",
                "qwertyuiop123",
            ),
            (
                "https://res.cloudinary.com/demo/image/upload/qwertyuiop123.jpg",
                "qwertyuiop123",
            ),
            (
                "https://res.cloudinary.com/demo/image/upload/v1/videotube/abc123.webp",
                "videotube/abc123",
            ),
            (
                "https://res.cloudinary.com/demo/image/upload/videotube/sub/abc123.png",
                "videotube/sub/abc123",
            ),
            (
                "https://res.cloudinary.com/demo/image/upload/c_fill,w_100,h_100/v1712345678/videotube/abc.png",
                "videotube/abc",
            ),
            (
                "https://res.cloudinary.com/demo/image/upload/c_crop,g_face/w_200/e_sepia:50/abc.png",
                "abc",
            ),
            (
                "https://res.cloudinary.com/demo/image/upload/t_thumb/$w_100/v12/abc.gif",
                "abc",
            ),
            (
                "https://res.cloudinary.com/demo/image/upload/v1712345678/my-photo%C3%A9.png",
                "my-photoé",
            ),
            (
                "https://res.cloudinary.com/demo/image/upload/v1712345678/caf%C3%A9.png",
                "café",
            ),
            (
                "https://res.cloudinary.com/demo/image/upload/v1712345678/abc.png?_a=BAMAK+ZW0",
                "abc",
            ),
            (
                "https://res.cloudinary.com/demo/image/upload/v1712345678/abc.png#frag",
                "abc",
            ),
            (
                "https://res.cloudinary.com/demo/image/upload/v1712345678/my.photo.png",
                "my.photo",
            ),
            // No extension: Cloudinary delivers the original format.
            (
                "https://res.cloudinary.com/demo/image/upload/v1712345678/abc",
                "abc",
            ),
            // Our stand-in: loopback, a port, a base path.
            (
                "http://127.0.0.1:9100/cloudabc/image/upload/v3/videotube/0123abcd.png",
                "videotube/0123abcd",
            ),
            (
                "http://127.0.0.1:9100/base/path/cloudabc/image/upload/v3/videotube/x.png",
                "videotube/x",
            ),
            // A folder that merely looks like a version after the real one.
            (
                "https://res.cloudinary.com/demo/image/upload/v1/v2/abc.png",
                "v2/abc",
            ),
            // Segments that are not transformations stay in the id.
            (
                "https://res.cloudinary.com/demo/image/upload/folder/v1/abc.png",
                "folder/v1/abc",
            ),
        ];
        for (url, expected) in cases {
            assert_eq!(public_id_from_url(url).as_deref(), Some(expected), "{url}");
        }
    }

    #[test]
    fn urls_that_are_not_image_uploads_have_no_public_id() {
        let long = format!(
            "https://res.cloudinary.com/demo/image/upload/v1/{}.png",
            "a".repeat(256)
        );
        let hostile = [
            "",
            "   ",
            "not a url",
            "abc.png",
            "/demo/image/upload/v1/abc.png",
            "ftp://res.cloudinary.com/demo/image/upload/v1/abc.png",
            "javascript:alert(1)//image/upload/abc.png",
            "data:image/png;base64,image/upload/abc",
            "file:///demo/image/upload/abc.png",
            "https://res.cloudinary.com/demo/video/upload/v1/abc.mp4",
            "https://res.cloudinary.com/demo/raw/upload/v1/abc.pdf",
            "https://res.cloudinary.com/demo/image/fetch/https://example.com/a.png",
            "https://res.cloudinary.com/demo/image/private/v1/abc.png",
            "https://res.cloudinary.com/demo/image/authenticated/s--x--/v1/abc.png",
            "https://example.com/avatars/abc.png",
            "https://example.com/image/abc.png",
            // No cloud name before image/upload.
            "https://res.cloudinary.com/image/upload/v1/abc.png",
            "https://res.cloudinary.com//image/upload/v1/abc.png",
            // Nothing, or only a version or an extension, after upload/.
            "https://res.cloudinary.com/demo/image/upload/",
            "https://res.cloudinary.com/demo/image/upload",
            "https://res.cloudinary.com/demo/image/upload/v1/",
            "https://res.cloudinary.com/demo/image/upload/v1/.png",
            "https://res.cloudinary.com/demo/image/upload/v1/abc.",
            "https://res.cloudinary.com/demo/image/upload/v1/abc.p-g",
            // Dot segments, raw or encoded, and encoded slashes that smuggle them in.
            "https://res.cloudinary.com/demo/image/upload/v1/../abc.png",
            "https://res.cloudinary.com/demo/image/upload/../../other/image/upload/v1/abc.png",
            "https://res.cloudinary.com/demo/image/upload/v1/%2e%2e/abc.png",
            "https://res.cloudinary.com/demo/image/upload/v1/.%2E/abc.png",
            "https://res.cloudinary.com/demo/image/upload/v1/./abc.png",
            "https://res.cloudinary.com/demo/image/upload/v1/a%2F..%2Fb.png",
            "https://res.cloudinary.com/demo/image/upload/v1/a%2F%2Fb.png",
            "https://res.cloudinary.com/demo/image/upload/v1/a//b.png",
            "https://res.cloudinary.com/demo/image/upload/v1\\..\\abc.png",
            // Escapes that are malformed or decode to something no public id holds.
            "https://res.cloudinary.com/demo/image/upload/v1/ab%zz.png",
            "https://res.cloudinary.com/demo/image/upload/v1/ab%2.png",
            "https://res.cloudinary.com/demo/image/upload/v1/ab%ff.png",
            "https://res.cloudinary.com/demo/image/upload/v1/ab%00c.png",
            "https://res.cloudinary.com/demo/image/upload/v1/ab%0Ac.png",
            "https://res.cloudinary.com/demo/image/upload/v1/ab%20c.png",
            "https://res.cloudinary.com/demo/image/upload/v1/ab%3Fc.png",
            "https://res.cloudinary.com/demo/image/upload/v1/ab%23c.png",
            "https://res.cloudinary.com/demo/image/upload/v1/ab%25c.png",
            "https://res.cloudinary.com/demo/image/upload/v1/ab%3Cscript%3E.png",
            "https://res.cloudinary.com/demo/image/upload/v1/ab%E2%80%8B%EF%BB%BF.png",
            "https://user:pw@res.cloudinary.com/demo/image/upload/v1/abc.png",
            long.as_str(),
        ];
        for url in hostile {
            assert_eq!(public_id_from_url(url), None, "{url:?}");
        }
    }

    #[test]
    fn only_cloudinary_hosts_get_an_https_url() {
        let cases = [
            (
                "http://res.cloudinary.com/demo/image/upload/v1/abc.png",
                Some("https://res.cloudinary.com/demo/image/upload/v1/abc.png"),
            ),
            (
                "HTTP://RES.Cloudinary.COM/demo/image/upload/v1/abc.png?x=1",
                Some("https://res.cloudinary.com/demo/image/upload/v1/abc.png?x=1"),
            ),
            (
                "http://res-1.cloudinary.com/demo/image/upload/v1/abc.png",
                Some("https://res-1.cloudinary.com/demo/image/upload/v1/abc.png"),
            ),
            (
                "http://demo-res.cloudinary.com/image/upload/v1/abc.png",
                Some("https://demo-res.cloudinary.com/image/upload/v1/abc.png"),
            ),
            (
                "https://res.cloudinary.com/demo/image/upload/v1/abc.png",
                Some("https://res.cloudinary.com/demo/image/upload/v1/abc.png"),
            ),
            // Port 80 is http's default, which `Url` drops: nothing is left to carry over.
            (
                "http://res.cloudinary.com:80/demo/image/upload/v1/abc.png",
                Some("https://res.cloudinary.com/demo/image/upload/v1/abc.png"),
            ),
            ("http://cloudinary.com/demo/image/upload/v1/abc.png", None),
            (
                "http://evilcloudinary.com/demo/image/upload/v1/abc.png",
                None,
            ),
            (
                "http://res.cloudinary.com.example.org/demo/image/upload/v1/abc.png",
                None,
            ),
            (
                "http://res.cloudinary.com./demo/image/upload/v1/abc.png",
                None,
            ),
            ("http://.cloudinary.com/demo/image/upload/v1/abc.png", None),
            (
                "http://a..cloudinary.com/demo/image/upload/v1/abc.png",
                None,
            ),
            ("http://example.com/res.cloudinary.com/abc.png", None),
            ("http://example.com/?u=http://res.cloudinary.com/", None),
            ("http://res.cloudinary.com@example.com/abc.png", None),
            ("http://x@res.cloudinary.com/abc.png", None),
            ("http://res.cloudinary.com:8080/demo/abc.png", None),
            ("http://127.0.0.1:9100/demo/image/upload/v1/abc.png", None),
            ("http://[::1]/demo/image/upload/v1/abc.png", None),
            ("ftp://res.cloudinary.com/demo/abc.png", None),
            ("http://res.cloudinary.com/d/image/upload/A/./x.png", None),
            ("http://res.cloudinary.com/d/image/upload/../x.png", None),
            ("//res.cloudinary.com/demo/abc.png", None),
            ("res.cloudinary.com/demo/abc.png", None),
            ("", None),
            // A look-alike host (Cyrillic "с") is punycode, not Cloudinary.
            ("http://res.\u{441}loudinary.com/demo/abc.png", None),
        ];
        for (url, expected) in cases {
            assert_eq!(https_url(url).as_deref(), expected, "{url:?}");
        }
    }

    fn id_segment() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9_\\-]{1,12}(\\.[a-z0-9]{1,4})?"
            .prop_filter("not a version", |s| !is_version(s) && !is_transformation(s))
    }

    proptest! {
        #[test]
        fn a_public_id_survives_any_version_transformations_scheme_and_host(
            folders in proptest::collection::vec(id_segment(), 0..3),
            name in id_segment(),
            ext in "(png|jpg|webp|gif)",
            version in proptest::option::of(1u64..9_999_999_999),
            transformations in proptest::collection::vec("(c_fill|w_[0-9]{1,4}|h_[0-9]{1,4}|e_sepia:50|t_x)(,(w|h|q)_[0-9]{1,3})?", 0..3),
            https in any::<bool>(),
            host in "(res\\.cloudinary\\.com|127\\.0\\.0\\.1:9100|127\\.0\\.0\\.1:9100/base)",
            query in proptest::option::of("[a-z0-9=&_]{0,12}"),
        ) {
            let mut id_parts = folders.clone();
            id_parts.push(name.clone());
            let id = id_parts.join("/");
            // With folders and no version, a leading folder could read as a transformation;
            // Cloudinary resolves that by always adding a version, and so do we here.
            let version = match (version, transformations.is_empty()) {
                (None, false) => Some(1),
                (v, _) => v,
            };
            let mut path = vec![format!("{}://{host}/cloud", if https { "https" } else { "http" })];
            path.push("image/upload".to_owned());
            path.extend(transformations);
            path.extend(version.map(|v| format!("v{v}")));
            path.push(format!("{id}.{ext}"));
            let mut url = path.join("/");
            if let Some(q) = query {
                url = format!("{url}?{q}");
            }
            prop_assert_eq!(public_id_from_url(&url), Some(id));
        }

        #[test]
        fn whatever_comes_in_a_public_id_that_comes_out_is_well_formed(raw in ".{0,120}") {
            for candidate in [raw.clone(), format!("https://res.cloudinary.com/d/image/upload/{raw}")] {
                if let Some(id) = public_id_from_url(&candidate) {
                    prop_assert!(is_plausible_public_id(&id), "{candidate:?} gave {id:?}");
                }
            }
        }

        #[test]
        fn https_urls_are_https_on_cloudinary_stable_and_keep_the_public_id(
            raw in "(https?://)?[a-zA-Z0-9.\\-@:]{0,30}(/[a-zA-Z0-9_.,%\\-]{0,20}){0,6}",
            prefix in "(http://res\\.cloudinary\\.com/d/image/upload/|)",
        ) {
            let candidate = format!("{prefix}{raw}");
            if let Some(secure) = https_url(&candidate) {
                let parsed = Url::parse(&secure).expect("parses");
                prop_assert_eq!(parsed.scheme(), "https");
                prop_assert!(is_cloudinary_host(parsed.host_str().unwrap_or_default()));
                prop_assert_eq!(https_url(&secure), Some(secure.clone()));
                prop_assert_eq!(public_id_from_url(&secure), public_id_from_url(&candidate));
            }
        }
    }
}
