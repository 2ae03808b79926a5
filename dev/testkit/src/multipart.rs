//! Builds `multipart/form-data` bodies the way browsers and `curl -F` do, including broken ones.
pub const BOUNDARY: &str = "----videotubeTestBoundary7MA4YWxkTrZu0gW";

/// One part of a form.
pub enum Part {
    Text(&'static str, String),
    File {
        name: &'static str,
        filename: String,
        content_type: String,
        bytes: Vec<u8>,
    },
}

impl Part {
    pub fn text(name: &'static str, value: impl Into<String>) -> Self {
        Self::Text(name, value.into())
    }

    pub fn file(name: &'static str, filename: &str, content_type: &str, bytes: Vec<u8>) -> Self {
        Self::File {
            name,
            filename: filename.to_owned(),
            content_type: content_type.to_owned(),
            bytes,
        }
    }
}

/// The body bytes for `parts` with [`BOUNDARY`].
pub fn body(parts: &[Part]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match p {
            Part::Text(name, value) => {
                out.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                );
                out.extend_from_slice(value.as_bytes());
            }
            Part::File {
                name,
                filename,
                content_type,
                bytes,
            } => {
                out.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
                    )
                    .as_bytes(),
                );
                out.extend_from_slice(bytes);
            }
        }
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

pub fn content_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

/// A valid PNG of `w` x `h` pixels, padded with an ancillary chunk to at least `min_bytes`.
pub fn png(w: u32, h: u32, min_bytes: usize) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc_input = kind.to_vec();
        crc_input.extend_from_slice(data);
        out.extend_from_slice(&crc_input);
        out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit greyscale
    chunk(&mut out, b"IHDR", &ihdr);
    // Uncompressed deflate (stored blocks) of `h` rows of filter byte + `w` zero pixels.
    let raw: Vec<u8> = (0..h)
        .flat_map(|_| std::iter::once(0u8).chain(std::iter::repeat_n(0u8, w as usize)))
        .collect();
    let mut z = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, b) in blocks.iter().enumerate() {
        z.push(u8::from(i + 1 == blocks.len()));
        z.extend_from_slice(&(b.len() as u16).to_le_bytes());
        z.extend_from_slice(&(!(b.len() as u16)).to_le_bytes());
        z.extend_from_slice(b);
    }
    z.extend_from_slice(&adler32(&raw).to_be_bytes());
    chunk(&mut out, b"IDAT", &z);
    let fixed = out.len() + 12 + 12;
    if min_bytes > fixed {
        chunk(&mut out, b"teXt", &vec![b'a'; min_bytes - fixed]);
    }
    chunk(&mut out, b"IEND", &[]);
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}
