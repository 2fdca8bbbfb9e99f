//! Tests of keys (recipients, identities, generation), error codes and interop with the
//! real `age` / `age-keygen` tools.

use std::path::PathBuf;
use std::process::Command;

use age::secrecy::ExposeSecret;
use age::x25519;
use base64::Engine;

use super::super::*;
use super::{identities, keypair, opener, require_tool, run, sample, sealer, PATH};

// ---------------------------------------------------------------- keys

#[test]
fn recipients_parse_sorts_dedups_and_refuses_bad_values_without_echoing_them() {
    let (_, r1) = keypair();
    let (_, r2) = keypair();
    let list = vec![r2.clone(), format!("  {r1}  "), r2.clone()];
    let rs = Recipients::parse(&list).unwrap();
    let mut expected = vec![r1.clone(), r2.clone()];
    expected.sort();
    assert_eq!(rs.to_strings(), expected);

    let (secret_id, _) = keypair();
    let secret = secret_id.to_string().expose_secret().to_string();
    for bad in [secret.clone(), "ssh-ed25519 AAAA".into(), "age1xyz".into(), "".into()] {
        let err = Recipients::parse(&[r1.clone(), bad.clone()]).unwrap_err();
        assert_eq!(err.code(), ERR_ENCRYPTION_RECIPIENT_INVALID);
        assert!(err.to_string().contains("#2"), "{err}");
        if !bad.is_empty() {
            assert!(!err.to_string().contains(&bad), "value echoed: {err}");
            assert!(!err.hint().contains(&bad));
        }
    }
    assert!(Recipients::parse(&[]).unwrap().is_empty());
    let err = BundleSealer::new(EncryptionMode::Age, Recipients::parse(&[]).unwrap()).unwrap_err();
    assert!(matches!(err, EncryptError::NoRecipients));
    assert_eq!(err.code(), ERR_ENCRYPTION_RECIPIENT_INVALID);
}

#[test]
fn recipients_from_file_reads_comments_blank_lines_and_reports_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let (_, r1) = keypair();
    let (_, r2) = keypair();
    let good = dir.path().join("recipients.txt");
    std::fs::write(&good, format!("# team A\n{r2}\n\n   \n# team B\r\n{r1}\r\n{r2}\n")).unwrap();
    let mut expected = vec![r1.clone(), r2.clone()];
    expected.sort();
    assert_eq!(Recipients::from_file(&good).unwrap().to_strings(), expected);

    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, format!("{r1}\n# c\nnot-a-key\n")).unwrap();
    let err = Recipients::from_file(&bad).unwrap_err();
    assert_eq!(err.code(), ERR_ENCRYPTION_RECIPIENT_INVALID);
    assert!(
        err.to_string().contains("line 3") && err.to_string().contains("bad.txt"),
        "{err}"
    );

    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "# nothing\n\n").unwrap();
    let err = Recipients::from_file(&empty).unwrap_err();
    assert!(matches!(err, EncryptError::RecipientsFileEmpty { .. }));
    let err = Recipients::from_file(&dir.path().join("missing.txt")).unwrap_err();
    assert_eq!(err.code(), ERR_ENCRYPTION_RECIPIENT_INVALID);
    assert!(err.to_string().contains("missing.txt"));
}

