//! What the binary's tests share.

use std::process::{Child, Command, Stdio};

/// Starts `haven serve ARGS` with the environment variables `env` (say
/// `HAVEN_ADMIN_TOKEN`) and its stderr to `stderr`; returns the child and
/// the address it says it listens on (`ws://ADDR`, or `wss://ADDR` with TLS).
pub fn serve(args: &[&str], env: &[(&str, &str)], stderr: Stdio) -> (Child, String) {
    use std::io::BufRead;
    let mut command = Command::new(env!("CARGO_BIN_EXE_haven"));
    command.arg("serve").args(args).envs(env.iter().copied());
    let mut child = command.stdout(Stdio::piped()).stderr(stderr).spawn().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().strip_prefix("haven listening on ").unwrap_or_else(|| panic!("{line}"));
    let addr = url.strip_prefix("ws://").or_else(|| url.strip_prefix("wss://")).unwrap_or_else(|| panic!("{line}"));
    let addr = addr.to_owned();
    (child, addr)
}
