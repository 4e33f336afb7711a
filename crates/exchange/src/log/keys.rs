//! The log's signing key: made once, kept beside the log.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use ed25519_dalek::{SigningKey, VerifyingKey};

use super::*;

// ------------------------------------------------------------------ keys

/// Loads the gateway's signing key from `key_dir`, creating it (32 bytes
/// from the OS random source, file mode 0600) on first start; also writes
/// the public key file when it is missing.
pub fn load_or_create_signing_key(key_dir: &Path) -> Result<SigningKey, LogError> {
    fs::create_dir_all(key_dir).map_err(io_err(format!("creating {}", key_dir.display())))?;
    let path = key_dir.join(KEY_FILE);
    let key = match fs::read_to_string(&path) {
        Ok(text) => {
            let mut seed = [0u8; 32];
            hex::decode_to_slice(text.trim(), &mut seed)
                .map_err(|e| LogError::Key(format!("{}: {e}", path.display())))?;
            SigningKey::from_bytes(&seed)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed)
                .map_err(|e| LogError::Key(format!("no random numbers: {e}")))?;
            let tmp = key_dir.join(format!(".{KEY_FILE}.tmp"));
            let mut opts = OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts
                .open(&tmp)
                .map_err(io_err(format!("creating {}", tmp.display())))?;
            f.write_all(format!("{}\n", hex::encode(seed)).as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(io_err(format!("writing {}", tmp.display())))?;
            fs::rename(&tmp, &path).map_err(io_err(format!("creating {}", path.display())))?;
            sync_dir(key_dir)?;
            SigningKey::from_bytes(&seed)
        }
        Err(e) => return Err(io_err(format!("reading {}", path.display()))(e)),
    };
    let pub_path = key_dir.join(PUB_FILE);
    let pub_hex = format!("{}\n", hex::encode(key.verifying_key().to_bytes()));
    if fs::read_to_string(&pub_path).ok().as_deref() != Some(pub_hex.as_str()) {
        fs::write(&pub_path, pub_hex).map_err(io_err(format!("writing {}", pub_path.display())))?;
    }
    Ok(key)
}

/// Reads a public key given as 64 hex digits or as the path of a file that
/// holds them (such as `exchange-signing.pub`).
pub fn read_public_key(hex_or_path: &str) -> Result<VerifyingKey, LogError> {
    let text = if hex_or_path.len() == 64 && hex_or_path.chars().all(|c| c.is_ascii_hexdigit()) {
        hex_or_path.to_owned()
    } else {
        fs::read_to_string(hex_or_path).map_err(io_err(format!("reading {hex_or_path}")))?
    };
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut bytes)
        .map_err(|e| LogError::Key(format!("{hex_or_path}: {e}")))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| LogError::Key(format!("{hex_or_path}: {e}")))
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(format!("syncing {}", dir.display())))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
