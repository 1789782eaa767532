//! Zero-copy bencode: a validating pull decoder, borrowed value views, and a writer.
//!
//! Owns: the bencode grammar (BEP 3) over `&[u8]`, its error type, and the
//! primitives that append bencode to a caller-owned `Vec<u8>`.
//! Must not: know about KRPC, allocate, or copy string contents.
//!
//! # Contract (checked by `engine/fuzz`)
//! - Never panics, on any input.
//! - Never allocates. In particular nothing is sized from a declared string length:
//!   a length is only compared with the bytes that are really there.
//! - Nesting is bounded by [`MAX_DEPTH`]; skipping a value uses no recursion.
//! - Every malformed input yields an [`Error`] that names what is wrong and the
//!   byte offset where it was found.
//! - Only canonical forms decode: integers without leading zeros or `-0` that fit
//!   in `i64`, and string lengths without leading zeros. So re-encoding any value
//!   this decoder accepts reproduces the input bytes exactly.
//! - Dictionary keys must be byte strings, but their order is not checked and
//!   duplicates are kept: [`Dict::get`] returns the last occurrence, the same
//!   rule the KRPC layer applies.

use core::fmt;

/// The deepest nesting of lists and dictionaries accepted. KRPC needs three.
pub const MAX_DEPTH: usize = 64;

// Bencode syntax bytes.
const INT_BEGIN: u8 = b'i';
const LIST_BEGIN: u8 = b'l';
const DICT_BEGIN: u8 = b'd';
const END: u8 = b'e';
const LEN_SEPARATOR: u8 = b':';
const MINUS: u8 = b'-';

/// What is wrong with a malformed input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The input ends inside a value, or a string's declared length runs past it.
    Truncated,
    /// A byte that cannot start a value here (including `e` where a value is due).
    UnexpectedByte,
    /// An integer that is empty, `-0`, has a leading zero or a non-digit.
    BadInteger,
    /// An integer outside `i64`.
    IntegerOverflow,
    /// A string length with a leading zero or not followed by `:`.
    BadLength,
    /// A string length of more than 18 digits.
    LengthOverflow,
    /// A dictionary key that is not a byte string.
    KeyNotString,
    /// More than [`MAX_DEPTH`] nested lists and dictionaries.
    TooDeep,
    /// Bytes after the top-level value.
    TrailingBytes,
}

/// A decoding error: what went wrong and at which byte offset of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Error {
    pub kind: ErrorKind,
    pub offset: usize,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ErrorKind::Truncated => "input truncated",
            ErrorKind::UnexpectedByte => "unexpected byte",
            ErrorKind::BadInteger => "malformed integer",
            ErrorKind::IntegerOverflow => "integer out of range",
            ErrorKind::BadLength => "malformed string length",
            ErrorKind::LengthOverflow => "string length overflows",
            ErrorKind::KeyNotString => "dictionary key is not a string",
            ErrorKind::TooDeep => "nesting too deep",
            ErrorKind::TrailingBytes => "trailing bytes after the value",
        };
        write!(f, "bencode: {what} at byte {}", self.offset)
    }
}

impl std::error::Error for Error {}

/// Integers have at most 19 digits (`i64::MAX` has 19), so the accumulator
/// never overflows while scanning.
const MAX_INT_DIGITS: usize = 19;
/// String lengths have at most 18 digits; any longer one could not be backed by
/// the input anyway.
const MAX_LEN_DIGITS: usize = 18;

/// Reads the run of ASCII digits at `p`: its value (wrapping, meaningful only for
/// runs short enough) and the index of the first non-digit.
#[inline(always)]
fn scan_digits(buf: &[u8], mut p: usize) -> (u64, usize) {
    let mut value: u64 = 0;
    while let Some(&c) = buf.get(p) {
        let digit = c.wrapping_sub(b'0');
        if digit > 9 {
            break;
        }
        value = value.wrapping_mul(10).wrapping_add(u64::from(digit));
        p += 1;
    }
    (value, p)
}

