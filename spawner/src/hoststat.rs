//! Parsing of the `/proc` files behind the `host_status` verb. Kept apart from the helper
//! so the parsing is unit-tested on fixed text; this module reads no files itself.

use crate::error::SpawnError;

/// Returns (load averages × 1000, MemTotal bytes, MemAvailable bytes).
pub fn parse_proc(loadavg: &str, meminfo: &str) -> Result<([u64; 3], u64, u64), SpawnError> {
    let mut load = [0u64; 3];
    let mut fields = loadavg.split_whitespace();
    for slot in &mut load {
        let f = fields.next().ok_or_else(|| {
            SpawnError::Helper(format!("/proc/loadavg: too few fields in {loadavg:?}"))
        })?;
        *slot = parse_milli(f).ok_or_else(|| {
            SpawnError::Helper(format!("/proc/loadavg: {f:?} is not a load average"))
        })?;
    }
    let kib = |key: &str| -> Result<u64, SpawnError> {
        meminfo
            .lines()
            .find_map(|l| {
                let rest = l.strip_prefix(key)?.strip_prefix(':')?;
                rest.split_whitespace().next()?.parse::<u64>().ok()
            })
            .map(|n| n.saturating_mul(1024))
            .ok_or_else(|| SpawnError::Helper(format!("/proc/meminfo: no {key} line")))
    };
    Ok((load, kib("MemTotal")?, kib("MemAvailable")?))
}

/// "1.25" -> 1250, without going through floating point.
fn parse_milli(s: &str) -> Option<u64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let int: u64 = int.parse().ok()?;
    let mut frac_digits: String = frac.chars().take(3).collect();
    if !frac_digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    while frac_digits.len() < 3 {
        frac_digits.push('0');
    }
    Some(int.checked_mul(1000)? + frac_digits.parse::<u64>().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_real_proc_text() {
        let (load, total, avail) = parse_proc(
            "4.48 2.41 1.06 3/412 12345\n",
            "MemTotal:       24563428 kB\nMemFree:         1000 kB\nMemAvailable:   20000000 kB\n",
        )
        .unwrap();
        assert_eq!(load, [4480, 2410, 1060]);
        assert_eq!(total, 24563428 * 1024);
        assert_eq!(avail, 20000000 * 1024);
    }

    #[test]
    fn bad_proc_text_is_an_error_not_a_panic() {
        let mem = "MemTotal: 1 kB\nMemAvailable: 1 kB\n";
        assert!(parse_proc("1.0 2.0", mem).is_err());
        assert!(parse_proc("x 2.0 3.0", mem).is_err());
        assert!(parse_proc("1.0 2.0 3.0", "MemTotal: 1 kB\n")
            .unwrap_err()
            .to_string()
            .contains("MemAvailable"));
        assert_eq!(parse_milli("0.5"), Some(500));
        assert_eq!(parse_milli("12"), Some(12000));
        assert_eq!(parse_milli("1.2x"), None);
    }
}