#[test]
fn identities_from_files_and_invalid_identity_files() {
    let dir = tempfile::tempdir().unwrap();
    let k1 = generate_age_key("2024-05-01T12:00:00Z");
    let k2 = generate_age_key("2024-05-01T12:00:00Z");
    let f1 = dir.path().join("id1.txt");
    let f2 = dir.path().join("id2.txt");
    std::fs::write(&f1, k1.identity_file_text.as_str()).unwrap();
    std::fs::write(&f2, format!("\n{}\n# trailing\n", k2.identity_file_text.as_str())).unwrap();
    let ids = Identities::from_files(&[f1.clone(), f2.clone()]).unwrap();
    assert_eq!(ids.len(), 2);
    let mut expected = vec![k1.recipient.clone(), k2.recipient.clone()];
    expected.sort();
    assert_eq!(ids.recipients(), expected);
    assert!(Identities::from_files(&[]).unwrap().is_empty());

    let secret_line = k1.identity_file_text.lines().nth(2).unwrap().to_string();
    // Corrupt one character of the secret key: the error must not echo the line.
    let mut corrupted = secret_line.clone();
    let last = corrupted.pop().unwrap();
    corrupted.push(if last == 'Q' { 'P' } else { 'Q' });
    let cases: Vec<(&str, String, &str)> = vec![
        ("corrupt.txt", format!("# c\n{corrupted}\n"), "line 2"),
        ("recipient.txt", format!("{}\n", k1.recipient), "line 1"),
        ("empty.txt", "# only a comment\n".to_string(), "no identity"),
        (
            "encrypted.txt",
            "age-encryption.org/v1\n-> scrypt x 18\n".to_string(),
            "encrypted",
        ),
    ];
    for (name, content, needle) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, &content).unwrap();
        let err = Identities::from_files(&[f1.clone(), p]).unwrap_err();
        assert_eq!(err.code(), ERR_IDENTITY_INVALID, "{name}");
        let msg = err.to_string();
        assert!(msg.contains(name) && msg.contains(needle), "{name}: {msg}");
        assert!(!msg.contains(&corrupted[20..]) && !msg.contains(&secret_line[20..]));
        assert!(!err.hint().contains(&corrupted[20..]));
    }
    let err = Identities::from_files(&[dir.path().join("nope.txt")]).unwrap_err();
    assert_eq!(err.code(), ERR_IDENTITY_INVALID);
    assert!(err.to_string().contains("nope.txt"));
}

#[test]
fn generate_age_key_has_age_keygen_layout_and_works() {
    let k = generate_age_key("2024-05-01T12:00:00Z");
    let lines: Vec<&str> = k.identity_file_text.split_inclusive('\n').collect();
    assert_eq!(lines.len(), 3, "{:?}", lines.len());
    assert_eq!(lines[0], "# created: 2024-05-01T12:00:00Z\n");
    assert_eq!(lines[1], format!("# public key: {}\n", k.recipient));
    assert!(lines[2].starts_with("AGE-SECRET-KEY-1") && lines[2].ends_with('\n'));
    assert_eq!(lines[2].trim_end().len(), 74);
    assert!(k.recipient.starts_with("age1") && k.recipient.len() == 62);
    let id: x25519::Identity = lines[2].trim_end().parse().unwrap();
    assert_eq!(id.to_public().to_string(), k.recipient);
    assert!(!format!("{k:?}").contains("AGE-SECRET-KEY"));
    // Line breaks in created_at cannot inject lines.
    let k2 = generate_age_key("x\nAGE-SECRET-KEY-1FAKE");
    assert_eq!(k2.identity_file_text.lines().count(), 3);
}

#[test]
fn debug_output_never_contains_secrets() {
    let (id, r) = keypair();
    let secret = id.to_string().expose_secret().to_string();
    let s = sealer(EncryptionMode::AesGcm, &[&r]);
    let o = opener(&s, &[&id]);
    let ids = identities(&[&id]);
    let SealerKeys::AesGcm { key, .. } = &s.keys else {
        panic!("aes-gcm keys expected")
    };
    let key_b64 = base64::engine::general_purpose::STANDARD.encode(key.as_bytes());
    let key_hex = hex::encode(key.as_bytes());
    for dbg in [
        format!("{s:?}"),
        format!("{o:?}"),
        format!("{ids:?}"),
        format!("{key:?}"),
    ] {
        assert!(!dbg.contains(&secret) && !dbg.contains(&secret.to_lowercase()), "{dbg}");
        assert!(!dbg.contains(&key_b64) && !dbg.contains(&key_hex), "{dbg}");
        assert!(!dbg.contains(&format!("{:?}", key.as_bytes())), "{dbg}");
    }
}