/// A pull decoder over one buffer. Each call consumes one token or value and
/// returns borrowed slices of the buffer.
#[derive(Clone, Debug)]
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    depth: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0, depth: 0 }
    }

    /// The whole input this decoder reads.
    #[inline]
    pub fn input(&self) -> &'a [u8] {
        self.buf
    }

    /// Byte offset of the next token.
    #[inline]
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The next byte, not consumed.
    #[inline]
    pub fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// True if the next value is a byte string.
    #[inline]
    pub fn at_bytes(&self) -> bool {
        matches!(self.peek(), Some(b'0'..=b'9'))
    }

    /// True if the next value is an integer.
    #[inline]
    pub fn at_int(&self) -> bool {
        self.peek() == Some(INT_BEGIN)
    }

    /// True if the next value is a list.
    #[inline]
    pub fn at_list(&self) -> bool {
        self.peek() == Some(LIST_BEGIN)
    }

    /// True if the next value is a dictionary.
    #[inline]
    pub fn at_dict(&self) -> bool {
        self.peek() == Some(DICT_BEGIN)
    }

    #[inline]
    fn error(&self, kind: ErrorKind, offset: usize) -> Error {
        Error { kind, offset }
    }

    /// The error for a missing or wrong token at the current position.
    #[inline]
    fn unexpected(&self) -> Error {
        let kind = if self.pos >= self.buf.len() {
            ErrorKind::Truncated
        } else {
            ErrorKind::UnexpectedByte
        };
        self.error(kind, self.pos)
    }

    /// Reads `i<digits>e`.
    #[inline]
    pub fn int(&mut self) -> Result<i64, Error> {
        let buf = self.buf;
        let start = self.pos;
        if buf.get(start) != Some(&INT_BEGIN) {
            return Err(self.unexpected());
        }
        let negative = buf.get(start + 1) == Some(&MINUS);
        let digits = start + 1 + usize::from(negative);
        let (magnitude, end) = scan_digits(buf, digits);
        let n = end - digits;
        // At most 19 digits cannot overflow the u64 accumulator; the checks below
        // run only when the fast path fails.
        if n == 0 || n > MAX_INT_DIGITS || buf.get(end) != Some(&END) || (n > 1 && buf[digits] == b'0') {
            return Err(self.int_error(start, digits, end));
        }
        let value = if negative {
            if magnitude > i64::MIN.unsigned_abs() || magnitude == 0 {
                return Err(self.int_error(start, digits, end));
            }
            (magnitude as i64).wrapping_neg()
        } else {
            i64::try_from(magnitude).map_err(|_| self.error(ErrorKind::IntegerOverflow, start))?
        };
        self.pos = end + 1;
        Ok(value)
    }

    /// Names the fault in a malformed integer; off the hot path.
    #[cold]
    fn int_error(&self, start: usize, digits: usize, end: usize) -> Error {
        let n = end - digits;
        if n > MAX_INT_DIGITS {
            return self.error(ErrorKind::IntegerOverflow, start);
        }
        match self.buf.get(end) {
            None => return self.error(ErrorKind::Truncated, end),
            Some(&END) => {}
            Some(_) => return self.error(ErrorKind::BadInteger, end),
        }
        if n == 0 || self.buf.get(digits) == Some(&b'0') {
            // Empty, `-0` or a leading zero.
            return self.error(ErrorKind::BadInteger, digits);
        }
        self.error(ErrorKind::IntegerOverflow, start)
    }

    /// Reads `<len>:<bytes>` and borrows the bytes.
    #[inline]
    pub fn bytes(&mut self) -> Result<&'a [u8], Error> {
        let buf = self.buf;
        let start = self.pos;
        let (len, colon) = scan_digits(buf, start);
        let n = colon - start;
        if n == 0 || n > MAX_LEN_DIGITS || buf.get(colon) != Some(&LEN_SEPARATOR) || (n > 1 && buf[start] == b'0') {
            return Err(self.bytes_error(start, colon));
        }
        let data = colon + 1;
        // The declared length is only ever compared with what is really there.
        let rest = buf.get(data..).unwrap_or_default();
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > rest.len() {
            return Err(self.error(ErrorKind::Truncated, start));
        }
        self.pos = data + len;
        Ok(&rest[..len])
    }

    /// Names the fault in a malformed string header; off the hot path.
    #[cold]
    fn bytes_error(&self, start: usize, end: usize) -> Error {
        let n = end - start;
        if n == 0 {
            return self.unexpected();
        }
        if n > MAX_LEN_DIGITS {
            return self.error(ErrorKind::LengthOverflow, start);
        }
        match self.buf.get(end) {
            None => self.error(ErrorKind::Truncated, end),
            Some(&LEN_SEPARATOR) => self.error(ErrorKind::BadLength, start),
            Some(_) => self.error(ErrorKind::BadLength, end),
        }
    }

    fn open(&mut self, marker: u8) -> Result<(), Error> {
        if self.peek() != Some(marker) {
            return Err(self.unexpected());
        }
        if self.depth >= MAX_DEPTH {
            return Err(self.error(ErrorKind::TooDeep, self.pos));
        }
        self.depth += 1;
        self.pos += 1;
        Ok(())
    }

    /// Reads `d`; then call [`Decoder::next_key`] until it returns `None`.
    pub fn dict_begin(&mut self) -> Result<(), Error> {
        self.open(DICT_BEGIN)
    }

    /// Reads `l`; then call [`Decoder::list_next`] before each item.
    pub fn list_begin(&mut self) -> Result<(), Error> {
        self.open(LIST_BEGIN)
    }

    /// Inside a dictionary: the next key, or `None` after consuming its `e`.
    /// The caller must consume the key's value before asking again.
    #[inline]
    pub fn next_key(&mut self) -> Result<Option<&'a [u8]>, Error> {
        match self.peek() {
            Some(END) => {
                self.close();
                Ok(None)
            }
            Some(b'0'..=b'9') => self.bytes().map(Some),
            Some(_) => Err(self.error(ErrorKind::KeyNotString, self.pos)),
            None => Err(self.error(ErrorKind::Truncated, self.pos)),
        }
    }

    /// Inside a list: true if an item follows, false after consuming the `e`.
    #[inline]
    pub fn list_next(&mut self) -> Result<bool, Error> {
        match self.peek() {
            Some(END) => {
                self.close();
                Ok(false)
            }
            Some(_) => Ok(true),
            None => Err(self.error(ErrorKind::Truncated, self.pos)),
        }
    }

    #[inline]
    fn close(&mut self) {
        self.pos += 1;
        self.depth = self.depth.saturating_sub(1);
    }

    /// Consumes one whole value of any type, validating it, without recursion.
    pub fn skip(&mut self) -> Result<(), Error> {
        let base = self.depth;
        // One bit per container opened here: is it a dictionary, and does it
        // expect a key next. MAX_DEPTH <= 64 keeps both in a u64.
        let mut is_dict: u64 = 0;
        let mut want_key: u64 = 0;
        loop {
            let level = self.depth - base;
            if level > 0 {
                let bit = 1u64 << (level - 1);
                let in_dict = is_dict & bit != 0;
                if self.peek() == Some(END) && (!in_dict || want_key & bit != 0) {
                    self.close();
                    is_dict &= !bit;
                    want_key &= !bit;
                    if level == 1 {
                        return Ok(());
                    }
                    self.value_done(level - 1, is_dict, &mut want_key);
                    continue;
                }
                if in_dict && want_key & bit != 0 {
                    if !self.at_bytes() {
                        let kind = if self.peek().is_none() {
                            ErrorKind::Truncated
                        } else {
                            ErrorKind::KeyNotString
                        };
                        return Err(self.error(kind, self.pos));
                    }
                    self.bytes()?;
                    want_key &= !bit;
                    continue;
                }
            }
            match self.peek() {
                Some(INT_BEGIN) => {
                    self.int()?;
                }
                Some(b'0'..=b'9') => {
                    self.bytes()?;
                }
                Some(marker @ (LIST_BEGIN | DICT_BEGIN)) => {
                    self.open(marker)?;
                    let bit = 1u64 << level;
                    if marker == DICT_BEGIN {
                        is_dict |= bit;
                        want_key |= bit;
                    }
                    continue;
                }
                _ => return Err(self.unexpected()),
            }
            if level == 0 {
                return Ok(());
            }
            self.value_done(level, is_dict, &mut want_key);
        }
    }

    /// After a value completes inside the container at `level`, a dictionary
    /// expects a key again.
    #[inline]
    fn value_done(&self, level: usize, is_dict: u64, want_key: &mut u64) {
        if level > 0 {
            let bit = 1u64 << (level - 1);
            if is_dict & bit != 0 {
                *want_key |= bit;
            }
        }
    }

    /// Decodes the next value as a borrowed view, validating all of it.
    pub fn value(&mut self) -> Result<Value<'a>, Error> {
        match self.peek() {
            Some(INT_BEGIN) => self.int().map(Value::Int),
            Some(b'0'..=b'9') => self.bytes().map(Value::Bytes),
            Some(marker @ (LIST_BEGIN | DICT_BEGIN)) => {
                let start = self.pos;
                self.skip()?;
                let raw = self.buf.get(start..self.pos).unwrap_or_default();
                Ok(if marker == LIST_BEGIN {
                    Value::List(List { raw })
                } else {
                    Value::Dict(Dict { raw })
                })
            }
            _ => Err(self.unexpected()),
        }
    }

    /// Succeeds only if the whole input has been consumed.
    pub fn finish(&self) -> Result<(), Error> {
        if self.pos < self.buf.len() {
            return Err(self.error(ErrorKind::TrailingBytes, self.pos));
        }
        Ok(())
    }
}

