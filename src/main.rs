//! The `novabmc` command. Everything lives in the library; this is the
//! edge where errors become a message and a non-zero exit status.

fn main() -> std::process::ExitCode {
    novabmc::cli::main()
}