#[test]
fn wrapped_keys_one_per_recipient_sorted_and_age_mode_has_none() {
    let (_, r1) = keypair();
    let (_, r2) = keypair();
    let (_, r3) = keypair();
    let s = sealer(EncryptionMode::AesGcm, &[&r3, &r1, &r2, &r1]);
    let w = s.wrapped_keys();
    let names: Vec<String> = w.iter().map(|k| k.recipient.clone()).collect();
    let mut expected = vec![r1.clone(), r2.clone(), r3.clone()];
    expected.sort();
    assert_eq!(names, expected);
    assert_eq!(s.recipients(), expected);
    let json = serde_json::to_value(&w[0]).unwrap();
    assert!(json.get("wrappedKey").is_some() && json.get("recipient").is_some());
    assert!(sealer(EncryptionMode::Age, &[&r1]).wrapped_keys().is_empty());
    assert_eq!(serde_json::to_string(&EncryptionMode::AesGcm).unwrap(), "\"aes-gcm\"");
    assert_eq!(serde_json::to_string(&EncryptionMode::Age).unwrap(), "\"age\"");
    let m: EncryptionMode = serde_json::from_str("\"aes-gcm\"").unwrap();
    assert_eq!(m, EncryptionMode::AesGcm);
}

#[test]
fn every_error_has_a_stable_code_and_a_hint() {
    let p = PathBuf::from("/keys/x.txt");
    let enc = vec![
        EncryptError::InvalidRecipient {
            position: 1,
            reason: "r",
        },
        EncryptError::InvalidRecipientLine {
            path: p.clone(),
            line: 1,
            reason: "r",
        },
        EncryptError::RecipientsFileUnreadable {
            path: p.clone(),
            source: std::io::Error::other("x"),
        },
        EncryptError::RecipientsFileEmpty { path: p.clone() },
        EncryptError::NoRecipients,
        EncryptError::TooLarge {
            bundle_path: PATH.into(),
            bytes: 1,
        },
        EncryptError::SealFailed {
            bundle_path: PATH.into(),
            reason: "r".into(),
        },
        EncryptError::KeyWrapFailed {
            recipient: "age1x".into(),
            reason: "r".into(),
        },
    ];
    for e in &enc {
        assert!(e.code().starts_with("ERR_") && !e.hint().is_empty(), "{e:?}");
    }
    let dec = vec![
        DecryptError::IdentityFileUnreadable {
            path: p.clone(),
            reason: "r".into(),
        },
        DecryptError::IdentityFileInvalid {
            path: p.clone(),
            line: 1,
            reason: "r",
        },
        DecryptError::IdentityFileEmpty { path: p.clone() },
        DecryptError::IdentityFileEncrypted { path: p.clone() },
        DecryptError::NoIdentities,
        DecryptError::NoMatchingIdentity { recipients: vec![] },
        DecryptError::FileNoMatchingIdentity {
            bundle_path: PATH.into(),
        },
        DecryptError::MissingWrappedKeys,
        DecryptError::UnexpectedWrappedKeys,
        DecryptError::WrappedKeyInvalid {
            recipient: "age1x".into(),
            reason: "r".into(),
        },
        DecryptError::Malformed {
            bundle_path: PATH.into(),
            reason: "r".into(),
        },
        DecryptError::Truncated {
            bundle_path: PATH.into(),
            detail: "d",
        },
        DecryptError::SegmentAuthFailed {
            bundle_path: PATH.into(),
            segment: 0,
        },
        DecryptError::AgeFailed {
            bundle_path: PATH.into(),
            reason: "r".into(),
        },
    ];
    for e in &dec {
        let expected = if e.to_string().contains("identity file") {
            ERR_IDENTITY_INVALID
        } else {
            ERR_DECRYPT_FAILED
        };
        assert_eq!(e.code(), expected, "{e}");
        assert!(!e.hint().is_empty());
    }
}

