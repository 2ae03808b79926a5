//! Recognises the image formats the stand-in accepts (JPEG, PNG, GIF, WebP) and their size.

/// An accepted image format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Jpg,
    Png,
    Gif,
    Webp,
}

impl Format {
    /// Cloudinary's name for the format, also the extension of delivery URLs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Jpg => "jpg",
            Self::Png => "png",
            Self::Gif => "gif",
            Self::Webp => "webp",
        }
    }

    /// MIME type served for the format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Jpg => "image/jpeg",
            Self::Png => "image/png",
            Self::Gif => "image/gif",
            Self::Webp => "image/webp",
        }
    }

    /// Whether a delivery URL extension names this format (`jpeg` is accepted for `jpg`).
    pub fn matches_extension(self, extension: &str) -> bool {
        let extension = extension.to_ascii_lowercase();
        extension == self.name() || (self == Self::Jpg && extension == "jpeg")
    }
}

/// Format and pixel size of an uploaded image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    pub format: Format,
    pub width: usize,
    pub height: usize,
}

/// Identifies `bytes` by their magic bytes; `None` when they are not an accepted image.
pub fn inspect(bytes: &[u8]) -> Option<ImageInfo> {
    let format = match imagesize::image_type(bytes).ok()? {
        imagesize::ImageType::Jpeg => Format::Jpg,
        imagesize::ImageType::Png => Format::Png,
        imagesize::ImageType::Gif => Format::Gif,
        imagesize::ImageType::Webp => Format::Webp,
        _ => return None,
    };
    let size = imagesize::blob_size(bytes).ok()?;
    Some(ImageInfo {
        format,
        width: size.width,
        height: size.height,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jpeg_header_is_recognised_with_its_size() {
        let mut jpeg = vec![0xFF, 0xD8];
        // APP0 (JFIF) segment.
        jpeg.extend([0xFF, 0xE0, 0x00, 0x10]);
        jpeg.extend(b"JFIF\0");
        jpeg.extend([1, 1, 0, 0, 1, 0, 1, 0, 0]);
        // SOF0: precision 8, height 3, width 5, one component.
        jpeg.extend([0xFF, 0xC0, 0x00, 0x0B, 8, 0, 3, 0, 5, 1, 1, 0x11, 0]);
        jpeg.extend([0xFF, 0xD9]);
        let info = inspect(&jpeg).expect("a JPEG");
        assert_eq!((info.format, info.width, info.height), (Format::Jpg, 5, 3));
    }

    #[test]
    fn a_lossless_webp_header_is_recognised_with_its_size() {
        // VP8L stores width-1 and height-1 as 14-bit fields after the 0x2F signature byte.
        let (w, h) = (7u32 - 1, 4u32 - 1);
        let bits = w | (h << 14);
        let mut webp = b"RIFF".to_vec();
        webp.extend(26u32.to_le_bytes());
        webp.extend(b"WEBPVP8L");
        webp.extend(5u32.to_le_bytes());
        webp.push(0x2F);
        webp.extend(bits.to_le_bytes());
        webp.extend([0; 8]);
        let info = inspect(&webp).expect("a WebP");
        assert_eq!((info.format, info.width, info.height), (Format::Webp, 7, 4));
    }

    #[test]
    fn text_and_other_image_formats_are_refused() {
        assert_eq!(inspect(b"hello, this is not an image at all"), None);
        assert_eq!(inspect(b""), None);
        // Only JPEG, PNG, GIF and WebP are accepted.
        let mut bmp = b"BM".to_vec();
        bmp.extend([0; 30]);
        assert_eq!(inspect(&bmp), None);
    }
}
