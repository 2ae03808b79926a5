//! The image formats we accept, recognised by their magic bytes (the `infer` crate), never by
//! the client's filename or content type.
use super::staging::StagedFile;

/// JPEG, PNG, WebP or GIF: what browsers display and Cloudinary transforms everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Jpeg,
    Png,
    WebP,
    Gif,
}

impl ImageKind {
    /// Recognises the first bytes of a file; `None` for anything else, including other images.
    pub fn sniff(head: &[u8]) -> Option<Self> {
        let kind = match infer::get(head)?.mime_type() {
            "image/jpeg" => Self::Jpeg,
            "image/png" => Self::Png,
            "image/gif" => Self::Gif,
            // infer only looks at bytes 8..12 ("WEBP"); a WebP file is a RIFF container too.
            "image/webp" if head.starts_with(b"RIFF") => Self::WebP,
            _ => return None,
        };
        Some(kind)
    }

    pub fn mime_type(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::WebP => "image/webp",
            Self::Gif => "image/gif",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
            Self::WebP => "webp",
            Self::Gif => "gif",
        }
    }
}

/// A staged file whose magic bytes say it is an accepted image; only these are uploaded.
#[derive(Debug)]
pub struct StagedImage {
    file: StagedFile,
    kind: ImageKind,
    /// How answers name it (the form field's label, "Avatar").
    label: String,
}

impl StagedImage {
    /// The image, or the file back when it is not one we accept.
    pub fn from_staged(file: StagedFile) -> Result<Self, StagedFile> {
        match file.kind() {
            Some(kind) if !file.is_empty() => Ok(Self {
                file,
                kind,
                label: "The image".to_owned(),
            }),
            _ => Err(file),
        }
    }

    /// Names the image in answers by `label`.
    pub fn labelled(mut self, label: &str) -> Self {
        label.clone_into(&mut self.label);
        self
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn kind(&self) -> ImageKind {
        self.kind
    }

    pub fn file(&self) -> &StagedFile {
        &self.file
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_accepted_formats_are_recognised_by_magic_bytes() {
        let cases: [(&[u8], ImageKind); 4] = [
            (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", ImageKind::Jpeg),
            (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR", ImageKind::Png),
            (b"RIFF\x24\x00\x00\x00WEBPVP8 ", ImageKind::WebP),
            (b"GIF89a\x01\x00\x01\x00", ImageKind::Gif),
        ];
        for (head, kind) in cases {
            assert_eq!(ImageKind::sniff(head), Some(kind), "{kind:?}");
        }
    }

    #[test]
    fn anything_else_is_not_an_accepted_image() {
        let cases: [&[u8]; 7] = [
            b"",
            b"hello, I am a text file named avatar.png",
            b"<!DOCTYPE html><html><body>hi</body></html>",
            b"%PDF-1.7\n",
            b"xxxxxxxxWEBPVP8 ",        // "WEBP" without the RIFF container
            b"II*\x00\x08\x00\x00\x00", // TIFF: an image, but not one we accept
            b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
        ];
        for head in cases {
            assert_eq!(
                ImageKind::sniff(head),
                None,
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
    }
}
