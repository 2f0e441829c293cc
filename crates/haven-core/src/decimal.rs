//! `decimal128`: decimal numbers with 34 significant digits, kept exactly
//! as written (`12.50` stays `12.50`), as Realm and BSON keep them.
//!
//! The 16 bytes are IEEE 754-2008 decimal128 in its binary integer
//! encoding (BID), little-endian, as BSON stores it: the sign bit, a
//! 14-bit exponent biased by 6176, and the coefficient in the low 113
//! bits. Only finite values are stored: NaN and the infinities are
//! refused, like NaN for doubles.

use std::cmp::Ordering;
use std::fmt;

/// The largest coefficient: 34 nines.
const MAX_COEFFICIENT: u128 = 10u128.pow(34) - 1;
const EXPONENT_BIAS: i32 = 6176;
const MIN_EXPONENT: i32 = -6176;
const MAX_EXPONENT: i32 = 6111;
const COEFFICIENT_BITS: u32 = 113;

/// A finite decimal128 value. `==` compares the digits as written
/// (`12.5` is not `12.50`); [`Decimal128::numeric_cmp`] compares values.
///
/// ```
/// use haven_core::Decimal128;
/// let price: Decimal128 = "12.50".parse().unwrap();
/// assert_eq!(price.to_string(), "12.50");
/// assert_eq!(price.numeric_cmp(&"12.5".parse().unwrap()), std::cmp::Ordering::Equal);
/// assert_ne!(price, "12.5".parse().unwrap(), "equal in value, not in digits");
/// assert_eq!("1e-3".parse::<Decimal128>().unwrap().numeric_cmp(&price), std::cmp::Ordering::Less);
/// assert!("NaN".parse::<Decimal128>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "[u8; 16]", into = "[u8; 16]")]
pub struct Decimal128([u8; 16]);

impl TryFrom<[u8; 16]> for Decimal128 {
    type Error = &'static str;

    fn try_from(bytes: [u8; 16]) -> Result<Decimal128, &'static str> {
        Decimal128::from_bytes(bytes).ok_or("not a finite decimal128")
    }
}

impl From<Decimal128> for [u8; 16] {
    fn from(d: Decimal128) -> [u8; 16] {
        d.0
    }
}

/// Why a text is not a storable decimal128.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a decimal128 (digits, an optional '.', an optional exponent; at most 34 significant digits)")]
pub struct NotADecimal(String);

impl Decimal128 {
    /// The value from its 16 bytes (BID, little-endian); `None` for bytes
    /// that hold no finite value this type stores.
    pub fn from_bytes(bytes: [u8; 16]) -> Option<Decimal128> {
        let d = Decimal128(bytes);
        let bits = u128::from_le_bytes(bytes);
        let combination = (bits >> 122) & 0b11111;
        // 11xxx: the large-coefficient form, infinities and NaNs: never stored.
        (combination >> 3 != 0b11 && d.coefficient() <= MAX_COEFFICIENT).then_some(d)
    }

    /// The 16 bytes.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0
    }

    fn new(negative: bool, coefficient: u128, exponent: i32) -> Decimal128 {
        let biased = (exponent + EXPONENT_BIAS) as u128;
        let bits = (u128::from(negative) << 127) | (biased << COEFFICIENT_BITS) | coefficient;
        Decimal128(bits.to_le_bytes())
    }

    fn bits(self) -> u128 {
        u128::from_le_bytes(self.0)
    }

    fn negative(self) -> bool {
        self.bits() >> 127 == 1
    }

    fn exponent(self) -> i32 {
        ((self.bits() >> COEFFICIENT_BITS) & 0x3fff) as i32 - EXPONENT_BIAS
    }

    fn coefficient(self) -> u128 {
        self.bits() & ((1u128 << COEFFICIENT_BITS) - 1)
    }

    /// The value of an int, exactly.
    pub fn from_int(i: i64) -> Decimal128 {
        Decimal128::new(i < 0, u128::from(i.unsigned_abs()), 0)
    }
}

impl std::str::FromStr for Decimal128 {
    type Err = NotADecimal;

