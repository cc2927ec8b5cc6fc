//! The `decompute` binary: parse flags, call the library, print errors as one line.

fn main() {
    std::process::exit(decompute::cli::main());
}
