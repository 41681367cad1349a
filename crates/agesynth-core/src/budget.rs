//! Memory budgets: a command estimates what it is about to allocate and
//! checks it against a limit *before* allocating, so that an absurd request
//! (`--rows 100000`, `--batch 100000`) is an error naming the limit instead
//! of a process the kernel kills.
//!
//! The limit is `$AGESYNTH_MEMORY_LIMIT` when set (bytes, or a number with a
//! `K`, `M`, `G` or `T` suffix, powers of 1024), else 80% of the machine's
//! physical memory (8 GiB where that cannot be read).

use crate::{Error, Result};

/// The environment variable that sets the memory limit.
pub const MEMORY_LIMIT_ENV: &str = "AGESYNTH_MEMORY_LIMIT";

/// The limit used when the machine's memory cannot be read.
pub const FALLBACK_LIMIT: u64 = 8 << 30;

/// A memory limit and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryBudget {
    limit: u64,
    source: String,
}

/// `bytes` as a short human-readable size (`1.5 GiB`, `300 MiB`, `12 KiB`).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The message of [`Error::MemoryBudget`]: what needs how much, the limit
/// and where it came from, how to need less and how to raise the limit.
pub fn budget_message(what: &str, needed: &u64, limit: &u64, source: &str, hint: &str) -> String {
    format!(
        "{what} needs about {} of memory, over the limit of {} ({source}); {hint}, \
         or raise the limit with {MEMORY_LIMIT_ENV}=SIZE (e.g. {MEMORY_LIMIT_ENV}=32G)",
        human_bytes(*needed),
        human_bytes(*limit),
    )
}

/// Parses a size: bytes, or a number with a `K`, `M`, `G` or `T` suffix
/// (powers of 1024; an optional `B` or `iB` after it is allowed).
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_uppercase();
    let t = t
        .strip_suffix("IB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(&t);
    let (num, mult) = match t.chars().last()? {
        'K' => (&t[..t.len() - 1], 1u64 << 10),
        'M' => (&t[..t.len() - 1], 1 << 20),
        'G' => (&t[..t.len() - 1], 1 << 30),
        'T' => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let v: f64 = num.trim().parse().ok()?;
    if !v.is_finite() || v <= 0.0 {
        return None;
    }
    let bytes = v * mult as f64;
    (bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// The machine's physical memory in bytes, when it can be read.
pub fn physical_memory() -> Option<u64> {
    #[cfg(unix)]
    {
        // SAFETY: sysconf only reads system configuration values.
        let (pages, page) = unsafe {
            (
                libc::sysconf(libc::_SC_PHYS_PAGES),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        if pages > 0 && page > 0 {
            return (pages as u64).checked_mul(page as u64);
        }
    }
    None
}

impl MemoryBudget {
    /// A budget of `limit` bytes; `source` says where it came from.
    pub fn new(limit: u64, source: impl Into<String>) -> Self {
        MemoryBudget {
            limit,
            source: source.into(),
        }
    }

    /// The budget of this process: `$AGESYNTH_MEMORY_LIMIT`, else 80% of the
    /// physical memory. A value that cannot be parsed is an error naming it.
    pub fn from_env() -> Result<Self> {
        match std::env::var(MEMORY_LIMIT_ENV) {
            Ok(v) if !v.trim().is_empty() => match parse_size(&v) {
                Some(limit) => Ok(MemoryBudget::new(limit, format!("{MEMORY_LIMIT_ENV}={v}"))),
                None => Err(Error::Config(format!(
                    "{MEMORY_LIMIT_ENV}=`{v}` is not a size (e.g. 16G, 512M or a number of bytes)"
                ))),
            },
            _ => Ok(match physical_memory() {
                Some(m) => MemoryBudget::new(
                    m / 10 * 8,
                    format!("80% of this machine's {}", human_bytes(m)),
                ),
                None => MemoryBudget::new(FALLBACK_LIMIT, "the default where memory is unknown"),
            }),
        }
    }

    /// The limit in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Checks that `needed` bytes for `what` fit; the error names both, the
    /// limit, `hint` (how to need less, e.g. "lower --rows") and how to raise
    /// the limit.
    pub fn check(
        &self,
        what: impl Into<String>,
        needed: u64,
        hint: impl Into<String>,
    ) -> Result<()> {
        if needed <= self.limit {
            return Ok(());
        }
        Err(Error::MemoryBudget {
            what: what.into(),
            needed,
            limit: self.limit,
            source_of_limit: self.source.clone(),
            hint: hint.into(),
        })
    }
}

/// `a * b * …` in u64, saturating (an estimate that overflows is simply
/// over every budget).
pub fn product(factors: &[u64]) -> u64 {
    factors.iter().fold(1u64, |acc, &f| acc.saturating_mul(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("2K"), Some(2048));
        assert_eq!(parse_size("1.5G"), Some(3 << 29));
        assert_eq!(parse_size("16GiB"), Some(16 << 30));
        assert_eq!(parse_size("512mb"), Some(512 << 20));
        for bad in ["", "G", "-1G", "lots", "nan", "inf"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
        assert_eq!(human_bytes(12), "12 B");
    }

    #[test]
    fn over_budget_is_an_error_naming_the_limit_and_the_way_out() {
        let b = MemoryBudget::new(1 << 30, "a test");
        b.check("a small grid", 1 << 20, "lower --rows").unwrap();
        let msg = b
            .check("a grid of 100000 rows", 23 << 30, "lower --rows")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("23.0 GiB") && msg.contains("1.0 GiB"), "{msg}");
        assert!(
            msg.contains("lower --rows") && msg.contains(MEMORY_LIMIT_ENV),
            "{msg}"
        );
        assert_eq!(product(&[u64::MAX, 2]), u64::MAX);
    }
}