/// Decodes exactly one value that spans the whole input.
pub fn decode(buf: &[u8]) -> Result<Value<'_>, Error> {
    let mut d = Decoder::new(buf);
    let v = d.value()?;
    d.finish()?;
    Ok(v)
}

/// A borrowed, already validated bencode value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    Int(i64),
    Bytes(&'a [u8]),
    List(List<'a>),
    Dict(Dict<'a>),
}

impl<'a> Value<'a> {
    pub fn as_int(&self) -> Option<i64> {
        match *self {
            Value::Int(i) => Some(i),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match *self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<List<'a>> {
        match *self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    pub fn as_dict(&self) -> Option<Dict<'a>> {
        match *self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// The encoded bytes of a list or dictionary, as they appear in the input.
    pub fn raw(&self) -> Option<&'a [u8]> {
        match *self {
            Value::List(l) => Some(l.raw),
            Value::Dict(d) => Some(d.raw),
            _ => None,
        }
    }
}

/// A validated list; iterating it re-reads the borrowed bytes and cannot fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct List<'a> {
    raw: &'a [u8],
}

impl<'a> List<'a> {
    /// The encoded list, `l` to `e` inclusive.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    pub fn iter(&self) -> ListIter<'a> {
        let mut dec = Decoder::new(self.raw);
        // Validated on construction, so this cannot fail; a failure would only
        // end the iteration early.
        let ok = dec.list_begin().is_ok();
        ListIter { dec, done: !ok }
    }
}

impl<'a> IntoIterator for List<'a> {
    type Item = Value<'a>;
    type IntoIter = ListIter<'a>;
    fn into_iter(self) -> ListIter<'a> {
        self.iter()
    }
}

