//! The `mailbox` binary: parse the command line and hand over to the CLI module.

fn main() {
    std::process::exit(mailbox::cli::main());
}
