//! Decoding and encoding helpers shared by every wire type.
//!
//! Decoding uses nom over `&[u8]` with an error type that remembers which
//! field was being read, so a malformed datagram is reported as "rakp1 user
//! name: truncated" rather than as a bare parser failure. Encoding writes
//! through [`bytes::BufMut`] into a caller-owned buffer, so the hot path does
//! not allocate.
//!
//! Every wire type implements [`Decode`] and [`Encode`]; the property tests in
//! each module check that `decode(encode(x)) == x`.

use bytes::BufMut;
use nom::error::{ErrorKind, ParseError};

/// Why a datagram or payload could not be decoded. Every variant names the
/// field that was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside the named field.
    #[error("{field}: truncated")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// The named field holds a value this implementation does not accept.
    #[error("{field}: invalid value {value:#x}")]
    Invalid {
        /// The field being read.
        field: &'static str,
        /// The value found on the wire.
        value: u32,
    },
    /// A checksum over the named span did not sum to zero.
    #[error("{field}: checksum mismatch")]
    Checksum {
        /// The span the checksum covers.
        field: &'static str,
    },
    /// Bytes were left over after the named structure.
    #[error("{field}: {count} unexpected trailing bytes")]
    Trailing {
        /// The structure that should have ended.
        field: &'static str,
        /// How many bytes were left.
        count: usize,
    },
}

/// nom error carrying the field being decoded. Innermost field wins: a
/// parser wrapped in [`field`] records its name only if no inner parser has
/// already named the failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireError(pub DecodeError);

impl<'a> ParseError<&'a [u8]> for WireError {
    fn from_error_kind(_input: &'a [u8], _kind: ErrorKind) -> Self {
        // Every primitive parser used here fails only by running out of
        // input; `field` replaces the placeholder with the real name.
        WireError(DecodeError::Truncated { field: "input" })
    }

    fn append(_input: &'a [u8], _kind: ErrorKind, other: Self) -> Self {
        other
    }
}

/// Result type of every parser in this crate.
pub type PResult<'a, T> = nom::IResult<&'a [u8], T, WireError>;

/// Names the field a parser reads, so that its failure reports that name.
pub fn field<'a, O, P>(name: &'static str, mut parser: P) -> impl FnMut(&'a [u8]) -> PResult<'a, O>
where
    P: nom::Parser<&'a [u8], Output = O, Error = WireError>,
{
    move |input| {
        parser.parse(input).map_err(|e| {
            e.map(|WireError(inner)| match inner {
                DecodeError::Truncated { field: "input" } => {
                    WireError(DecodeError::Truncated { field: name })
                }
                other => WireError(other),
            })
        })
    }
}

/// Fails with [`DecodeError::Invalid`] for `name` unless `ok(value)`.
pub fn check<T: Copy + Into<u32>>(
    name: &'static str,
    value: T,
    ok: impl FnOnce(T) -> bool,
) -> Result<T, nom::Err<WireError>> {
    if ok(value) {
        Ok(value)
    } else {
        Err(invalid(name, value.into()))
    }
}

/// Builds the nom failure for an invalid value in `name`.
pub fn invalid(name: &'static str, value: u32) -> nom::Err<WireError> {
    nom::Err::Failure(WireError(DecodeError::Invalid { field: name, value }))
}

/// Reads one byte as the named field.
pub fn u8_field<'a>(name: &'static str) -> impl FnMut(&'a [u8]) -> PResult<'a, u8> {
    field(name, nom::number::complete::u8)
}

/// Reads a little-endian `u16` as the named field.
pub fn le_u16_field<'a>(name: &'static str) -> impl FnMut(&'a [u8]) -> PResult<'a, u16> {
    field(name, nom::number::complete::le_u16)
}

/// Reads a little-endian `u32` as the named field.
pub fn le_u32_field<'a>(name: &'static str) -> impl FnMut(&'a [u8]) -> PResult<'a, u32> {
    field(name, nom::number::complete::le_u32)
}

/// Reads a big-endian `u32` as the named field.
pub fn be_u32_field<'a>(name: &'static str) -> impl FnMut(&'a [u8]) -> PResult<'a, u32> {
    field(name, nom::number::complete::be_u32)
}

/// Reads exactly `N` bytes as the named field.
pub fn array_field<'a, const N: usize>(
    name: &'static str,
) -> impl FnMut(&'a [u8]) -> PResult<'a, [u8; N]> {
    move |input: &'a [u8]| match input.split_first_chunk::<N>() {
        Some((head, rest)) => Ok((rest, *head)),
        None => Err(nom::Err::Error(WireError(DecodeError::Truncated {
            field: name,
        }))),
    }
}