// ---------------------------------------------------------------- interop with the age CLI

#[test]
fn interop_age_cli_decrypts_age_mode_file_with_generated_identity() {
    let age = require_tool("age");
    let dir = tempfile::tempdir().unwrap();
    let (_, r_other) = keypair();
    let k = generate_age_key("2024-05-01T12:00:00Z");
    let id_file = dir.path().join("identity.txt");
    std::fs::write(&id_file, k.identity_file_text.as_str()).unwrap();
    let s = sealer(EncryptionMode::Age, &[&k.recipient, &r_other]);
    let pt = sample(200 * 1024 + 3);
    let ct_file = dir.path().join("file.age");
    std::fs::write(&ct_file, s.seal(PATH, &pt).unwrap()).unwrap();
    let out = run(Command::new(&age).arg("-d").arg("-i").arg(&id_file).arg(&ct_file));
    assert_eq!(out.stdout, pt, "age -d output differs from the plaintext");
}

#[test]
fn interop_age_cli_unwraps_aes_gcm_data_key() {
    let age = require_tool("age");
    let dir = tempfile::tempdir().unwrap();
    let k = generate_age_key("2024-05-01T12:00:00Z");
    let id_file = dir.path().join("identity.txt");
    std::fs::write(&id_file, k.identity_file_text.as_str()).unwrap();
    let s = sealer(EncryptionMode::AesGcm, &[&k.recipient]);
    let wrapped = base64::engine::general_purpose::STANDARD
        .decode(&s.wrapped_keys()[0].wrapped_key)
        .unwrap();
    let wrapped_file = dir.path().join("key.age");
    std::fs::write(&wrapped_file, wrapped).unwrap();
    let out = run(Command::new(&age).arg("-d").arg("-i").arg(&id_file).arg(&wrapped_file));
    let SealerKeys::AesGcm { key, .. } = &s.keys else {
        panic!("aes-gcm keys expected")
    };
    assert_eq!(out.stdout.as_slice(), key.as_bytes());
}

#[test]
fn interop_age_keygen_pair_seals_and_opens_in_both_modes() {
    let keygen = require_tool("age-keygen");
    let age = require_tool("age");
    let dir = tempfile::tempdir().unwrap();
    let id_file = dir.path().join("keygen-identity.txt");
    run(Command::new(&keygen).arg("-o").arg(&id_file));
    let out = run(Command::new(&keygen).arg("-y").arg(&id_file));
    let recipient = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let rec_file = dir.path().join("recipients.txt");
    std::fs::write(&rec_file, format!("# from age-keygen -y\n{recipient}\n")).unwrap();

    let ids = Identities::from_files(std::slice::from_ref(&id_file)).unwrap();
    assert_eq!(ids.recipients(), vec![recipient.clone()]);
    let pt = sample(70_000);
    for mode in [EncryptionMode::Age, EncryptionMode::AesGcm] {
        let s = BundleSealer::new(mode, Recipients::from_file(&rec_file).unwrap()).unwrap();
        let ct = s.seal(PATH, &pt).unwrap();
        let o = BundleOpener::new(mode, &s.wrapped_keys(), &ids).unwrap();
        assert_eq!(o.open(PATH, &ct).unwrap(), pt, "{mode}");
    }
    // And a file encrypted by the age CLI itself opens in age mode.
    let pt_file = dir.path().join("plain.bin");
    let ct_file = dir.path().join("plain.bin.age");
    std::fs::write(&pt_file, &pt).unwrap();
    run(Command::new(&age)
        .arg("-r")
        .arg(&recipient)
        .arg("-o")
        .arg(&ct_file)
        .arg(&pt_file));
    let o = BundleOpener::new(EncryptionMode::Age, &[], &ids).unwrap();
    assert_eq!(o.open(PATH, &std::fs::read(&ct_file).unwrap()).unwrap(), pt);
}
