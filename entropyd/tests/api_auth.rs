//! Token files: mode and content rules.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;

use entropyd::auth::{ApiToken, TokenError};

fn write_token(dir: &std::path::Path, content: &[u8], mode: u32) -> std::path::PathBuf {
    let path = dir.join(format!("token-{mode:o}"));
    std::fs::write(&path, content).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[test]
fn token_file_with_group_or_other_access_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for mode in [0o644, 0o640, 0o604, 0o660, 0o666, 0o602, 0o620] {
        let path = write_token(dir.path(), b"0123456789abcdef0123\n", mode);
        match ApiToken::from_file(&path) {
            Err(TokenError::InsecureMode { mode: m, .. }) => assert_eq!(m, mode),
            other => panic!("mode {mode:o}: expected InsecureMode, got {other:?}"),
        }
    }
    for mode in [0o600, 0o400] {
        let path = write_token(dir.path(), b"0123456789abcdef0123\n", mode);
        let t = ApiToken::from_file(&path).unwrap();
        assert_eq!(
            t.as_bytes(),
            b"0123456789abcdef0123",
            "trailing newline trimmed"
        );
    }
}

#[test]
fn token_file_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let missing = ApiToken::from_file(&dir.path().join("nope")).unwrap_err();
    assert!(
        missing.to_string().contains("cannot read token file"),
        "{missing}"
    );
    let not_file = ApiToken::from_file(dir.path()).unwrap_err();
    assert!(
        matches!(not_file, TokenError::NotAFile { .. }),
        "{not_file}"
    );
    let short = write_token(dir.path(), b"short\n", 0o600);
    assert!(matches!(
        ApiToken::from_file(&short),
        Err(TokenError::BadContent { .. })
    ));
    let insecure = write_token(dir.path(), b"0123456789abcdef", 0o644);
    let msg = ApiToken::from_file(&insecure).unwrap_err().to_string();
    assert!(msg.contains("0644") && msg.contains("chmod 600"), "{msg}");
}
