//! entropyd: the reference entropy daemon (see the library crate for the
//! command modules).

fn main() -> std::process::ExitCode {
    entropyd::cli::main()
}
