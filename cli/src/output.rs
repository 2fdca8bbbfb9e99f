//! Standard output. A reader that goes away early (`stellamirror status --json | head -c 10`)
//! is not an error: the command ends quietly with exit status 0, as ripgrep does, instead of
//! panicking in `println!`. Any other write failure is reported once, on stderr, with exit 1.
use std::io::Write;

/// Writes one line to stdout; see the module comment for what happens when it cannot.
pub fn line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let written = out.write_fmt(args).and_then(|_| out.write_all(b"\n"));
    if let Err(e) = written {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error[ERR_IO]: cannot write to standard output: {e}");
        eprintln!("  hint: check where the output is redirected (a full disk?)");
        std::process::exit(crate::failure::EXIT_FAILURE);
    }
}

/// `println!` that ends the process quietly on a broken pipe (see `output::line`).
macro_rules! out {
    () => {
        $crate::output::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}
