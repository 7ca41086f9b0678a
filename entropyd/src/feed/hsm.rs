//! The HSM source: `C_GenerateRandom` of a PKCS#11 token, through the
//! `cryptoki` crate.
//!
//! Contract: [`Pkcs11Source::open`] loads the module, initializes it, checks
//! that the slot exists and holds a token, opens a read-only session and,
//! with a PIN, logs in as the user; each step's failure is a clear error
//! naming the module and the slot (no module, not a PKCS#11 module, no such
//! slot, wrong PIN). Reads are `C_GenerateRandom` calls of at most
//! [`MAX_GENERATE`] bytes; a failing call is an error naming module and slot,
//! and the feeder stops: it never substitutes other randomness, and never
//! calls `C_SeedRandom`. The PIN is read from a file that group and others
//! cannot access, and held only in wiped buffers.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use super::source::{EntropySource, SourceError};

/// Largest single `C_GenerateRandom` request.
pub const MAX_GENERATE: usize = 64 * 1024;

/// Longest PIN file read.
const MAX_PIN_FILE: u64 = 256;

/// A PKCS#11 token's random number generator.
pub struct Pkcs11Source {
    // Field order: the session closes before the module is finalized.
    session: Session,
    _module: Pkcs11,
    name: String,
}

impl std::fmt::Debug for Pkcs11Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pkcs11Source {{ {} }}", self.name)
    }
}

/// A PKCS#11 error in words a user can act on.
fn explain(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(RvError::PinIncorrect, _) => "wrong PIN (CKR_PIN_INCORRECT)".to_owned(),
        CkError::Pkcs11(RvError::PinLocked, _) => "the PIN is locked (CKR_PIN_LOCKED)".to_owned(),
        CkError::Pkcs11(RvError::SlotIdInvalid, _) => {
            "no such slot (CKR_SLOT_ID_INVALID)".to_owned()
        }
        CkError::Pkcs11(RvError::TokenNotPresent, _) => {
            "no token in the slot (CKR_TOKEN_NOT_PRESENT)".to_owned()
        }
        CkError::Pkcs11(RvError::RandomNoRng, _) => {
            "the token has no random number generator (CKR_RANDOM_NO_RNG)".to_owned()
        }
        other => other.to_string(),
    }
}

impl Pkcs11Source {
    /// Opens slot `slot` of the PKCS#11 module at `module`, logging in with
    /// the PIN in `pin_file` when one is given.
    ///
    /// # Errors
    /// [`SourceError`] naming the module and slot: the module cannot be
    /// loaded or initialized, the slot does not exist or has no token, the
    /// PIN file is unreadable or readable by others, the PIN is wrong.
    pub fn open(module: &Path, slot: u64, pin_file: Option<&Path>) -> Result<Self, SourceError> {
        let name = format!("PKCS#11 module {} slot {slot}", module.display());
        let fail = |what: &str, detail: String| SourceError(format!("{name}: {what}: {detail}"));
        // Read the PIN first: a bad PIN file needs no module.
        let pin = pin_file.map(read_pin).transpose()?;
        let pkcs11 =
            Pkcs11::new(module).map_err(|e| fail("cannot load the module", explain(&e)))?;
        pkcs11
            .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .map_err(|e| fail("C_Initialize failed", explain(&e)))?;
        let slots = pkcs11
            .get_slots_with_token()
            .map_err(|e| fail("C_GetSlotList failed", explain(&e)))?;
        let Some(slot_id) = slots.iter().copied().find(|s| s.id() == slot) else {
            let ids: Vec<String> = slots.iter().map(|s| s.id().to_string()).collect();
            return Err(fail(
                "no such slot with a token",
                format!("the slots with a token are [{}]", ids.join(", ")),
            ));
        };
        let session = pkcs11
            .open_ro_session(slot_id)
            .map_err(|e| fail("C_OpenSession failed", explain(&e)))?;
        if let Some(pin) = pin {
            session
                .login(UserType::User, Some(&pin))
                .map_err(|e| fail("C_Login failed", explain(&e)))?;
        }
        let mut source = Pkcs11Source {
            session,
            _module: pkcs11,
            name,
        };
        // One small request now, so a token that cannot generate fails at
        // start, not at the first host. The bytes are wiped, never used.
        let mut probe = Zeroizing::new([0u8; 32]);
        source.read(probe.as_mut_slice())?;
        Ok(source)
    }

    /// `PKCS#11 module PATH slot N`.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl EntropySource for Pkcs11Source {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, SourceError> {
        for chunk in buf.chunks_mut(MAX_GENERATE) {
            self.session.generate_random_slice(chunk).map_err(|e| {
                chunk.fill(0);
                SourceError(format!(
                    "{}: C_GenerateRandom failed: {}",
                    self.name,
                    explain(&e)
                ))
            })?;
        }
        Ok(buf.len())
    }
}

/// Reads the PIN (trailing whitespace removed) from a file that group
/// and others cannot access.
fn read_pin(path: &Path) -> Result<AuthPin, SourceError> {
    let fail = |detail: String| SourceError(format!("PIN file {}: {detail}", path.display()));
    let file = File::open(path).map_err(|e| fail(e.to_string()))?;
    let meta = file.metadata().map_err(|e| fail(e.to_string()))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".to_owned()));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(fail(format!(
            "mode {mode:04o}: it must not be accessible by group or others (chmod 600 {})",
            path.display()
        )));
    }
    if meta.size() > MAX_PIN_FILE {
        return Err(fail(format!("larger than {MAX_PIN_FILE} bytes")));
    }
    let mut raw = Zeroizing::new(Vec::with_capacity(
        usize::try_from(MAX_PIN_FILE).unwrap_or(256) + 1,
    ));
    file.take(MAX_PIN_FILE.saturating_add(1))
        .read_to_end(&mut raw)
        .map_err(|e| fail(e.to_string()))?;
    let pin = std::str::from_utf8(raw.trim_ascii_end())
        .map_err(|_| fail("the PIN is not UTF-8".to_owned()))?;
    if pin.is_empty() {
        return Err(fail("the file is empty".to_owned()));
    }
    // Exactly sized, so turning it into the boxed secret does not
    // reallocate and leave an unwiped copy behind.
    let mut owned = String::with_capacity(pin.len());
    owned.push_str(pin);
    Ok(AuthPin::from(owned))
}