#[derive(Clone, Debug)]
pub struct ListIter<'a> {
    dec: Decoder<'a>,
    done: bool,
}

impl<'a> Iterator for ListIter<'a> {
    type Item = Value<'a>;
    fn next(&mut self) -> Option<Value<'a>> {
        if self.done || !self.dec.list_next().unwrap_or(false) {
            self.done = true;
            return None;
        }
        let v = self.dec.value().ok();
        self.done = v.is_none();
        v
    }
}

/// A validated dictionary, entries in input order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dict<'a> {
    raw: &'a [u8],
}

impl<'a> Dict<'a> {
    /// The encoded dictionary, `d` to `e` inclusive.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    pub fn iter(&self) -> DictIter<'a> {
        let mut dec = Decoder::new(self.raw);
        let ok = dec.dict_begin().is_ok();
        DictIter { dec, done: !ok }
    }

    /// The value of the last entry named `key` (see the module's duplicate rule).
    pub fn get(&self, key: &[u8]) -> Option<Value<'a>> {
        self.iter().filter(|(k, _)| *k == key).last().map(|(_, v)| v)
    }
}

impl<'a> IntoIterator for Dict<'a> {
    type Item = (&'a [u8], Value<'a>);
    type IntoIter = DictIter<'a>;
    fn into_iter(self) -> DictIter<'a> {
        self.iter()
    }
}

