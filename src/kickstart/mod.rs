//! Install-time seeding: the `entropy --sources=N --data=BASE64` command of a
//! kickstart file.
//!
//! Contract:
//! - [`KickstartParser`] is a `no_std`, allocation-free push parser: feed it
//!   the file in pieces of any size ([`KickstartParser::push`]), then call
//!   [`KickstartParser::finish`]. Decoded bytes go to a sink closure in
//!   pieces of at most 768 bytes as they are decoded, so a 10 MiB seed never
//!   needs its ~13.3 MiB base64 text in memory, nor the whole seed in the
//!   parser.
//! - Base64 (standard alphabet, `=` padding required, no line breaks inside
//!   the value) is decoded with `base64ct`, constant time in the data; only
//!   on an error does the parser look for the offending character.
//! - Every rejection is [`Error::Kickstart`] with the 1-based line and a
//!   [`KickstartReason`]: unknown option, missing `--data`, an option given
//!   twice, `--sources` not a number or out of `0..=15`, bad base64 (with the
//!   character offset inside the `--data` value), decoded size out of
//!   [`Limits`] (with the exact size), a second `entropy` line, or no
//!   `entropy` line at all (reported on the file's last line). After an error
//!   the parser is poisoned: every later call returns the same error, and the
//!   caller must discard whatever the sink received.
//! - Bytes are handed to the sink only while the total stays within
//!   [`Limits::max_size`]; past it the parser keeps decoding (to report the
//!   exact size and any bad base64) without handing anything out.
//! - The parser's buffers hold secret text; they are wiped after each chunk
//!   and when the parser is dropped.
//!
//! # Syntax accepted
//! - Lines end with `\n` (a `\r` before it is ignored); words are separated
//!   by spaces or tabs.
//! - A line whose first word starts with `#` is a comment. A line whose first
//!   word starts with `%` opens a section (`%pre`, `%post`, `%firstboot`,
//!   `%packages`, ...) whose lines are script text and are ignored up to a
//!   line whose first word is `%end` (or to the end of the file, as ESXi
//!   allows).
//! - The command `entropy` takes `--data=BASE64` (required) and
//!   `--sources=N` (optional: missing means `0`, the default sources), each
//!   at most once, in any order, written `--name=value` (no quotes, no
//!   space around `=`). A word starting with `#` ends the options (a trailing
//!   comment).
//! - Every other command (`vmaccepteula`, `install`, `network`, `rootpw`,
//!   ...) is ignored, whatever its arguments.

#[cfg(feature = "std")]
mod read;

#[cfg(feature = "std")]
pub use read::{Kickstart, ReadError, read_file, read_kickstart, read_kickstart_with_limits};

use core::fmt;

use base64ct::{Base64, Encoding};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{Error, KickstartReason};
use crate::source::SourceMask;

/// Decoded-size bounds for the `--data` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Smallest accepted decoded size in bytes.
    pub min_size: u64,
    /// Largest accepted decoded size in bytes.
    pub max_size: u64,
}

impl Limits {
    /// The product's bounds: 512 KiB ..= 10 MiB decoded.
    pub const INSTALL: Limits = Limits {
        min_size: 512 * 1024,
        max_size: 10 * 1024 * 1024,
    };

    /// Whether `size` is within the bounds.
    #[must_use]
    pub const fn accepts(&self, size: u64) -> bool {
        self.min_size <= size && size <= self.max_size
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::INSTALL
    }
}

/// What a valid kickstart file asked for (the data went to the sink).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KickstartSummary {
    /// The 1-based line of the `entropy` command.
    pub line: u32,
    /// The `--sources` value (`0` when the option was absent).
    pub sources: SourceMask,
    /// The decoded size in bytes (within the [`Limits`]).
    pub size: u64,
}

/// Base64 characters decoded at once (a multiple of 4).
const CHUNK_CHARS: usize = 1024;
/// Bytes one full chunk decodes to.
const CHUNK_BYTES: usize = CHUNK_CHARS / 4 * 3;
/// Longest first word or option name kept; longer ones match nothing.
const WORD_MAX: usize = 16;

