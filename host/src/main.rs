//! The `soar` binary: parse, run, report the error chain once, exit.
//!
//! Everything printed here may carry text a plugin supplied (an error
//! message, a log record), so it goes through [`soar::terminal`]: tracing
//! fields are escaped as single lines by the field formatter, and the final
//! error goes through the command's [`soar::report::Reporter`] (which keeps
//! only the host's own line breaks, or prints an `error` event in `--json`).

use clap::Parser;
use tracing_subscriber::field::MakeExt as _;

fn main() {
    let cli = soar::cli::Cli::parse();
    let settings = cli.report_settings();
    let out = soar::report::Reporter::stdio(settings);
    let filter = match cli.verbose {
        0 => "warn",
        1 => "info,soar=info",
        _ => "info,soar=debug",
    };
    // Plugin log records (target `soar::plugin`) and brokered requests reach
    // the terminal through these fields: each value is escaped as one line,
    // so a record can neither drive the terminal nor forge another record.
    let fields = tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
        let value = format!("{value:?}");
        let value = soar::terminal::line(&value);
        if field.name() == "message" {
            write!(w, "{value}")
        } else {
            write!(w, "{field}={value}")
        }
    })
    .delimited(" ");
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SOAR_LOG")
                .unwrap_or_else(|_| filter.into()),
        )
        .with_writer(std::io::stderr)
        // Colours as --color and NO_COLOR say: by default only a terminal.
        .with_ansi(settings.color.colors_stderr())
        .fmt_fields(fields)
        .with_target(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            out.error(&anyhow::Error::new(e).context("cannot start the async runtime"));
            std::process::exit(1);
        }
    };
    let code = match runtime.block_on(soar::cli::run(cli, &out)) {
        Ok(code) => code,
        Err(e) => {
            out.failure(&e, soar::engine::failure::transient(&e));
            1
        }
    };
    std::process::exit(code);
}