    fn from_str(text: &str) -> Result<Decimal128, NotADecimal> {
        let fail = || NotADecimal(text.to_owned());
        let (negative, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (number, exponent) = match rest.find(['e', 'E']) {
            Some(at) => (&rest[..at], rest[at + 1..].parse::<i32>().map_err(|_| fail())?),
            None => (rest, 0),
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        let digits = format!("{whole}{fraction}");
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(fail());
        }
        let significant = digits.trim_start_matches('0');
        if significant.len() > 34 {
            return Err(fail());
        }
        let coefficient = if significant.is_empty() { 0 } else { significant.parse::<u128>().map_err(|_| fail())? };
        let exponent = exponent.checked_sub(fraction.len() as i32).ok_or_else(fail)?;
        if !(MIN_EXPONENT..=MAX_EXPONENT).contains(&exponent) {
            return Err(fail());
        }
        Ok(Decimal128::new(negative, coefficient, exponent))
    }
}

/// IEEE 754's to-scientific-string: plain digits while the exponent is
/// not positive and the number is not below 1e-6, else `d.dddE±n`.
impl fmt::Display for Decimal128 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.coefficient().to_string();
        let exponent = self.exponent();
        let adjusted = exponent + digits.len() as i32 - 1;
        let sign = if self.negative() { "-" } else { "" };
        if exponent <= 0 && adjusted >= -6 {
            let point = digits.len() as i32 + exponent;
            return match point {
                p if p <= 0 => write!(f, "{sign}0.{}{digits}", "0".repeat(p.unsigned_abs() as usize)),
                p if exponent == 0 => write!(f, "{sign}{}", &digits[..p as usize]),
                p => write!(f, "{sign}{}.{}", &digits[..p as usize], &digits[p as usize..]),
            };
        }
        let (first, rest) = digits.split_at(1);
        let point = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        write!(f, "{sign}{first}{point}E{}{adjusted}", if adjusted >= 0 { "+" } else { "" })
    }
}

impl Decimal128 {
    /// Numeric order: `12.5` and `12.50` are equal, and so are `0` and `-0`.
    pub fn numeric_cmp(&self, other: &Decimal128) -> Ordering {
        let zero = |d: &Decimal128| d.coefficient() == 0;
        let sign = |d: &Decimal128| {
            if zero(d) {
                0
            } else if d.negative() {
                -1
            } else {
                1
            }
        };
        let by_sign = sign(self).cmp(&sign(other));
        if by_sign != Ordering::Equal || sign(self) == 0 {
            return by_sign;
        }
        let magnitude = magnitude_order(*self, *other);
        if self.negative() {
            magnitude.reverse()
        } else {
            magnitude
        }
    }
}

/// The order of two non-zero magnitudes: by their adjusted exponents,
/// then by their coefficients scaled to 34 digits (10^34 fits in a u128).
fn magnitude_order(a: Decimal128, b: Decimal128) -> Ordering {
    let digits = |d: Decimal128| d.coefficient().to_string().len() as i32;
    let adjusted = |d: Decimal128| d.exponent() + digits(d) - 1;
    let scaled = |d: Decimal128| d.coefficient() * 10u128.pow((34 - digits(d)) as u32);
    adjusted(a).cmp(&adjusted(b)).then_with(|| scaled(a).cmp(&scaled(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal128 {
        text.parse().unwrap()
    }

    #[test]
    fn text_round_trips_as_written() {
        for text in
            ["0", "12.50", "-1.5", "0.001", "0.000001", "1E-7", "1.23E+5", "-0", "9999999999999999999999999999999999"]
        {
            assert_eq!(d(text).to_string(), text);
        }
        assert_eq!(d("1e3").to_string(), "1E+3");
        assert_eq!(d("+007.10").to_string(), "7.10");
        for bad in ["", "abc", "1.2.3", "NaN", "Infinity", "1e99999", "12345678901234567890123456789012345", "--1"] {
            assert!(bad.parse::<Decimal128>().is_err(), "{bad}");
        }
    }

    #[test]
    fn order_is_numeric() {
        let cmp = |a: &str, b: &str| d(a).numeric_cmp(&d(b));
        assert_eq!(cmp("12.5", "12.50"), Ordering::Equal);
        assert_eq!(cmp("0", "-0.00"), Ordering::Equal);
        for pair in [["-2", "-1.5"], ["-1.5", "0"], ["0", "1E-10"], ["1E-10", "2"], ["999.99", "1E+3"]] {
            assert_eq!(cmp(pair[0], pair[1]), Ordering::Less, "{pair:?}");
            assert_eq!(cmp(pair[1], pair[0]), Ordering::Greater, "{pair:?}");
        }
        assert_eq!(cmp("1E+3", "1000"), Ordering::Equal);
        assert_eq!(cmp("9999999999999999999999999999999999", "1E+34"), Ordering::Less);
    }

    #[test]
    fn bytes_are_bid_and_checked() {
        let price = d("12.50");
        assert_eq!(Decimal128::from_bytes(price.to_bytes()), Some(price));
        // BSON's encoding of 1 (0x3040 << 112 | 1).
        let one = (0x3040u128 << 112) | 1;
        assert_eq!(Decimal128::from_bytes(one.to_le_bytes()).unwrap().to_string(), "1");
        let nan = 0x7c00u128 << 112;
        assert_eq!(Decimal128::from_bytes(nan.to_le_bytes()), None);
        assert_eq!(Decimal128::from_int(-42).to_string(), "-42");
    }
}
