//! Plugin text meant to fool the terminal: escape sequences in plan text,
//! errors, diagnostics and logs (modes `term-*`).
//!
//! Every string here is chosen to do damage when printed raw: `\r` and
//! `ESC [2K` to redraw a `- destroy` line as `+ create harmless`, an OSC
//! sequence to set the window title, `ESC [2A ESC [J` to erase the lines
//! above, a C1 CSI (U+009B), a bidi override, and a newline that forges the
//! next line of the output. `host/tests/all/hostile_terminal.rs` runs each mode
//! through the real binary and checks none of it reaches stdout or stderr
//! raw.

use serde::Deserialize;
use soar_sdk::ApiError;
use soar_sdk::log::{Level, write};
use soar_sdk::prelude::*;

/// Erase the line, return to its start, draw a friendly one instead.
pub const DISGUISE: &str = "\r\x1b[2K  + create";
/// Set the terminal window's title.
pub const TITLE: &str = "\x1b]0;pwned\x07";
/// Move up two lines and erase everything below.
pub const ERASE_UP: &str = "\x1b[2A\x1b[J";
/// An 8-bit CSI, then a bidi override.
pub const C1_BIDI: &str = "\u{9b}2J\u{202e}txet desrever";

/// Settings of the `term-*` modes.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Settings {
    /// Extra text appended to every hostile string (lets a test add a marker).
    marker: String,
}

/// Run the `terminal` mode `mode`.
pub fn plan(mode: &str, ctx: &Context) -> Result<ChangePlan, PluginError> {
    let s: Settings = ctx.settings()?;
    let m = &s.marker;
    match mode {
        // A destroy drawn as a create, with a reason that changes the window
        // title and forges a line, attributes and notes with escapes, and a
        // diagnostic that clears the screen.
        "term-plan" => Ok(ChangePlan {
            changes: vec![
                Change {
                    action: ChangeAction::Delete,
                    kind: DISGUISE.into(),
                    name: format!("harmless{m}"),
                    reason: format!("{TITLE}nothing to see\n  + create also-harmless{m}"),
                    before: Some("{}".into()),
                    after: None,
                    payload: "{}".into(),
                    deploys_artifact: false,
                },
                Change {
                    action: ChangeAction::Create,
                    kind: format!("thing{ERASE_UP}"),
                    name: format!("{}-{}{m}", ctx.app, ctx.environment),
                    reason: C1_BIDI.into(),
                    before: None,
                    after: Some(
                        json!({ format!("key{ERASE_UP}"): format!("value{C1_BIDI}\x1b[8m") })
                            .to_string(),
                    ),
                    payload: "{}".into(),
                    deploys_artifact: false,
                },
            ],
            diagnostics: vec![Diagnostic {
                severity: Severity::Warning,
                message: format!("diagnostic{ERASE_UP}{TITLE}{m}"),
                field: None,
                hint: None,
            }],
            notes: vec![format!("note{C1_BIDI}{m}")],
        }),
        "term-api-error" => Err(PluginError::Api(ApiError {
            status: 418,
            code: format!("code{TITLE}"),
            message: format!("{DISGUISE} fine{ERASE_UP}{m}"),
            request_id: Some(format!("req{C1_BIDI}")),
        })),
        "term-other-error" => Err(PluginError::Other(format!(
            "boom{TITLE}\nerror: a forged line{ERASE_UP}{m}"
        ))),
        "term-invalid" => Err(PluginError::InvalidConfig(vec![Diagnostic {
            severity: Severity::Error,
            message: format!("bad{ERASE_UP}{m}"),
            field: Some(format!("field{TITLE}")),
            hint: Some(format!("hint{C1_BIDI}")),
        }])),
        // Log records and stdout/stderr, then a good plan; `-vv` shows the
        // records.
        "term-log" => {
            write(
                Level::Warn,
                &format!("log{ERASE_UP}{TITLE}{m}"),
                &[("field", &format!("value{C1_BIDI}"))],
            );
            write(Level::Info, &format!("forged\nWARN fake record{m}"), &[]);
            println!("stdout{ERASE_UP}{m}");
            eprintln!("stderr{TITLE}{m}");
            Ok(ChangePlan {
                changes: vec![],
                diagnostics: vec![],
                notes: vec![format!("logged{m}")],
            })
        }
        // A trap whose reason carries the plugin's stderr.
        "term-panic" => {
            eprintln!("before the panic{ERASE_UP}{m}");
            panic!("panic{TITLE}{C1_BIDI}{m}")
        }
        other => Err(PluginError::Other(format!("unknown mode {other:?}"))),
    }
}