#[derive(Clone, Debug)]
pub struct DictIter<'a> {
    dec: Decoder<'a>,
    done: bool,
}

impl<'a> Iterator for DictIter<'a> {
    type Item = (&'a [u8], Value<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let entry = match self.dec.next_key() {
            Ok(Some(k)) => self.dec.value().ok().map(|v| (k, v)),
            _ => None,
        };
        self.done = entry.is_none();
        entry
    }
}

// ---- Writer -------------------------------------------------------------
// Free functions appending to a caller-owned buffer; they never allocate
// beyond growing `out`.

/// Appends the decimal digits of `n` without a temporary string.
#[inline]
fn decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends `i<n>e`.
#[inline]
pub fn int(out: &mut Vec<u8>, n: i64) {
    out.push(INT_BEGIN);
    if n < 0 {
        out.push(MINUS);
    }
    decimal(out, n.unsigned_abs());
    out.push(END);
}

/// Appends the length prefix `<len>:` of a string whose bytes the caller writes next.
#[inline]
pub fn bytes_header(out: &mut Vec<u8>, len: usize) {
    decimal(out, len as u64);
    out.push(LEN_SEPARATOR);
}

/// Appends `<len>:<b>`.
#[inline]
pub fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    bytes_header(out, b.len());
    out.extend_from_slice(b);
}

#[inline]
pub fn list_begin(out: &mut Vec<u8>) {
    out.push(LIST_BEGIN);
}

#[inline]
pub fn dict_begin(out: &mut Vec<u8>) {
    out.push(DICT_BEGIN);
}

/// Closes the innermost list or dictionary.
#[inline]
pub fn end(out: &mut Vec<u8>) {
    out.push(END);
}

/// Appends a dictionary entry whose value is a string. The caller keeps keys sorted.
#[inline]
pub fn key_bytes(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    bytes(out, key);
    bytes(out, value);
}

/// Appends a dictionary entry whose value is an integer.
#[inline]
pub fn key_int(out: &mut Vec<u8>, key: &[u8], value: i64) {
    bytes(out, key);
    int(out, value);
}

/// Re-encodes a decoded value item by item, entries in input order. Because the
/// decoder accepts only canonical forms, this reproduces the bytes the value was
/// decoded from. Recursion is bounded by [`MAX_DEPTH`], which the value passed.
pub fn value(out: &mut Vec<u8>, v: &Value<'_>) {
    match v {
        Value::Int(i) => int(out, *i),
        Value::Bytes(b) => bytes(out, b),
        Value::List(l) => {
            list_begin(out);
            for item in l.iter() {
                value(out, &item);
            }
            end(out);
        }
        Value::Dict(d) => {
            dict_begin(out);
            for (k, item) in d.iter() {
                bytes(out, k);
                value(out, &item);
            }
            end(out);
        }
    }
}
