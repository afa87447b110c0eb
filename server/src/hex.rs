//! Lowercase hex for tokens, digests and key files.

/// Appends `bytes` as lowercase hex to `out`.
pub(crate) fn encode_into(bytes: &[u8], out: &mut String) {
    for b in bytes {
        // Both nibbles are below 16, so `from_digit` always answers.
        out.extend(char::from_digit(u32::from(b >> 4), 16));
        out.extend(char::from_digit(u32::from(b & 0x0f), 16));
    }
}

/// The 32 bytes spelled by exactly 64 hex digits (either case).
pub(crate) fn decode_32(text: &str) -> Option<[u8; 32]> {
    let text = text.as_bytes();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let [hi, lo] = pair else { return None };
        *byte = (nibble(*hi)? << 4) | nibble(*lo)?;
    }
    Some(out)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_byte_value() {
        let bytes: Vec<u8> = (0..=255).collect();
        for chunk in bytes.chunks(32) {
            let mut s = String::new();
            encode_into(chunk, &mut s);
            assert_eq!(decode_32(&s).unwrap().as_slice(), chunk);
            assert_eq!(decode_32(&s.to_uppercase()).unwrap().as_slice(), chunk);
        }
    }

    #[test]
    fn rejects_wrong_length_and_non_hex() {
        let ok = "0".repeat(64);
        assert!(decode_32(&ok).is_some());
        for bad in [
            &"0".repeat(63),
            &"0".repeat(65),
            &format!("{}g", "0".repeat(63)),
            &format!("{}é", "0".repeat(62)),
            "",
        ] {
            assert!(decode_32(bad).is_none(), "{bad:?}");
        }
    }
}
