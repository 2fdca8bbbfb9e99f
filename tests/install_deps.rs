//! The installer's detection logic (`tests/scripts/install-deps.sh`), tested against
//! temporary file-system trees rather than against what this machine happens to have: the
//! fresh image ships `libclang-cpp.so.14` (the C++ interface), which is not the libclang
//! that RocksDB's bindings (clang-sys) link, so it must not count as libclang being present.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn script() -> PathBuf {
    stellamirror_tests::manifest_dir().join("scripts/install-deps.sh")
}

/// A tree holding exactly these files (relative paths), empty.
fn tree(files: &[&str]) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    for f in files {
        let p = root.path().join(f);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, b"").unwrap();
    }
    root
}

/// What `missing_packages` reports when libclang is looked for under `root` only.
fn missing(root: &Path) -> Vec<String> {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("source '{}' && missing_packages", script().display()))
        .env("INSTALL_DEPS_ROOT", root)
        .env_remove("LIBCLANG_PATH")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn libclang_cpp_alone_is_not_libclang() {
    let root = tree(&[
        "usr/lib/llvm-14/lib/libclang-cpp.so.14",
        "usr/lib/x86_64-linux-gnu/libclang-cpp.so.14",
        "usr/lib/x86_64-linux-gnu/libclang-cpp.so.14.0",
    ]);
    assert!(missing(root.path()).contains(&"libclang-dev".to_string()));
}

#[test]
fn suffix_versioned_libclang_is_not_linkable() {
    // libclang1-14 alone ships `libclang.so.1`; `ld` cannot link to it, so the -dev package
    // is still needed.
    let root = tree(&[
        "usr/lib/llvm-14/lib/libclang.so.1",
        "usr/lib/llvm-14/lib/libclang-14.so.1",
    ]);
    assert!(missing(root.path()).contains(&"libclang-dev".to_string()));
}

#[test]
fn what_clang_sys_links_counts_as_present() {
    for file in [
        "usr/lib/llvm-14/lib/libclang.so",
        "usr/lib/x86_64-linux-gnu/libclang-14.so",
        "usr/lib/llvm-16/lib/libclang-16.so",
    ] {
        let root = tree(&[file, "usr/lib/llvm-14/lib/libclang-cpp.so.14"]);
        assert!(!missing(root.path()).contains(&"libclang-dev".to_string()), "{file}");
    }
}

#[test]
fn an_empty_tree_needs_libclang_dev() {
    let root = tree(&[]);
    assert!(missing(root.path()).contains(&"libclang-dev".to_string()));
}

/// The project's own check of a fresh image (`../shared/tools/check-fresh-install.sh`): the
/// installer run in a mount namespace where libclang is hidden and apt-get recorded. Needs
/// root (unshare, overlayfs) and the shared tools; skipped, saying so, without them.
#[test]
fn fresh_image_installs_libclang_dev() {
    let check = stellamirror_tests::manifest_dir().join("../../shared/tools/check-fresh-install.sh");
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    if !check.is_file() || !root {
        eprintln!("skipped: needs root and {}", check.display());
        return;
    }
    let out = Command::new("bash")
        .arg(&check)
        .arg(script())
        .current_dir(stellamirror_tests::manifest_dir().join(".."))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("asks for libclang-dev"), "{text}");
}
