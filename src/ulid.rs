//! Run identifiers: ULIDs (48-bit millisecond time + 80 random bits, Crockford base32), so ids
//! sort by start time, need no coordination between machines, and merge safely across ledgers.

use std::time::{SystemTime, UNIX_EPOCH};

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A new ULID for `now`, with randomness from the OS.
pub fn new(now: SystemTime) -> String {
    let ms = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let mut rand = [0u8; 10];
    fill_random(&mut rand);
    encode(ms, &rand)
}

/// Encodes a ULID from its parts (26 characters).
pub fn encode(ms: u64, rand: &[u8; 10]) -> String {
    let mut v: u128 = (ms as u128 & 0xFFFF_FFFF_FFFF) << 80;
    for (i, b) in rand.iter().enumerate() {
        v |= (*b as u128) << (8 * (9 - i));
    }
    (0..26)
        .rev()
        .map(|i| ALPHABET[((v >> (5 * i)) & 31) as usize] as char)
        .collect()
}

/// The OS's randomness (`getrandom`, the crate the Rust ecosystem shares for it); without an
/// entropy source, time and pid, still unique enough per host.
fn fill_random(buf: &mut [u8]) {
    if getrandom::fill(buf).is_err() {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let mix = t ^ ((std::process::id() as u128) << 64);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (mix >> ((i % 16) * 8)) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_encoding_and_order() {
        assert_eq!(encode(0, &[0; 10]), "00000000000000000000000000");
        assert_eq!(encode(1, &[0; 10]), "00000000010000000000000000");
        assert_eq!(encode(0, &[0xFF; 10]), "0000000000ZZZZZZZZZZZZZZZZ");
        let a = new(UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_000));
        let b = new(UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_001));
        assert!(a < b && a.len() == 26);
        assert_ne!(new(SystemTime::now()), new(SystemTime::now()));
    }
}
