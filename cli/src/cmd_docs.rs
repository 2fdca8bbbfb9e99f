//! Shell completions and man pages, generated from the command-line definition itself (so
//! they never drift from `--help`). `make install` installs both.
use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::failure::Failure;

#[derive(Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: Shell,
}

#[derive(Args)]
pub struct ManArgs {
    /// Folder the pages are written to (`stellamirror.1`, `stellamirror-import.1`, …).
    #[arg(long, env = "STELLAMIRROR_OUT")]
    out: PathBuf,
}

/// Prints the completion script for one shell on stdout.
pub fn completions(a: CompletionsArgs) -> Result<i32, Failure> {
    let mut cmd = crate::Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "stellamirror", &mut std::io::stdout());
    Ok(0)
}

/// Writes one roff page per command and subcommand into `--out`.
pub fn man(a: ManArgs) -> Result<i32, Failure> {
    let io = |p: &Path, e: std::io::Error| {
        Failure::new(
            "ERR_IO",
            format!("{}: {e}", p.display()),
            "check that the folder can be created and written",
        )
    };
    std::fs::create_dir_all(&a.out).map_err(|e| io(&a.out, e))?;
    clap_mangen::generate_to(crate::Cli::command(), &a.out).map_err(|e| io(&a.out, e))?;
    out!("man pages written to {}", a.out.display());
    Ok(0)
}
