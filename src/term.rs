//! What decompute says on stderr and how it draws on a terminal. Every message goes through
//! [`say`], which never panics: a closed or full stderr (`2>&1 | head`, `2>/dev/full`) must
//! never cost the measured command its run or its exit code. Escape codes (the live status
//! line, colour) are used only on a real terminal that can take them: not when stderr is a
//! pipe or file, not under `TERM=dumb`, and colour not under `NO_COLOR`. Text that came from
//! users (commands, tags, project names) is shown with control characters escaped, so a
//! ledger entry cannot move the cursor or forge lines.

use std::io::{IsTerminal, Write};

/// Writes `text` and a newline to stderr; errors are ignored (there is nowhere left to say
/// them).
pub fn say(text: &str) {
    let mut e = std::io::stderr().lock();
    let _ = e.write_all(text.as_bytes());
    let _ = e.write_all(b"\n");
    let _ = e.flush();
}

/// Writes `text` to stderr as is (no newline); errors are ignored.
pub fn say_raw(text: &str) {
    let mut e = std::io::stderr().lock();
    let _ = e.write_all(text.as_bytes());
    let _ = e.flush();
}

/// `decompute: …` on stderr.
#[macro_export]
macro_rules! say {
    ($($t:tt)*) => { $crate::term::say(&format!($($t)*)) };
}

/// What stderr can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Cursor control works (a live line can be redrawn).
    pub live: bool,
    /// Colour is wanted.
    pub colour: bool,
    /// Columns, when known.
    pub width: Option<usize>,
}

impl Caps {
    /// Decides from the environment and stderr itself.
    pub fn stderr() -> Caps {
        let tty = std::io::stderr().is_terminal();
        let term = std::env::var("TERM").unwrap_or_default();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Caps::decide(tty, &term, no_color, if tty { width(2) } else { None })
    }

    /// The same for stdout (listings printed for people).
    pub fn stdout() -> Caps {
        let tty = std::io::stdout().is_terminal();
        let term = std::env::var("TERM").unwrap_or_default();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Caps::decide(tty, &term, no_color, if tty { width(1) } else { None })
    }

    /// The pure decision (tested by table).
    pub fn decide(tty: bool, term: &str, no_color: bool, width: Option<usize>) -> Caps {
        let live = tty && !term.is_empty() && term != "dumb";
        Caps {
            live,
            colour: live && !no_color,
            width,
        }
    }
}

/// Columns of the terminal on `fd`, from TIOCGWINSZ.
fn width(fd: i32) -> Option<usize> {
    // SAFETY: a zeroed winsize is a valid out-parameter for TIOCGWINSZ.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: ioctl with a valid pointer to a winsize.
    let r = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_col > 0).then_some(ws.ws_col as usize)
}

/// Cuts `s` to at most `n` characters (counting chars, never splitting one).
pub fn fit(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    if n == 0 {
        return String::new();
    }
    s.chars().take(n - 1).collect::<String>() + "…"
}

/// User text for display: control characters (newlines, escapes, DEL, C1) become `\n`,
/// `\t`, `\x1b`-style escapes, so it stays on one line and cannot drive the terminal.
pub fn escape(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if c.is_control() => o.push_str(&format!("\\x{:02x}", c as u32)),
            c => o.push(c),
        }
    }
    o
}

/// The command as a shell would need it typed: words with spaces or specials single-quoted.
pub fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One line of a message that may hold user text, fit to show: control characters escaped
/// (an escape sequence in a flag's value cannot retitle the terminal or forge a line) and
/// any run of over 200 characters without a space cut to its first 120, with the count of
/// the rest, so a 20,000-character value does not bury the message around it.
pub fn line(text: &str) -> String {
    let escaped = escape(text);
    let mut out = String::with_capacity(escaped.len().min(4096));
    for (i, word) in escaped.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let n = word.chars().count();
        if n > 200 {
            out.extend(word.chars().take(120));
            out.push_str(&format!("…[{} more characters]", n - 120));
        } else {
            out.push_str(word);
        }
    }
    out
}

/// Red (over budget) or green (measured) when colour is on; plain text otherwise.
pub fn paint(text: &str, colour: Option<&str>, caps: Caps) -> String {
    match (caps.colour, colour) {
        (true, Some("red")) => format!("\x1b[31m{text}\x1b[0m"),
        (true, Some("green")) => format!("\x1b[32m{text}\x1b[0m"),
        (true, Some("yellow")) => format!("\x1b[33m{text}\x1b[0m"),
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn lines_escape_and_cut_user_text() {
        assert_eq!(
            line("bad \u{1b}]0;PWNED\u{7} value"),
            "bad \\x1b]0;PWNED\\x07 value"
        );
        let long = "x".repeat(20_000);
        let l = line(&format!("invalid value '{long}' for '--project <NAME>'"));
        assert!(
            l.len() < 400 && l.ends_with("for '--project <NAME>'"),
            "{l}"
        );
        assert!(l.contains("…[19882 more characters]"), "{l}");
    }

    use super::*;

    #[test]
    fn escape_codes_only_where_they_work() {
        assert!(Caps::decide(true, "xterm-256color", false, Some(80)).live);
        assert!(Caps::decide(true, "xterm", false, None).colour);
        assert!(!Caps::decide(true, "xterm", true, None).colour);
        assert!(!Caps::decide(true, "dumb", false, None).live);
        assert!(!Caps::decide(true, "", false, None).live);
        assert!(!Caps::decide(false, "xterm", false, None).live);
        assert_eq!(
            paint("x", Some("red"), Caps::decide(false, "xterm", false, None)),
            "x"
        );
    }

    #[test]
    fn user_text_cannot_drive_the_terminal() {
        assert_eq!(escape("plain é"), "plain é");
        assert_eq!(escape("a\nb\x1b[2Jc\u{7f}"), "a\\nb\\x1b[2Jc\\x7f");
        assert_eq!(escape("\u{9b}"), "\\x9b");
        assert_eq!(fit("ééééé", 3), "éé…");
        assert_eq!(fit("abc", 3), "abc");
        assert_eq!(fit("abc", 0), "");
    }
}
