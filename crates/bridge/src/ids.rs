//! Random ids and numbers from the operating system's generator (getrandom): ack id prefixes,
//! snapshot ids, temporary names and reconnect jitter. When the generator fails, that is an
//! error for the caller, never a predictable or zero id.

use crate::error::Result;

pub fn random_u64() -> Result<u64> {
    Ok(getrandom::u64()?)
}

/// A number in `[0, 1)`.
pub fn random_unit() -> Result<f64> {
    Ok((random_u64()? >> 11) as f64 / (1u64 << 53) as f64)
}

/// `prefix` followed by 16 hex digits.
pub fn random_id(prefix: &str) -> Result<String> {
    Ok(format!("{prefix}{:016x}", random_u64()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_differ_and_keep_their_prefix() {
        let a = random_id("snap_").unwrap();
        let b = random_id("snap_").unwrap();
        assert_ne!(a, b);
        assert!(
            a.starts_with("snap_") && a.len() == "snap_".len() + 16,
            "{a}"
        );
    }

    #[test]
    fn units_stay_in_range() {
        for _ in 0..1000 {
            let x = random_unit().unwrap();
            assert!((0.0..1.0).contains(&x));
        }
    }
}