/// Where the parser is within the current line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Before the first word of a line.
    LineStart,
    /// Reading the first word into `word`.
    Command,
    /// Ignoring the rest of the line.
    SkipLine,
    /// On the `entropy` line, between options.
    OptionGap,
    /// Reading an option name (`--...`) into `word`, up to `=`.
    OptionName,
    /// Reading the digits of `--sources=`.
    SourcesValue,
    /// Reading the base64 of `--data=`.
    DataValue,
}

/// A streaming, allocation-free kickstart parser (see the module doc).
pub struct KickstartParser {
    limits: Limits,
    /// 1-based number of the line being read.
    line: u32,
    /// Whether any byte of the current line has been read.
    line_has_bytes: bool,
    state: State,
    /// Inside a `%section`: lines are ignored up to `%end`.
    in_section: bool,
    /// The first error; the parser is poisoned once set.
    failed: Option<Error>,
    /// The line of the `entropy` command, once seen.
    entropy_line: Option<u32>,
    /// `--sources` of the entropy line, once seen.
    sources: Option<SourceMask>,
    /// Whether `--data` was seen on the entropy line.
    seen_data: bool,
    /// Digits of `--sources=` so far (saturating) and whether any was seen.
    sources_value: u64,
    sources_digits: bool,
    /// The first word of the line or the option name being read.
    word: [u8; WORD_MAX],
    word_len: usize,
    /// Base64 characters of `--data` not yet decoded.
    chars: [u8; CHUNK_CHARS],
    chars_len: usize,
    /// Characters of the current `--data` value seen so far.
    data_chars: u64,
    /// Bytes decoded from the current `--data` value so far.
    size: u64,
    /// Decode scratch.
    out: [u8; CHUNK_BYTES],
}

impl fmt::Debug for KickstartParser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KickstartParser")
            .field("line", &self.line)
            .finish_non_exhaustive()
    }
}

impl Zeroize for KickstartParser {
    fn zeroize(&mut self) {
        self.word.zeroize();
        self.chars.zeroize();
        self.out.zeroize();
        self.word_len = 0;
        self.chars_len = 0;
    }
}

impl Drop for KickstartParser {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl ZeroizeOnDrop for KickstartParser {}

impl Default for KickstartParser {
    fn default() -> Self {
        KickstartParser::new()
    }
}

/// Whether `b` separates words.
const fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r')
}

impl KickstartParser {
    /// A parser with the product's size bounds ([`Limits::INSTALL`]).
    #[must_use]
    pub const fn new() -> Self {
        KickstartParser::with_limits(Limits::INSTALL)
    }

    /// A parser with other size bounds (tests and fuzzing use small ones;
    /// the error text of a size rejection still names the product's bounds).
    #[must_use]
    pub const fn with_limits(limits: Limits) -> Self {
        KickstartParser {
            limits,
            line: 1,
            line_has_bytes: false,
            state: State::LineStart,
            in_section: false,
            failed: None,
            entropy_line: None,
            sources: None,
            seen_data: false,
            sources_value: 0,
            sources_digits: false,
            word: [0; WORD_MAX],
            word_len: 0,
            chars: [0; CHUNK_CHARS],
            chars_len: 0,
            data_chars: 0,
            size: 0,
            out: [0; CHUNK_BYTES],
        }
    }

    /// The 1-based line being read.
    #[must_use]
    pub const fn line(&self) -> u32 {
        self.line
    }

