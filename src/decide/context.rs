//! SELinux security contexts and MCS levels: parsing, validation and formatting.
//!
//! The kernel on the test machines does not check labels, so every context the agent
//! writes is validated here first: `user:role:type:level`, where the level is
//! `sN[:cats][-sN[:cats]]` and every category lies within `c0..c1023`.

use std::fmt;
use std::str::FromStr;

/// Highest category number an MCS policy defines (`c1023`).
pub const MAX_CATEGORY: u16 = 1023;
/// Highest sensitivity accepted (`s15`, refpolicy's MLS maximum).
const MAX_SENSITIVITY: u16 = 15;

/// Why a context or level string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid security context {input:?}: {reason}")]
pub struct ParseError {
    input: String,
    reason: String,
}

impl ParseError {
    fn new(input: &str, reason: impl Into<String>) -> Self {
        Self {
            input: input.to_owned(),
            reason: reason.into(),
        }
    }
}

/// A set of MCS categories, `c0` to `c1023`, as a bitmap.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct CategorySet {
    bits: [u64; 16],
}

impl CategorySet {
    /// Every category `c0.c1023`.
    pub fn full() -> Self {
        Self {
            bits: [u64::MAX; 16],
        }
    }

    /// Adds category `c`; `c` must be at most [`MAX_CATEGORY`].
    pub fn insert(&mut self, c: u16) {
        self.bits[usize::from(c / 64)] |= 1 << (c % 64);
    }

    /// Whether category `c` is in the set.
    pub fn contains(&self, c: u16) -> bool {
        c <= MAX_CATEGORY && self.bits[usize::from(c / 64)] & (1 << (c % 64)) != 0
    }

    /// The categories in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (0..=MAX_CATEGORY).filter(|c| self.contains(*c))
    }

    /// Number of categories in the set.
    pub fn len(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether the set has no category.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether every category of `other` is also in `self`.
    pub fn contains_all(&self, other: &CategorySet) -> bool {
        self.bits
            .iter()
            .zip(other.bits.iter())
            .all(|(a, b)| b & !a == 0)
    }

    /// Parses `c0.c1023`, `c1,c5`, `c0.c9,c20` (the text after `sN:`).
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let mut set = CategorySet::default();
        for part in s.split(',') {
            match part.split_once('.') {
                Some((lo, hi)) => {
                    let (lo, hi) = (parse_category(s, lo)?, parse_category(s, hi)?);
                    if lo >= hi {
                        return Err(ParseError::new(
                            s,
                            format!("category range {part} is not ascending"),
                        ));
                    }
                    (lo..=hi).for_each(|c| set.insert(c));
                }
                None => set.insert(parse_category(s, part)?),
            }
        }
        Ok(set)
    }
}

impl fmt::Display for CategorySet {
    /// Canonical form as libselinux prints it: runs of three or more as `cA.cB`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cats: Vec<u16> = self.iter().collect();
        let mut first = true;
        let mut i = 0;
        while i < cats.len() {
            let mut j = i;
            while j + 1 < cats.len() && cats[j + 1] == cats[j] + 1 {
                j += 1;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if j >= i + 2 {
                write!(f, "c{}.c{}", cats[i], cats[j])?;
                i = j + 1;
            } else {
                write!(f, "c{}", cats[i])?;
                i += 1;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for CategorySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CategorySet({self})")
    }
}

fn parse_category(input: &str, s: &str) -> Result<u16, ParseError> {
    let n = s
        .strip_prefix('c')
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse::<u16>().ok())
        .ok_or_else(|| ParseError::new(input, format!("{s:?} is not a category (cN)")))?;
    if n > MAX_CATEGORY {
        return Err(ParseError::new(
            input,
            format!("category c{n} is beyond c{MAX_CATEGORY}"),
        ));
    }
    Ok(n)
}

/// The pair a guest's volumes carry: the pair libvirt runs it with when it has one of
/// its own (a domain with a static label), else the guest's pair.
pub fn effective_pair(own: Pair, run: Option<Pair>) -> Pair {
    run.unwrap_or(own)
}

/// The MCS category pair that isolates one guest: `s0:cA,cB` with `A < B`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pair {
    low: u16,
    high: u16,
}

impl Pair {
    /// A pair of two distinct categories, in any order; `None` if they are equal or out of range.
    pub fn new(a: u16, b: u16) -> Option<Self> {
        let (low, high) = (a.min(b), a.max(b));
        (low != high && high <= MAX_CATEGORY).then_some(Self { low, high })
    }

    /// The lower category number.
    pub fn low(self) -> u16 {
        self.low
    }

    /// The higher category number.
    pub fn high(self) -> u16 {
        self.high
    }

    /// The MCS level of this pair, `s0:cA,cB`.
    pub fn level(self) -> String {
        format!("s0:{self}")
    }
}

impl fmt::Display for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{},c{}", self.low, self.high)
    }
}

impl FromStr for Pair {
    type Err = ParseError;

    /// Parses `cA,cB`.
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let (a, b) = s
            .split_once(',')
            .ok_or_else(|| ParseError::new(s, "a pair is written cA,cB"))?;
        Pair::new(parse_category(s, a)?, parse_category(s, b)?)
            .ok_or_else(|| ParseError::new(s, "the two categories must differ"))
    }
}

/// One `sN[:cats]` half of a level.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Sublevel {
    sensitivity: u16,
    categories: CategorySet,
}

