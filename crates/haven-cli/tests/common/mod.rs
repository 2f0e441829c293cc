//! What the binary's tests share.

use std::process::{Child, Command, Stdio};

/// Starts `haven serve ARGS` (with `HAVEN_ADMIN_TOKEN=admin_token`, if
/// any); returns the child, with its stderr piped, and the address it
/// says it listens on.
pub fn serve(args: &[&str], admin_token: Option<&str>) -> (Child, String) {
    use std::io::BufRead;
    let mut command = Command::new(env!("CARGO_BIN_EXE_haven"));
    command.arg("serve").args(args);
    if let Some(token) = admin_token {
        command.env("HAVEN_ADMIN_TOKEN", token);
    }
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("haven listening on ws://").unwrap_or_else(|| panic!("{line}")).to_owned();
    (child, addr)
}