    /// Feed the next piece of the file; decoded data goes to `sink`.
    ///
    /// # Errors
    /// [`Error::Kickstart`] as soon as the input is known to be invalid (see
    /// the module doc); the same error again on every later call.
    pub fn push(&mut self, input: &[u8], sink: &mut impl FnMut(&[u8])) -> Result<(), Error> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let result = self.push_inner(input, sink);
        self.poison_on(result)
    }

    /// End of input: finish the last line and report what was found.
    ///
    /// # Errors
    /// [`Error::Kickstart`] when the file is invalid, including
    /// [`KickstartReason::NoEntropyLine`] (reported on the last line).
    pub fn finish(mut self, sink: &mut impl FnMut(&[u8])) -> Result<KickstartSummary, Error> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if self.line_has_bytes {
            let result = self.end_line(sink);
            self.poison_on(result)?;
        } else {
            // No bytes after the last `\n`: the last line is the one before.
            self.line = self.line.saturating_sub(1).max(1);
        }
        let (Some(line), true) = (self.entropy_line, self.seen_data) else {
            return Err(Error::Kickstart {
                line: self.line,
                reason: KickstartReason::NoEntropyLine,
            });
        };
        Ok(KickstartSummary {
            line,
            sources: self.sources.unwrap_or(SourceMask::DEFAULT),
            size: self.size,
        })
    }

    fn poison_on(&mut self, result: Result<(), Error>) -> Result<(), Error> {
        if let Err(e) = result {
            self.failed = Some(e);
            self.zeroize();
        }
        result
    }

    fn fail(&self, reason: KickstartReason) -> Error {
        Error::Kickstart {
            line: self.line,
            reason,
        }
    }

    fn push_inner(&mut self, mut input: &[u8], sink: &mut impl FnMut(&[u8])) -> Result<(), Error> {
        // Each pass consumes at least one byte, so this ends.
        while let Some((&b, rest)) = input.split_first() {
            if self.state == State::DataValue && !is_blank(b) && b != b'\n' {
                // Fast path: take the whole run of base64 characters.
                let run = input
                    .iter()
                    .position(|&c| is_blank(c) || c == b'\n')
                    .unwrap_or(input.len());
                let (data, after) = input.split_at_checked(run).unwrap_or((input, &[]));
                self.line_has_bytes = true;
                self.data_bytes(data, sink)?;
                input = after;
                continue;
            }
            input = rest;
            if b == b'\n' {
                self.end_line(sink)?;
                self.line = self.line.saturating_add(1);
                self.line_has_bytes = false;
                self.state = State::LineStart;
                continue;
            }
            self.line_has_bytes = true;
            self.byte(b, sink)?;
        }
        Ok(())
    }

    /// One byte that is not `\n`, outside the data fast path.
    fn byte(&mut self, b: u8, sink: &mut impl FnMut(&[u8])) -> Result<(), Error> {
        match self.state {
            State::LineStart => {
                if !is_blank(b) {
                    self.word_len = 0;
                    self.push_word(b);
                    self.state = State::Command;
                }
            }
            State::Command => {
                if is_blank(b) {
                    self.end_command()?;
                } else {
                    self.push_word(b);
                }
            }
            State::SkipLine => {}
            State::OptionGap => {
                if b == b'#' {
                    self.state = State::SkipLine;
                } else if !is_blank(b) {
                    self.word_len = 0;
                    self.push_word(b);
                    self.state = State::OptionName;
                }
            }
            State::OptionName => {
                if b == b'=' {
                    self.start_value()?;
                } else if is_blank(b) {
                    // An option without `=value`, or a bare word.
                    return Err(self.fail(KickstartReason::UnknownOption));
                } else {
                    self.push_word(b);
                }
            }
            State::SourcesValue => {
                if is_blank(b) {
                    self.end_sources()?;
                    self.state = State::OptionGap;
                } else {
                    let digit = b
                        .checked_sub(b'0')
                        .filter(|d| *d <= 9)
                        .ok_or(self.fail(KickstartReason::SourcesNotANumber))?;
                    self.sources_value = self
                        .sources_value
                        .saturating_mul(10)
                        .saturating_add(u64::from(digit));
                    self.sources_digits = true;
                }
            }
            State::DataValue => {
                // Only blanks reach here (the fast path takes the rest).
                self.end_data(sink)?;
                self.state = State::OptionGap;
            }
        }
        Ok(())
    }

    /// Append to `word`; a word longer than [`WORD_MAX`] is marked by
    /// `word_len == WORD_MAX + 1` and matches nothing.
    fn push_word(&mut self, b: u8) {
        if let Some(slot) = self.word.get_mut(self.word_len) {
            *slot = b;
            self.word_len = self.word_len.saturating_add(1);
        } else {
            self.word_len = WORD_MAX.saturating_add(1);
        }
    }

    fn word(&self) -> &[u8] {
        self.word.get(..self.word_len).unwrap_or(&[])
    }

    /// The first word of a line is complete.
    fn end_command(&mut self) -> Result<(), Error> {
        let word = self.word();
        if self.in_section {
            if word == b"%end" {
                self.in_section = false;
            }
            self.state = State::SkipLine;
            return Ok(());
        }
        if word.first() == Some(&b'%') {
            self.in_section = word != b"%end";
            self.state = State::SkipLine;
            return Ok(());
        }
        if word != b"entropy" {
            // A comment (`#...`) or another command: ignored.
            self.state = State::SkipLine;
            return Ok(());
        }
        if self.entropy_line.is_some() {
            return Err(self.fail(KickstartReason::SecondEntropyLine));
        }
        self.entropy_line = Some(self.line);
        self.state = State::OptionGap;
        Ok(())
    }

    /// `=` after an option name.
    fn start_value(&mut self) -> Result<(), Error> {
        match self.word() {
            b"--sources" => {
                if self.sources.is_some() || self.sources_digits {
                    return Err(self.fail(KickstartReason::DuplicateOption));
                }
                self.sources_value = 0;
                self.sources_digits = false;
                self.state = State::SourcesValue;
            }
            b"--data" => {
                if self.seen_data {
                    return Err(self.fail(KickstartReason::DuplicateOption));
                }
                self.seen_data = true;
                self.chars_len = 0;
                self.data_chars = 0;
                self.size = 0;
                self.state = State::DataValue;
            }
            _ => return Err(self.fail(KickstartReason::UnknownOption)),
        }
        Ok(())
    }

    fn end_sources(&mut self) -> Result<(), Error> {
        if !self.sources_digits {
            return Err(self.fail(KickstartReason::SourcesNotANumber));
        }
        let mask = SourceMask::new(self.sources_value).map_err(|_| {
            self.fail(KickstartReason::SourcesOutOfRange {
                value: self.sources_value,
            })
        })?;
        self.sources = Some(mask);
        Ok(())
    }

    /// End of the current line (`\n` or end of input).
    fn end_line(&mut self, sink: &mut impl FnMut(&[u8])) -> Result<(), Error> {
        match self.state {
            State::LineStart | State::SkipLine => return Ok(()),
            State::Command => {
                self.end_command()?;
                if self.state != State::OptionGap {
                    return Ok(());
                }
            }
            State::OptionGap => {}
            State::OptionName => return Err(self.fail(KickstartReason::UnknownOption)),
            State::SourcesValue => self.end_sources()?,
            State::DataValue => self.end_data(sink)?,
        }
        // Only the `entropy` line gets here.
        if !self.seen_data {
            return Err(self.fail(KickstartReason::MissingData));
        }
        Ok(())
    }

    /// A run of `--data` characters (no blanks, no `\n`).
    fn data_bytes(&mut self, mut data: &[u8], sink: &mut impl FnMut(&[u8])) -> Result<(), Error> {
        while !data.is_empty() {
            if self.chars_len == CHUNK_CHARS {
                // More follows, so this chunk is not the last one.
                self.decode_chunk(false, sink)?;
            }
            let room = CHUNK_CHARS.saturating_sub(self.chars_len);
            let take = room.min(data.len());
            let (now, later) = data.split_at_checked(take).unwrap_or((data, &[]));
            let end = self.chars_len.saturating_add(take);
            if let Some(dst) = self.chars.get_mut(self.chars_len..end) {
                for (d, c) in dst.iter_mut().zip(now) {
                    *d = *c;
                }
            }
            self.chars_len = end;
            self.data_chars = self.data_chars.saturating_add(take as u64);
            data = later;
        }
        Ok(())
    }

    /// The `--data` value is complete.
    fn end_data(&mut self, sink: &mut impl FnMut(&[u8])) -> Result<(), Error> {
        self.decode_chunk(true, sink)?;
        if !self.limits.accepts(self.size) {
            return Err(self.fail(KickstartReason::SizeOutOfRange { size: self.size }));
        }
        Ok(())
    }

    /// Decode the buffered characters; `last` when no more follow.
    fn decode_chunk(&mut self, last: bool, sink: &mut impl FnMut(&[u8])) -> Result<(), Error> {
        let n = self.chars_len;
        let start = self.data_chars.saturating_sub(n as u64);
        let chars = self.chars.get(..n).unwrap_or(&[]);
        let whole = n - n % 4;
        let decoded = if whole != n {
            // Only the last chunk can have a partial group.
            Err(())
        } else if n == 0 {
            Ok(&[][..])
        } else {
            match Base64::decode(chars, &mut self.out) {
                // A chunk that is not the last may not end in padding.
                Ok(d) if last || d.len() == n / 4 * 3 => Ok(d),
                _ => Err(()),
            }
        };
        let result = match decoded {
            Ok(d) => {
                let len = d.len() as u64;
                let total = self.size.saturating_add(len);
                if total <= self.limits.max_size {
                    sink(d);
                }
                self.size = total;
                Ok(())
            }
            Err(()) => {
                let at = bad_char_offset(chars, last);
                Err(self.fail(KickstartReason::BadBase64 {
                    offset: start.saturating_add(at as u64),
                }))
            }
        };
        self.chars.zeroize();
        self.out.zeroize();
        self.chars_len = 0;
        result
    }
}