fn parse_sublevel(input: &str, s: &str) -> Result<Sublevel, ParseError> {
    let (sens, cats) = match s.split_once(':') {
        Some((sens, cats)) => (sens, Some(cats)),
        None => (s, None),
    };
    let sensitivity = sens
        .strip_prefix('s')
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse::<u16>().ok())
        .filter(|n| *n <= MAX_SENSITIVITY)
        .ok_or_else(|| {
            ParseError::new(input, format!("{sens:?} is not a sensitivity (s0..s15)"))
        })?;
    let categories = match cats {
        Some(c) => CategorySet::parse(c).map_err(|e| ParseError::new(input, e.reason))?,
        None => CategorySet::default(),
    };
    Ok(Sublevel {
        sensitivity,
        categories,
    })
}

/// One half of a level as (sensitivity, categories).
pub type LevelHalf = (u16, CategorySet);

/// A validated security context `user:role:type:level`.
///
/// The original text is kept as written, so what is compared with a file's label and
/// what is written to it are the same bytes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Context {
    text: String,
    level_start: usize,
}

impl Context {
    /// The whole context as text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The MLS/MCS level field, e.g. `s0:c1,c2`.
    pub fn level(&self) -> &str {
        &self.text[self.level_start..]
    }

    /// The same user, role and type at another level (validated).
    pub fn with_level(&self, level: &str) -> Result<Context, ParseError> {
        format!("{}{level}", &self.text[..self.level_start]).parse()
    }

    /// The context without its level (`user:role:type:`), and its level's low and high
    /// halves as (sensitivity, categories); `None` when the level does not parse here
    /// (a policy's category aliases).
    pub fn split_level(&self) -> Option<(&str, LevelHalf, LevelHalf)> {
        let level = self.level();
        let (low, high) = match level.split_once('-') {
            Some((l, h)) => (
                parse_sublevel(level, l).ok()?,
                parse_sublevel(level, h).ok()?,
            ),
            None => {
                let l = parse_sublevel(level, level).ok()?;
                (l.clone(), l)
            }
        };
        Some((
            &self.text[..self.level_start],
            (low.sensitivity, low.categories),
            (high.sensitivity, high.categories),
        ))
    }

    /// The categories of the level's high half (all the categories the level may hold).
    pub fn high_categories(&self) -> CategorySet {
        let level = self.level();
        let high = level.split_once('-').map_or(level, |(_, h)| h);
        parse_sublevel(level, high)
            .map(|s| s.categories)
            .unwrap_or_default()
    }
}

fn is_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

impl FromStr for Context {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        let mut fields = s.splitn(4, ':');
        let (Some(user), Some(role), Some(ty), Some(level)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(ParseError::new(s, "expected user:role:type:level"));
        };
        for (what, value) in [("user", user), ("role", role), ("type", ty)] {
            if !is_identifier(value) {
                return Err(ParseError::new(
                    s,
                    format!("{what} {value:?} is not a name"),
                ));
            }
        }
        let (low, high) = match level.split_once('-') {
            Some((l, h)) => (parse_sublevel(s, l)?, Some(parse_sublevel(s, h)?)),
            None => (parse_sublevel(s, level)?, None),
        };
        if let Some(high) = &high
            && (high.sensitivity < low.sensitivity
                || !high.categories.contains_all(&low.categories))
        {
            return Err(ParseError::new(
                s,
                "the high level does not dominate the low level",
            ));
        }
        Ok(Context {
            text: s.to_owned(),
            level_start: user.len() + role.len() + ty.len() + 3,
        })
    }
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Context({})", self.text)
    }
}

impl serde::Serialize for Context {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_refpolicy_contexts() {
        let c: Context = "system_u:object_r:svirt_image_t:s0:c1,c2".parse().unwrap();
        assert_eq!(c.level(), "s0:c1,c2");
        let c: Context = "system_u:system_r:svirt_t:s0-s0:c0.c1023".parse().unwrap();
        assert_eq!(c.high_categories(), CategorySet::full());
        assert_eq!(
            c.with_level("s0:c3,c870").unwrap().as_str(),
            "system_u:system_r:svirt_t:s0:c3,c870"
        );
    }

    #[test]
    fn rejects_malformed_contexts() {
        for bad in [
            "",
            "system_u:object_r:virt_image_t",
            "system_u:object_r::s0",
            "system_u:object_r:virt image_t:s0",
            "system_u:object_r:virt_image_t:s0:c1024",
            "system_u:object_r:virt_image_t:s0:c5.c2",
            "system_u:object_r:virt_image_t:x0",
            "system_u:object_r:virt_image_t:s0:c1,",
            "system_u:object_r:virt_image_t:s0:c1-s0",
            "system_u:object_r:virt_image_t:s16",
        ] {
            assert!(bad.parse::<Context>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn category_sets_print_canonically() {
        let set = CategorySet::parse("c0.c3,c7,c9,c10").unwrap();
        assert_eq!(set.to_string(), "c0.c3,c7,c9,c10");
        assert_eq!(set.len(), 7);
        assert_eq!(CategorySet::full().to_string(), "c0.c1023");
        assert!(CategorySet::parse("c1024").is_err());
    }

    #[test]
    fn pairs_are_ordered_and_distinct() {
        assert_eq!(Pair::new(870, 3).unwrap().to_string(), "c3,c870");
        assert!(Pair::new(5, 5).is_none());
        assert_eq!(
            "c3,c870".parse::<Pair>().unwrap(),
            Pair::new(3, 870).unwrap()
        );
        assert!("c3".parse::<Pair>().is_err());
        assert_eq!(Pair::new(1, 2).unwrap().level(), "s0:c1,c2");
    }
}