/// Reads exactly `n` bytes as the named field.
pub fn take_field<'a>(
    name: &'static str,
    n: usize,
) -> impl FnMut(&'a [u8]) -> PResult<'a, &'a [u8]> {
    move |input: &'a [u8]| {
        if input.len() >= n {
            let (head, rest) = input.split_at(n);
            Ok((rest, head))
        } else {
            Err(nom::Err::Error(WireError(DecodeError::Truncated {
                field: name,
            })))
        }
    }
}

/// Runs a parser over the whole input and turns the nom result into a
/// [`DecodeError`]; leftover bytes are an error naming `what`.
pub fn decode_all<'a, T>(
    what: &'static str,
    input: &'a [u8],
    parser: impl FnOnce(&'a [u8]) -> PResult<'a, T>,
) -> Result<T, DecodeError> {
    match parser(input) {
        Ok(([], value)) => Ok(value),
        Ok((rest, _)) => Err(DecodeError::Trailing {
            field: what,
            count: rest.len(),
        }),
        Err(nom::Err::Error(WireError(e)) | nom::Err::Failure(WireError(e))) => Err(e),
        Err(nom::Err::Incomplete(_)) => Err(DecodeError::Truncated { field: what }),
    }
}

/// Runs a parser over the front of the input and returns what it left.
pub fn decode_prefix<'a, T>(
    what: &'static str,
    input: &'a [u8],
    parser: impl FnOnce(&'a [u8]) -> PResult<'a, T>,
) -> Result<(T, &'a [u8]), DecodeError> {
    match parser(input) {
        Ok((rest, value)) => Ok((value, rest)),
        Err(nom::Err::Error(WireError(e)) | nom::Err::Failure(WireError(e))) => Err(e),
        Err(nom::Err::Incomplete(_)) => Err(DecodeError::Truncated { field: what }),
    }
}

/// A wire structure that can be read from bytes.
pub trait Decode<'a>: Sized {
    /// Decodes the whole of `input`; trailing bytes are an error.
    fn decode(input: &'a [u8]) -> Result<Self, DecodeError>;
}

/// A wire structure that can be written as bytes.
pub trait Encode {
    /// Appends the encoding of `self` to `out`.
    fn encode<B: BufMut>(&self, out: &mut B);

    /// Encodes into a fresh vector (tests and cold paths only).
    fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// IPMI checksum: the two's complement that makes the covered bytes sum to
/// zero modulo 256 (IPMI v2.0 section 13.8).
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |acc, b| acc.wrapping_add(*b))
        .wrapping_neg()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_the_truncated_field() {
        let r = decode_all("test", &[1u8], |i| {
            let (i, a) = u8_field("first")(i)?;
            let (i, b) = le_u16_field("second")(i)?;
            Ok((i, (a, b)))
        });
        assert_eq!(r, Err(DecodeError::Truncated { field: "second" }));
    }

    #[test]
    fn trailing_bytes_are_reported() {
        let r = decode_all("thing", &[1u8, 2, 3], |i| u8_field("a")(i));
        assert_eq!(
            r,
            Err(DecodeError::Trailing {
                field: "thing",
                count: 2
            })
        );
    }

    #[test]
    fn checksum_sums_to_zero() {
        let data = [0x20u8, 0x18];
        let c = checksum(&data);
        assert_eq!(c, 0xc8);
        assert_eq!(
            data.iter().fold(c, |a, b| a.wrapping_add(*b)),
            0,
            "covered bytes plus checksum sum to zero"
        );
    }
}