/// Where in `chars` (a chunk that failed to decode) the problem is: the
/// first character outside the alphabet or a misplaced `=`, else the start
/// of the last (partial or non-canonical) group. Runs only on the error path.
fn bad_char_offset(chars: &[u8], last: bool) -> usize {
    let n = chars.len();
    let last_group = if n % 4 == 0 {
        n.saturating_sub(4)
    } else {
        n - n % 4
    };
    for (i, &c) in chars.iter().enumerate() {
        let ok = if c == b'=' {
            // `=` only at the end of the last group of the last chunk:
            // `xx==` or `xxx=`.
            let pos = i % 4;
            let next_is_pad = chars.get(i.saturating_add(1)) == Some(&b'=');
            last && n % 4 == 0 && i >= last_group && (pos == 3 || (pos == 2 && next_is_pad))
        } else {
            // Constant time in `c`: base64ct decides.
            let probe = [c, b'A', b'A', b'A'];
            Base64::decode(probe, &mut [0u8; 3]).is_ok()
        };
        if !ok {
            return i;
        }
    }
    last_group
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn parse(text: &[u8], limits: Limits) -> Result<(KickstartSummary, Vec<u8>), Error> {
        let mut p = KickstartParser::with_limits(limits);
        let mut got = Vec::new();
        p.push(text, &mut |d| got.extend_from_slice(d))?;
        let s = p.finish(&mut |d| got.extend_from_slice(d))?;
        Ok((s, got))
    }

    const SMALL: Limits = Limits {
        min_size: 1,
        max_size: 100,
    };

    #[test]
    fn bad_char_offsets() {
        assert_eq!(bad_char_offset(b"AA*A", true), 2);
        assert_eq!(bad_char_offset(b"AA=A", true), 2);
        assert_eq!(bad_char_offset(b"AAAAAA==", false), 6);
        assert_eq!(bad_char_offset(b"AAAAAA==", true), 4);
        assert_eq!(bad_char_offset(b"AAAAA", true), 4);
        assert_eq!(bad_char_offset(b"AB==", true), 0);
    }

    #[test]
    fn padding_inside_the_value_is_rejected_across_chunks() {
        // A full chunk ending in padding, then more data.
        let mut text = Vec::from(&b"entropy --data="[..]);
        text.extend(core::iter::repeat_n(b'A', CHUNK_CHARS - 4));
        text.extend_from_slice(b"AA==AAAA\n");
        let e = parse(
            &text,
            Limits {
                min_size: 1,
                max_size: 10_000,
            },
        )
        .unwrap_err();
        assert_eq!(
            e,
            Error::Kickstart {
                line: 1,
                reason: KickstartReason::BadBase64 {
                    offset: (CHUNK_CHARS - 2) as u64
                }
            }
        );
    }

    #[test]
    fn sections_are_skipped() {
        let text = b"%post\nentropy --data=AA==\n%end\nentropy --data=AQ==\n";
        let (s, d) = parse(text, SMALL).unwrap();
        assert_eq!((s.line, d), (4, std::vec![1]));
        let text = b"entropy --data=AQ==\n%firstboot\nentropy --bad\n";
        assert_eq!(parse(text, SMALL).unwrap().0.line, 1);
    }
}
